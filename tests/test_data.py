"""Data splits: digits (always available), Fashion-MNIST (when installed), any torch Dataset."""

from __future__ import annotations

import gzip
import math
import struct

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from ray_nasrank.data import (
    FASHION_MNIST_DIR,
    FASHION_MNIST_ENV,
    DatasetSplits,
    TensorSplit,
    from_torch_dataset,
    load_dataset,
    resolve_device,
)


def _rows(x: torch.Tensor) -> set[bytes]:
    return {r.numpy().tobytes() for r in x.reshape(len(x), -1)}


def test_digits_shapes_and_sizes():
    s = load_dataset("digits", seed=0)
    assert isinstance(s, DatasetSplits)
    assert s.name == "digits" and s.num_classes == 10
    assert s.in_channels == 1 and s.image_size == (8, 8)
    assert len(s.train) + len(s.valid) + len(s.test) == 1797
    assert len(s.test) == math.ceil(1797 * 0.2)  # scikit-learn rounds the test share up
    assert len(s.valid) == round((1797 - len(s.test)) * 0.1)
    for part in (s.train, s.valid, s.test):
        assert part.x.dtype == torch.float32 and part.y.dtype == torch.long
        assert part.x.shape[1:] == (1, 8, 8)
        assert set(part.y.unique().tolist()) <= set(range(10))
    # normalised with train statistics
    assert abs(float(s.train.x.mean())) < 1e-3
    assert abs(float(s.train.x.std()) - 1.0) < 1e-2


def test_digits_splits_disjoint_and_deterministic():
    a = load_dataset("digits", seed=3)
    b = load_dataset("digits", seed=3)
    c = load_dataset("digits", seed=4)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.valid.y, b.valid.y)
    # the validation split depends on the seed, the test split does not
    assert not torch.equal(a.valid.y, c.valid.y) or not torch.equal(a.valid.x, c.valid.x)
    assert torch.equal(a.test.y, c.test.y)
    # raw (unnormalised) images are compared via the stable ordering of rows: disjoint index sets
    tr, va, te = _rows(a.train.x), _rows(a.valid.x), _rows(a.test.x)
    # digits contains a handful of exact duplicate images; overlaps must stay at that level
    assert len(tr & va) <= 3 and len(tr & te) <= 3 and len(va & te) <= 3


def test_limits_and_valid_fraction():
    s = load_dataset("digits", seed=0, valid_fraction=0.25, limit_train=100, limit_valid=50, limit_test=40)
    assert (len(s.train), len(s.valid), len(s.test)) == (100, 50, 40)
    full = load_dataset("digits", seed=0, valid_fraction=0.25)
    assert len(full.valid) == round((1797 - len(full.test)) * 0.25)


def test_batches_cover_split_and_are_seeded():
    s = load_dataset("digits", seed=0, limit_train=103)
    bs = list(s.train.batches(25, shuffle=True, generator=torch.Generator().manual_seed(1)))
    assert [len(y) for _, y in bs] == [25, 25, 25, 25, 3]
    ys = torch.cat([y for _, y in bs])
    assert sorted(ys.tolist()) == sorted(s.train.y.tolist())
    again = torch.cat([y for _, y in s.train.batches(25, generator=torch.Generator().manual_seed(1))])
    assert torch.equal(ys, again)
    other = torch.cat([y for _, y in s.train.batches(25, generator=torch.Generator().manual_seed(2))])
    assert not torch.equal(ys, other)
    ordered = list(s.train.batches(50, shuffle=False, drop_last=True))
    assert len(ordered) == 2 and torch.equal(ordered[0][1], s.train.y[:50])


def test_to_device_cpu_and_auto():
    s = load_dataset("digits", device="auto", limit_train=10)
    assert s.device == resolve_device("auto")
    moved = s.to("cpu")
    assert moved.train.x.device.type == "cpu" and len(moved.train) == 10


@pytest.mark.parametrize("kwargs, err", [
    (dict(name="cifar-10"), ValueError),
    (dict(name=3), TypeError),
    (dict(name="digits", valid_fraction=0.0), ValueError),
    (dict(name="digits", valid_fraction=1.5), ValueError),
    (dict(name="digits", valid_fraction="0.1"), TypeError),
    (dict(name="digits", limit_train=0), ValueError),
    (dict(name="digits", limit_train=2.5), ValueError),
    (dict(name="digits", root="/tmp"), ValueError),
    (dict(name="digits", device="tpu9"), ValueError),
])
def test_bad_arguments(kwargs, err):
    with pytest.raises(err):
        load_dataset(**kwargs)


def test_unknown_name_lists_known():
    with pytest.raises(ValueError, match="fashion-mnist.*digits"):
        load_dataset("imagenet")


def test_missing_fashion_mnist_says_how_to_install(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist", root=tmp_path)
    monkeypatch.setenv(FASHION_MNIST_ENV, str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match=FASHION_MNIST_ENV):
        load_dataset("fashion-mnist")


def _write_idx(path, arr: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def test_fashion_reader_on_synthetic_idx_files(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (60, 28, 28)))
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.arange(60) % 10)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (20, 28, 28)))
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.arange(20) % 10)
    monkeypatch.setenv(FASHION_MNIST_ENV, str(tmp_path))
    s = load_dataset("fashion-mnist", valid_fraction=0.1, seed=0)
    assert (len(s.train), len(s.valid), len(s.test)) == (54, 6, 20)
    assert s.in_channels == 1 and s.image_size == (28, 28) and s.num_classes == 10
    assert torch.equal(s.test.y, torch.arange(20) % 10)
    # a truncated file is reported, not silently reshaped
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.arange(20) % 10)
    with gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz", "wb") as f:
        f.write(bytes([0, 0, 8, 3]) + struct.pack(">III", 20, 28, 28) + b"\x00" * 100)
    with pytest.raises(ValueError, match="truncated"):
        load_dataset("fashion-mnist")


@pytest.mark.skipif(not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file(),
                    reason="dataset-fashion-mnist is not installed")
def test_real_fashion_mnist(monkeypatch):
    monkeypatch.delenv(FASHION_MNIST_ENV, raising=False)
    s = load_dataset("fashion-mnist", seed=0, limit_train=1000)
    assert len(s.train) == 1000 and len(s.valid) == 6000 and len(s.test) == 10000
    assert s.image_size == (28, 28)
    assert torch.bincount(s.test.y, minlength=10).tolist() == [1000] * 10


def test_splits_partition_indices_exactly():
    # each image encodes its own index, so disjointness and coverage are checked exactly
    n = 200
    ds = TensorDataset(torch.arange(n, dtype=torch.float32).reshape(n, 1, 1, 1), torch.arange(n) % 5)
    s = from_torch_dataset(ds, valid_fraction=0.2, test_fraction=0.25, seed=5, normalize=False)
    ids = [set(part.x.flatten().long().tolist()) for part in (s.train, s.valid, s.test)]
    assert sum(map(len, ids)) == n and set().union(*ids) == set(range(n))
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    again = from_torch_dataset(ds, valid_fraction=0.2, test_fraction=0.25, seed=5, normalize=False)
    assert torch.equal(again.valid.x, s.valid.x)


def test_from_torch_dataset_with_and_without_test():
    g = torch.Generator().manual_seed(0)
    train = TensorDataset(torch.rand(80, 3, 6, 6, generator=g), torch.arange(80) % 4)
    test = TensorDataset(torch.rand(20, 3, 6, 6, generator=g), torch.arange(20) % 4)
    s = from_torch_dataset(train, test, valid_fraction=0.25, seed=1)
    assert (len(s.train), len(s.valid), len(s.test)) == (60, 20, 20)
    assert s.num_classes == 4 and s.in_channels == 3 and s.image_size == (6, 6)
    assert s.name == "custom"
    s2 = from_torch_dataset(train, valid_fraction=0.25, seed=1, test_fraction=0.2, num_classes=5)
    assert (len(s2.train), len(s2.valid), len(s2.test)) == (48, 16, 16) and s2.num_classes == 5
    assert torch.equal(s2.valid.x, from_torch_dataset(train, valid_fraction=0.25, seed=1).valid.x)
    # 2-D images get a channel axis
    flat = TensorDataset(torch.rand(30, 5, 5), torch.arange(30) % 2)
    assert from_torch_dataset(flat).in_channels == 1


def test_from_torch_dataset_bad_items():
    class Bad(torch.utils.data.Dataset):
        def __init__(self, item):
            self.item = item

        def __len__(self):
            return 5

        def __getitem__(self, i):
            return self.item

    with pytest.raises(TypeError, match="image must be a tensor"):
        from_torch_dataset(Bad(("img", 1)))
    with pytest.raises(TypeError, match="label"):
        from_torch_dataset(Bad((torch.zeros(1, 4, 4), "cat")))
    with pytest.raises(ValueError, match="C, H, W"):
        from_torch_dataset(Bad((torch.zeros(4), 1)))
    with pytest.raises(TypeError, match="pair"):
        from_torch_dataset(Bad(torch.zeros(1, 4, 4)))
    with pytest.raises(ValueError, match="num_classes"):
        from_torch_dataset(TensorDataset(torch.rand(10, 1, 2, 2), torch.arange(10) % 3), num_classes=2)
    with pytest.raises(ValueError, match="empty"):
        from_torch_dataset(TensorDataset(torch.rand(0, 1, 2, 2), torch.zeros(0, dtype=torch.long)))


def test_tensor_split_validation():
    with pytest.raises(ValueError, match="N, C, H, W"):
        TensorSplit(torch.zeros(3, 4), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="y must be"):
        TensorSplit(torch.zeros(3, 1, 2, 2), torch.zeros(4, dtype=torch.long))
    with pytest.raises(TypeError, match="torch.long"):
        TensorSplit(torch.zeros(3, 1, 2, 2), torch.zeros(3))
    ok = TensorSplit(torch.zeros(3, 1, 2, 2), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="batch_size"):
        next(ok.batches(0))


def test_image_size_resamples_all_splits():
    s = load_dataset("digits", seed=0, image_size=4, limit_train=50)
    assert s.image_size == (4, 4)
    assert s.train.x.shape == (50, 1, 4, 4) and s.test.x.shape[1:] == (1, 4, 4)
    big = load_dataset("digits", seed=0, image_size=12, limit_train=50)
    assert big.image_size == (12, 12)
    # resampling keeps the labels and the split membership
    same = load_dataset("digits", seed=0, limit_train=50)
    assert torch.equal(s.train.y, same.train.y) and torch.equal(s.valid.y, same.valid.y)
    with pytest.raises(ValueError, match="image_size"):
        load_dataset("digits", image_size=0)
