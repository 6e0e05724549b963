"""The built-in experiments; importing this package registers them (see ``cnnlab lab list``)."""

from cnnlab.lab.experiments import (  # noqa: F401, I001  (registration order = run order)
    design,
    dynamics,
    inventory,
    operators,
    optimizers,
    depth,
    generalization,
    regularization,
    validation,
    architectures,
    architectures_classic,
    segmentation,
    transfer,
    detection,
    quiz,
)
