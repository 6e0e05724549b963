"""cnnlab: the working laboratory for classic convolutional networks (LeNet-5 to EfficientNet)."""

from cnnlab.analysis import count_macs, inspect
from cnnlab.models import create_model, get_model_info, list_models, register_model

__version__ = "0.1.0"
__all__ = ["__version__", "count_macs", "create_model", "inspect", "get_model_info", "list_models", "register_model"]
