"""The model zoo: one module per family; importing this package registers every variant."""

from cnnlab.models import (  # noqa: F401 - importing a family module registers its models
    alexnet,
    densenet,
    dpn,
    efficientnet,
    fastnet,
    googlenet,
    inception,
    lenet,
    mnasnet,
    mobilenet,
    nin,
    resnet,
    resnet_cifar,
    senet,
    shufflenet,
    squeezenet,
    vgg,
)
from cnnlab.models._base import AuxOutputs, ClassifierMixin
from cnnlab.models._registry import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    MODELS,
    SMALL_INPUT_MAX,
    ModelInfo,
    PretrainedSource,
    get_model_info,
    list_models,
    register_model,
)
from cnnlab.models.factory import create_model
from cnnlab.models.senet import add_se

__all__ = [
    "AuxOutputs",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MODELS",
    "SMALL_INPUT_MAX",
    "add_se",
    "ClassifierMixin",
    "ModelInfo",
    "PretrainedSource",
    "create_model",
    "get_model_info",
    "list_models",
    "register_model",
]
