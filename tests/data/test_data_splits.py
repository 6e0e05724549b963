"""Stratified train/val split, stratified k-fold and bootstrap, on the real Fashion-MNIST labels."""

import numpy as np
import pytest
import torch

from cnnlab.data import bootstrap_indices, kfold_indices, stratified_split, stratified_split_indices
from cnnlab.errors import ConfigError


def test_stratified_split_proportions(fmnist_train):
    train, val = stratified_split(fmnist_train, val_fraction=0.1, seed=0)
    assert len(train) == 54000 and len(val) == 6000
    assert val.class_counts().tolist() == [600] * 10 and train.class_counts().tolist() == [5400] * 10
    assert val.mean == fmnist_train.mean
    tr, va = stratified_split_indices(fmnist_train.labels, 0.1, seed=0)
    assert torch.equal(torch.sort(torch.cat([tr, va])).values, torch.arange(60000))
    assert torch.equal(val.labels, fmnist_train.labels[va])
    tr2, va2 = stratified_split_indices(fmnist_train.labels, 0.1, seed=0)
    assert torch.equal(va, va2)
    assert not torch.equal(va, stratified_split_indices(fmnist_train.labels, 0.1, seed=1)[1])


def test_stratified_split_unbalanced_rounding():
    labels = torch.tensor([0] * 7 + [1] * 3 + [2] * 13)
    tr, va = stratified_split_indices(labels, 0.3, seed=0)
    assert va.numel() == round(23 * 0.3)
    counts = torch.bincount(labels[va], minlength=3)
    assert all(abs(c - n * 0.3) < 1 for c, n in zip(counts.tolist(), [7, 3, 13]))
    with pytest.raises(ConfigError):
        stratified_split_indices(labels, 1.0)


def test_kfold_disjoint_stratified_covering(fmnist_train):
    labels = fmnist_train.labels[:10000]
    folds = kfold_indices(labels, k=5, seed=0)
    assert len(folds) == 5
    vals = torch.cat([v for _, v in folds])
    assert torch.equal(torch.sort(vals).values, torch.arange(10000))  # disjoint and covering
    per_class = torch.bincount(labels, minlength=10)
    for tr, va in folds:
        assert va.numel() == 2000 and tr.numel() == 8000
        assert torch.equal(torch.sort(torch.cat([tr, va])).values, torch.arange(10000))
        counts = torch.bincount(labels[va], minlength=10)
        assert ((counts - per_class / 5).abs() <= 1).all()
    assert torch.equal(kfold_indices(labels, 5, 0)[2][1], folds[2][1])
    with pytest.raises(ConfigError):
        kfold_indices(labels, k=1)


def test_bootstrap():
    s, oob = bootstrap_indices(1000, seed=0)
    assert s.numel() == 1000 and s.unique().numel() + oob.numel() == 1000
    assert 0.30 < oob.numel() / 1000 < 0.44  # (1 - 1/n)^n -> e^-1 = 0.368
    labels = torch.arange(100) % 4
    s2, _ = bootstrap_indices(labels, seed=1, stratified=True)
    assert torch.bincount(labels[s2]).tolist() == [25] * 4


def test_kfold_class_counts_match_scikit_learn():
    """Same rule as scikit-learn's StratifiedKFold: every fold holds each class in proportion (counts per
    class and fold equal to sklearn's up to the assignment of remainders, i.e. differ by at most one)."""
    from sklearn.model_selection import StratifiedKFold

    labels = torch.tensor([0] * 23 + [1] * 17 + [2] * 9)
    ours = sorted(torch.bincount(labels[va], minlength=3).tolist() for _, va in kfold_indices(labels, 4, seed=0))
    ref = sorted(np.bincount(labels.numpy()[va], minlength=3).tolist()
                 for _, va in StratifiedKFold(4, shuffle=True, random_state=0).split(np.zeros(49), labels.numpy()))
    for c in range(3):
        assert sorted(r[c] for r in ours) == sorted(r[c] for r in ref)
