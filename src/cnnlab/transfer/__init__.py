"""Transfer learning: pretrained zoo models adapted to new data by feature extraction or fine-tuning.

```python
from cnnlab.transfer import finetune
r = finetune("efficientnet_lite0", weights="imagenet", data="imagefolder:photos", mode="feature-extract",
             features_cache=True, epochs=10)
r.final["top1"], r.run_dir          # cnnlab predict/eval --checkpoint r.run_dir
```
"""

from cnnlab.transfer.data import few_shot_indices, load_transfer_data, render_folder
from cnnlab.transfer.features import (
    FeatureDataset,
    LinearHead,
    cache_key,
    cached_features,
    default_cache_dir,
    extract_features,
)
from cnnlab.transfer.finetune import (
    MODES,
    FinetuneResult,
    FreezeReport,
    finetune,
    freeze,
    lecture_config,
    param_groups,
    save_model_checkpoint,
)

__all__ = [
    "MODES", "FeatureDataset", "FinetuneResult", "FreezeReport", "LinearHead", "cache_key", "cached_features",
    "default_cache_dir", "extract_features", "few_shot_indices", "finetune", "freeze", "lecture_config",
    "load_transfer_data", "param_groups", "render_folder", "save_model_checkpoint",
]
