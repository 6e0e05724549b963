"""One family of exceptions. Library code raises them; the CLI prints them as one line.

Each subclass also derives from the builtin a caller would naturally catch (``ValueError`` for bad
names, settings, files and data; ``RuntimeError`` for failed workers and exports; ``FloatingPointError``
for a diverged loss), so ``except ValueError`` keeps working. Every exception class of cnnlab is here.
"""


class CnnlabError(Exception):
    """Base class: a user-facing problem with a one-line explanation."""


class UnknownModelError(CnnlabError, ValueError):
    """A model name that is not in the registry."""


class ConfigError(CnnlabError, ValueError):
    """An impossible setting: in_chans=0, an image too small for the network, a bad option."""


class WeightsError(CnnlabError, ValueError):
    """Pretrained weights that cannot be found, read or matched to the model."""


class CheckpointError(CnnlabError, ValueError):
    """A checkpoint that is missing, corrupt or from another model."""


class DataError(CnnlabError, ValueError):
    """A dataset that is missing, empty, corrupt or of the wrong shape."""


class NonFiniteLossError(CnnlabError, FloatingPointError):
    """The training loss became NaN or infinite; the run stopped without overwriting good checkpoints."""


class TrainingError(CnnlabError, RuntimeError):
    """A worker process of a multi-process run failed."""


class ExportError(CnnlabError, RuntimeError):
    """A model that cannot be exported, or whose export does not reproduce PyTorch's outputs."""
