"""InMemoryLoader: values, determinism, resume from any step, DDP-style sharding."""

import pytest
import torch

from cnnlab.data import InMemoryLoader, build_loader, load_dataset, shard_indices
from cnnlab.errors import ConfigError


@pytest.fixture(scope="module")
def syn():
    return load_dataset("synthetic")


def _collect(loader, start=0):
    return [tuple(t.clone() for t in b) for b in loader.iter_from(start)]


def test_batches_are_normalised_slices(fmnist_test):
    ds = fmnist_test.subset(range(1000))
    loader = InMemoryLoader(ds, batch_size=300, shuffle=False)
    assert len(loader) == 4
    batches = list(loader)
    assert [b[0].shape[0] for b in batches] == [300, 300, 300, 100]
    x, y = batches[1]
    assert x.dtype == torch.float32 and y.dtype == torch.int64 and x.shape == (300, 1, 28, 28)
    expect = (ds.images[300:600].float() / 255 - ds.mean[0]) / ds.std[0]
    assert torch.allclose(x, expect, atol=1e-5) and torch.equal(y, ds.labels[300:600])
    full = InMemoryLoader(fmnist_test, batch_size=1000, shuffle=False)
    allx = torch.cat([b[0] for b in full])
    # normalised with the training statistics: test-set mean ~0, std ~1
    assert allx.mean().item() == pytest.approx(0.0, abs=0.02) and allx.std().item() == pytest.approx(1.0, abs=0.02)


def test_epoch_is_a_permutation_and_drop_last(syn):
    loader = InMemoryLoader(syn, batch_size=64, return_indices=True)
    idx = torch.cat([b[2] for b in loader])
    assert torch.equal(torch.sort(idx).values, torch.arange(1000))
    assert not torch.equal(idx, torch.arange(1000))
    ys = torch.cat([b[1] for b in loader])
    assert torch.equal(ys, syn.labels[idx])
    dl = InMemoryLoader(syn, batch_size=64, drop_last=True)
    assert len(dl) == 15 and all(b[0].shape[0] == 64 for b in dl)


def test_same_seed_same_batches_other_epoch_other_order(syn):
    a = InMemoryLoader(syn, batch_size=100, augment="crop,flip,rotate,cutout,noise", seed=3)
    b = InMemoryLoader(syn, batch_size=100, augment="crop,flip,rotate,cutout,noise", seed=3)
    ba, bb = _collect(a), _collect(b)
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(ba, bb))
    a.set_epoch(1)
    assert not torch.equal(_collect(a)[0][1], ba[0][1])
    c = InMemoryLoader(syn, batch_size=100, augment="crop,flip,rotate,cutout,noise", seed=4)
    assert not torch.equal(_collect(c)[0][1], ba[0][1])


def test_resume_from_step_equals_uninterrupted(syn):
    full = InMemoryLoader(syn, batch_size=96, augment="crop,flip,translate,rotate,cutout,noise", seed=1)
    full.set_epoch(2)
    ref = _collect(full)
    resumed = InMemoryLoader(syn, batch_size=96, augment="crop,flip,translate,rotate,cutout,noise", seed=1)
    resumed.set_epoch(2)
    tail = _collect(resumed, start=7)
    assert len(tail) == len(ref) - 7
    for p, q in zip(ref[7:], tail):
        assert torch.equal(p[0], q[0]) and torch.equal(p[1], q[1])
    assert list(resumed.iter_from(len(resumed))) == []


@pytest.mark.parametrize("drop_last", [True, False])
def test_sharding_disjoint_equal_and_covering(syn, drop_last):
    n, world = 1000, 3
    loaders = [InMemoryLoader(syn, batch_size=37, rank=r, world_size=world, drop_last=drop_last, seed=5,
                              return_indices=True) for r in range(world)]
    for ld in loaders:
        ld.set_epoch(4)
    parts = [torch.cat([b[2] for b in ld]) for ld in loaders]
    assert len({len(ld) for ld in loaders}) == 1  # equal batch counts on every rank
    assert len({p.numel() for p in parts}) == 1
    allidx = torch.cat(parts)
    if drop_last:
        assert allidx.numel() == 999 and allidx.unique().numel() == 999  # disjoint, one sample dropped
    else:
        assert allidx.numel() == 1002 and torch.equal(allidx.unique(), torch.arange(n))  # 2 padded repeats
    # every rank draws its shard from the same epoch permutation as a single process would
    single = InMemoryLoader(syn, batch_size=50, seed=5, return_indices=True)
    single.set_epoch(4)
    perm = torch.cat([b[2] for b in single])
    assert torch.equal(parts[1][:5], perm[1:15:3])


def test_shard_indices_like_distributed_sampler():
    perm = torch.arange(10)
    assert shard_indices(perm, 1, 4, drop_last=False).tolist() == [1, 5, 9]
    assert shard_indices(perm, 3, 4, drop_last=False).tolist() == [3, 7, 1]  # padded with the head
    assert shard_indices(perm, 3, 4, drop_last=True).tolist() == [3, 7]


def test_channels_last_mean_std_override_and_errors(syn):
    rgb = load_dataset("synthetic-rgb", n_train=40)
    x, _ = next(iter(InMemoryLoader(rgb, batch_size=8, channels_last=True)))
    assert x.is_contiguous(memory_format=torch.channels_last)
    x0, _ = next(iter(InMemoryLoader(rgb, batch_size=8, shuffle=False, mean=(0.5,) * 3, std=(0.5,) * 3)))
    assert torch.allclose(x0, rgb.images[:8].float() / 127.5 - 1, atol=1e-5)
    with pytest.raises(ConfigError):
        InMemoryLoader(rgb, batch_size=0)
    with pytest.raises(ConfigError):
        InMemoryLoader(rgb, rank=2, world_size=2)
    with pytest.raises(ConfigError, match="mirrored"):
        InMemoryLoader(load_dataset("mnist", data_dir=_fake_mnist_dir()), augment="flip")


def _fake_mnist_dir():
    import gzip
    import tempfile
    from pathlib import Path

    d = Path(tempfile.mkdtemp())
    for prefix in ("train", "t10k"):
        (d / f"{prefix}-images-idx3-ubyte.gz").write_bytes(
            gzip.compress(bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 28, 0, 0, 0, 28]) + bytes(2 * 784)))
        (d / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 2, 3, 4])))
    return d


def test_build_loader_by_name():
    loader = build_loader("synthetic", split="test", batch_size=100, shuffle=False)
    assert isinstance(loader, InMemoryLoader) and len(loader) == 5
