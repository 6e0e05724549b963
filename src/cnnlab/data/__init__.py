"""Datasets: Fashion-MNIST and friends, in-memory batching, batched augmentation, image folders, splits,
and dense (segmentation/detection) data: Fashion-MNIST scenes, VOC and COCO folders, ``DenseLoader``.

```python
from cnnlab.data import load_dataset, stratified_split, BatchAugment, InMemoryLoader
train, val = stratified_split(load_dataset("fashion-mnist", "train"), val_fraction=0.1, seed=0)
loader = InMemoryLoader(train, batch_size=256, augment="crop,flip", seed=0)
for epoch in range(10):
    loader.set_epoch(epoch)
    for x, y in loader:  # x float32 [B,1,28,28] normalised, y int64 [B]
        ...
```
"""

from cnnlab.data.arrays import ArrayDataset, DenseDataset, channel_stats, default_data_dir, normalize_uint8
from cnnlab.data.augment import BatchAugment
from cnnlab.data.catalog import build_loader, list_datasets, load_dataset
from cnnlab.data.cifar import CIFAR_DATASETS
from cnnlab.data.coco import load_coco, write_coco
from cnnlab.data.dense import DenseAugment, DenseLoader, build_dense_loader, random_split
from cnnlab.data.download import download_file, extract_archive, verify_checksum
from cnnlab.data.folder import FolderDataset
from cnnlab.data.idx import DIGIT_DATASETS, IDX_DATASETS, read_idx
from cnnlab.data.loader import FolderLoader, InMemoryLoader, epoch_permutation, shard_indices
from cnnlab.data.scenes import make_scenes
from cnnlab.data.seeding import mix_seed
from cnnlab.data.splits import bootstrap_indices, kfold_indices, stratified_split, stratified_split_indices
from cnnlab.data.synthetic import make_synthetic
from cnnlab.data.voc import load_voc, write_voc

__all__ = [
    "CIFAR_DATASETS", "DIGIT_DATASETS", "IDX_DATASETS", "ArrayDataset", "BatchAugment", "FolderDataset",
    "FolderLoader", "InMemoryLoader", "bootstrap_indices", "build_loader", "channel_stats", "default_data_dir",
    "download_file", "epoch_permutation", "extract_archive", "kfold_indices", "list_datasets", "load_dataset",
    "make_synthetic", "mix_seed", "normalize_uint8", "read_idx", "shard_indices", "stratified_split",
    "stratified_split_indices",
    "verify_checksum", "DenseAugment", "DenseDataset", "DenseLoader", "build_dense_loader", "make_scenes",
    "random_split", "load_voc", "write_voc", "load_coco", "write_coco",
]
