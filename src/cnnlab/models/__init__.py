"""The model zoo: one module per family; importing this package registers every variant."""

from cnnlab.models import (
    lenet,
    alexnet,
    vgg,
    nin,
    googlenet,
    inception,
    resnet,
    resnet_cifar,
    senet,
    dpn,
    densenet,
    mobilenet,
    shufflenet,
    mnasnet,
    squeezenet,
    efficientnet,
)
from cnnlab.models._base import AuxOutputs, ClassifierMixin
from cnnlab.models._registry import (
    ModelInfo,
    PretrainedSource,
    create_model,
    get_model_info,
    list_models,
    register_model,
)
from cnnlab.models.senet import add_se

__all__ = [
    "AuxOutputs",
    "add_se",
    "ClassifierMixin",
    "ModelInfo",
    "PretrainedSource",
    "create_model",
    "get_model_info",
    "list_models",
    "register_model",
]
