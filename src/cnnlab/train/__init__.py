"""Training engine: TrainConfig, fit, evaluation, checkpoints with exact resume, DDP.

```python
from cnnlab.train import TrainConfig, fit
result = fit(TrainConfig(model="resnet20", data="fashion-mnist", epochs=10, optimizer="sgd", lr=0.1,
                         momentum=0.9, nesterov=True, weight_decay=5e-4, schedule="onecycle",
                         label_smoothing=0.1, augment="crop,flip", seed=0))
result.final["top1"], result.run_dir          # test accuracy, runs/resnet20-fashion-mnist-...
fit(cfg, resume=result.run_dir)               # continue exactly where a run stopped
```
"""

from cnnlab.train.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from cnnlab.train.config import TrainConfig
from cnnlab.train.engine import FitResult, FitState, NonFiniteLossError, TrainingError, fit
from cnnlab.train.metrics import evaluate, predict_probs
from cnnlab.train.recipes import RECIPES, get_recipe

__all__ = [
    "RECIPES", "Checkpoint", "FitResult", "FitState", "NonFiniteLossError", "TrainConfig", "TrainingError",
    "evaluate", "fit", "get_recipe", "load_checkpoint", "predict_probs", "save_checkpoint",
]
