"""Seeded index splits: stratified train/validation, stratified k-fold, bootstrap resamples.

All functions take labels (a tensor, array or list) or a dataset with ``.labels`` and return int64
index tensors, sorted, so the same seed gives the same split on every machine.

Why not scikit-learn's ``StratifiedKFold`` / ``train_test_split(stratify=...)`` (scikit-learn is a core
dependency, for the detection SVMs): these are seeded by a torch generator, so a split depends only on the
seed and the labels -- not on the NumPy version behind ``random_state`` -- and a resumed cross-validation or
bagging run, and every recorded result, get exactly the folds they were made with. The rule is the same as
scikit-learn's (each class split in proportion, the remainder spread over folds); ``tests/data`` checks
the proportions against ``StratifiedKFold``'s.
"""

from __future__ import annotations

import torch

from cnnlab.errors import ConfigError


def _labels_of(obj) -> torch.Tensor:
    labels = getattr(obj, "labels", obj)
    labels = torch.as_tensor(labels, dtype=torch.int64).reshape(-1)
    return labels


def _class_members(labels: torch.Tensor, g: torch.Generator) -> list[torch.Tensor]:
    """Each class's indices in a seeded random order (classes in label order)."""
    out = []
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c).flatten()
        out.append(idx[torch.randperm(idx.numel(), generator=g)])
    return out


def _sorted_cat(parts: list[torch.Tensor]) -> torch.Tensor:
    return torch.sort(torch.cat(parts)).values if parts else torch.empty(0, dtype=torch.int64)


def stratified_split_indices(labels, val_fraction: float = 0.1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(train_idx, val_idx)`` with ``round(N * val_fraction)`` validation samples, per class in proportion.

    Per-class validation counts are the largest-remainder apportionment of the total, so each class's
    share differs from ``val_fraction`` by less than one sample.
    """
    labels = _labels_of(labels)
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n = labels.numel()
    g = torch.Generator().manual_seed(seed)
    members = _class_members(labels, g)
    sizes = torch.tensor([m.numel() for m in members], dtype=torch.float64)
    total = round(n * val_fraction)
    exact = sizes * (total / max(n, 1))
    counts = exact.floor().long()
    remainder = total - int(counts.sum())
    if remainder > 0:  # largest remainders first, ties broken by class order
        order = torch.argsort(exact - counts, descending=True, stable=True)[:remainder]
        counts[order] += 1
    val = [m[:k] for m, k in zip(members, counts.tolist())]
    train = [m[k:] for m, k in zip(members, counts.tolist())]
    return _sorted_cat(train), _sorted_cat(val)


def stratified_split(dataset, val_fraction: float = 0.1, seed: int = 0):
    """Split a dataset (anything with ``.labels`` and ``.subset``) into ``(train, val)`` datasets."""
    train_idx, val_idx = stratified_split_indices(dataset.labels, val_fraction, seed)
    name = getattr(dataset, "name", "data")
    return dataset.subset(train_idx, name=f"{name}-trainsplit"), dataset.subset(val_idx, name=f"{name}-valsplit")


def kfold_indices(labels, k: int = 5, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Stratified k-fold: ``k`` pairs ``(train_idx, val_idx)``; the val parts are disjoint and cover all.

    Each class's samples (in seeded random order) are dealt to the folds in turn, continuing from where
    the previous class stopped, so every class's count per fold and every fold's size differ by at
    most one.
    """
    labels = _labels_of(labels)
    n = labels.numel()
    if k < 2 or k > n:
        raise ConfigError(f"k-fold needs 2 <= k <= number of samples ({n}), got k={k}")
    g = torch.Generator().manual_seed(seed)
    order = torch.cat(_class_members(labels, g))
    fold_of = torch.empty(n, dtype=torch.int64)
    fold_of[order] = torch.arange(n) % k
    folds = []
    for f in range(k):
        val = torch.nonzero(fold_of == f).flatten()
        train = torch.nonzero(fold_of != f).flatten()
        folds.append((train, val))
    return folds


def bootstrap_indices(n_or_labels, seed: int = 0, stratified: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """A bootstrap resample ``(sample_idx, out_of_bag_idx)``: ``n`` draws with replacement (Efron 1979).

    ``stratified=True`` (pass labels) resamples within each class, keeping the class counts.
    """
    g = torch.Generator().manual_seed(seed)
    if isinstance(n_or_labels, int):
        n = n_or_labels
        sample = torch.randint(0, n, (n,), generator=g)
    else:
        labels = _labels_of(n_or_labels)
        n = labels.numel()
        if stratified:
            parts = [m[torch.randint(0, m.numel(), (m.numel(),), generator=g)] for m in _class_members(labels, g)]
            sample = torch.cat(parts)
        else:
            sample = torch.randint(0, n, (n,), generator=g)
    sample = torch.sort(sample).values
    seen = torch.zeros(n, dtype=torch.bool)
    seen[sample] = True
    return sample, torch.nonzero(~seen).flatten()
