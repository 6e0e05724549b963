"""The built-in experiments; importing this package registers them (see ``cnnlab lab list``)."""

from cnnlab.lab.experiments import (
    design,  # noqa: F401
    dynamics,  # noqa: F401
    inventory,  # noqa: F401
    operators,  # noqa: F401
    optimizers,  # noqa: F401
    quiz,  # noqa: F401
)
