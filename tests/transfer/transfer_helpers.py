"""Helpers for the transfer tests (imported by name; pytest puts this folder on sys.path)."""

from cnnlab.data import ArrayDataset, make_synthetic

IMG = 72  # > 64, so the zoo builds the ImageNet ResNet whose state_dict the weights file holds


def synthetic(n: int, seed: int, channels: int = 3, size: int = 32, classes: int = 2) -> ArrayDataset:
    images, labels = make_synthetic(n, num_classes=classes, image_size=size, channels=channels, seed=seed)
    return ArrayDataset(images, labels, [f"c{i}" for i in range(classes)], f"synthetic{seed}")
