"""Image-classification data as in-memory tensors with fixed train / valid / test splits.

Three sources:

* ``"fashion-mnist"``: the four IDX ``.gz`` files of the Debian package ``dataset-fashion-mnist``
  (``/usr/share/datasets/fashion-mnist``); ``root=`` or ``$NASRANK_FASHION_MNIST`` points elsewhere.
  Nothing is ever downloaded at run time.
* ``"digits"``: scikit-learn's 8x8 digits (1,797 images, shipped with scikit-learn) for fast tests.
* any ``torch.utils.data.Dataset`` of ``(image tensor, int label)`` through :func:`from_torch_dataset`.

Every split is a :class:`TensorSplit` (``x`` float ``[N, C, H, W]``, normalised with the training
split's per-channel mean and std; ``y`` long ``[N]``). The validation split is carved from the training
data with a seeded permutation, so the same ``seed`` always gives the same three splits. Whole splits
live on one device (the GPU when asked for): batching then is only indexing, no host-device copies.

Example::

    >>> splits = load_dataset("digits", seed=0)
    >>> splits.train.x.shape[1:], splits.num_classes
    (torch.Size([1, 8, 8]), 10)
    >>> xb, yb = next(splits.train.batches(32, generator=torch.Generator().manual_seed(0)))
    >>> xb.shape
    torch.Size([32, 1, 8, 8])
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from ray_nasrank._checks import check_int, check_number

__all__ = [
    "TensorSplit",
    "DatasetSplits",
    "load_dataset",
    "from_torch_dataset",
    "resolve_device",
    "DATASETS",
    "FASHION_MNIST_DIR",
    "FASHION_MNIST_ENV",
]

#: names accepted by :func:`load_dataset`
DATASETS: tuple[str, ...] = ("fashion-mnist", "digits")
#: where the Debian package ``dataset-fashion-mnist`` puts the files
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
#: environment variable naming a folder with the four Fashion-MNIST IDX files
FASHION_MNIST_ENV = "NASRANK_FASHION_MNIST"
_FASHION_FILES = {
    "train_x": "train-images-idx3-ubyte.gz",
    "train_y": "train-labels-idx1-ubyte.gz",
    "test_x": "t10k-images-idx3-ubyte.gz",
    "test_y": "t10k-labels-idx1-ubyte.gz",
}
# scikit-learn digits have no official test set: a fixed, seed-independent 20 % stratified holdout
_DIGITS_TEST_FRACTION = 0.2
_DIGITS_TEST_SEED = 12345


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The torch device a run uses.

    Args:
        device: ``"auto"`` or ``None`` for CUDA when available else CPU; anything else
            ``torch.device`` accepts (``"cpu"``, ``"cuda:0"``, a ``torch.device``).

    Returns:
        The resolved ``torch.device``.

    Raises:
        ValueError: ``device`` is not a valid device, or names CUDA when CUDA is not available.
    """
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"invalid device {device!r}: {e}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available; use 'cpu' or 'auto'")
    return dev


@dataclass
class TensorSplit:
    """One split held as two tensors on one device.

    Args:
        x: float images ``[N, C, H, W]``.
        y: long class indices ``[N]``.

    Raises:
        TypeError: ``x`` or ``y`` is not a tensor, ``x`` is not floating point or ``y`` not ``torch.long``.
        ValueError: ``x`` is not 4-D or ``y`` is not ``[N]`` with the same ``N``.
    """

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        if not isinstance(self.x, torch.Tensor) or not isinstance(self.y, torch.Tensor):
            raise TypeError(
                f"TensorSplit needs tensors, got x={type(self.x).__name__}, y={type(self.y).__name__}"
            )
        if self.x.dim() != 4:
            raise ValueError(f"TensorSplit.x must be [N, C, H, W], got shape {tuple(self.x.shape)}")
        if self.y.dim() != 1 or self.y.shape[0] != self.x.shape[0]:
            raise ValueError(
                f"TensorSplit.y must be [N] with N = {self.x.shape[0]}, got shape {tuple(self.y.shape)}"
            )
        if self.y.dtype != torch.long:
            raise TypeError(f"TensorSplit.y must be torch.long, got {self.y.dtype}")
        if not torch.is_floating_point(self.x):
            raise TypeError(f"TensorSplit.x must be a float tensor, got {self.x.dtype}")

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def device(self) -> torch.device:
        return self.x.device

    def to(self, device: str | torch.device) -> "TensorSplit":
        dev = resolve_device(device)
        return TensorSplit(self.x.to(dev), self.y.to(dev))

    def subset(self, n: int) -> "TensorSplit":
        """The first ``n`` examples (splits are already shuffled once, so this is a random subset)."""
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
            raise ValueError(f"subset size must be a positive integer, got {n!r}")
        return TensorSplit(self.x[:n], self.y[:n])

    def batches(self, batch_size: int, shuffle: bool = True, generator: torch.Generator | None = None,
                drop_last: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``(x, y)`` mini-batches; ``generator`` (a CPU ``torch.Generator``) fixes the order."""
        if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        n = len(self)
        if shuffle:
            # permutation drawn on the CPU (where the generator lives), then moved: same order on any device
            order = torch.randperm(n, generator=generator).to(self.x.device)
        else:
            order = None
        stop = n - n % batch_size if drop_last else n
        for start in range(0, stop, batch_size):
            end = min(start + batch_size, n)
            if order is None:
                yield self.x[start:end], self.y[start:end]
            else:
                idx = order[start:end]
                yield self.x[idx], self.y[idx]


@dataclass
class DatasetSplits:
    """Train / valid / test splits of one dataset plus its shape facts.

    Args:
        train: the training split.
        valid: the validation split (carved from the training data).
        test: the test split.
        num_classes: number of classes (labels are ``0 .. num_classes - 1``).
        name: the dataset's name (for logs and result files).
    """

    train: TensorSplit
    valid: TensorSplit
    test: TensorSplit
    num_classes: int
    name: str

    @property
    def in_channels(self) -> int:
        return int(self.train.x.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.train.x.shape[2]), int(self.train.x.shape[3])

    @property
    def device(self) -> torch.device:
        return self.train.device

    def to(self, device: str | torch.device) -> "DatasetSplits":
        return DatasetSplits(self.train.to(device), self.valid.to(device), self.test.to(device),
                             self.num_classes, self.name)

    def __repr__(self) -> str:
        return (f"DatasetSplits({self.name!r}, train={len(self.train)}, valid={len(self.valid)}, "
                f"test={len(self.test)}, classes={self.num_classes}, "
                f"shape={(self.in_channels, *self.image_size)}, device={self.device})")


# --------------------------------------------------------------------------- helpers
def _carve_valid(n: int, valid_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded permutation of ``range(n)`` split into (train indices, valid indices)."""
    perm = np.random.default_rng(seed).permutation(n)
    n_valid = max(1, int(round(n * valid_fraction)))
    if n_valid >= n:
        raise ValueError(f"valid_fraction={valid_fraction} leaves no training examples out of {n}")
    return perm[n_valid:], perm[:n_valid]


def _make_splits(name: str, train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                 test_y: np.ndarray, num_classes: int, valid_fraction: float, seed: int,
                 device: str | torch.device, limit_train: int | None, limit_valid: int | None,
                 limit_test: int | None, normalize: bool = True,
                 image_size: int | None = None) -> DatasetSplits:
    """Carve validation from train, normalise with train statistics, move to the device once."""
    tr_idx, va_idx = _carve_valid(len(train_y), valid_fraction, seed)
    if limit_train is not None:
        tr_idx = tr_idx[:limit_train]
    if limit_valid is not None:
        va_idx = va_idx[:limit_valid]
    if limit_test is not None:
        te_idx = np.random.default_rng(seed).permutation(len(test_y))[:limit_test]
        test_x, test_y = test_x[te_idx], test_y[te_idx]
    if image_size is not None:
        # resample only the images that are kept (cheap even for the full 60k set)
        keep = np.concatenate([tr_idx, va_idx])
        resized = _resize(train_x[keep], image_size)
        train_x = np.zeros((len(train_x), *resized.shape[1:]), dtype=np.float32)
        train_x[keep] = resized
        test_x = _resize(test_x, image_size)
    x_tr = train_x[tr_idx].astype(np.float32)
    if normalize:
        # per-channel statistics of the (possibly limited) training split only: no leak from valid/test
        mean = x_tr.mean(axis=(0, 2, 3), keepdims=True)
        std = x_tr.std(axis=(0, 2, 3), keepdims=True) + 1e-6
    else:
        mean, std = np.float32(0.0), np.float32(1.0)

    def split(x: np.ndarray, y: np.ndarray) -> TensorSplit:
        xt = torch.from_numpy(((x.astype(np.float32) - mean) / std).astype(np.float32))
        return TensorSplit(xt, torch.from_numpy(np.asarray(y, dtype=np.int64)))

    out = DatasetSplits(
        train=split(x_tr, train_y[tr_idx]),
        valid=split(train_x[va_idx], train_y[va_idx]),
        test=split(test_x, test_y),
        num_classes=int(num_classes),
        name=name,
    )
    return out.to(device)


def _resize(x: np.ndarray, size: int) -> np.ndarray:
    """Resample ``[N, C, H, W]`` images to ``size x size`` (antialiased bilinear)."""
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    if t.shape[-2:] == (size, size):
        return t.numpy()
    return F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False).numpy()


# --------------------------------------------------------------------------- Fashion-MNIST
def _fashion_dir(root: str | os.PathLike | None) -> tuple[Path, str]:
    if root is not None:
        return Path(root), "root argument"
    env = os.environ.get(FASHION_MNIST_ENV)
    if env:
        return Path(env), f"${FASHION_MNIST_ENV}"
    return FASHION_MNIST_DIR, "default Debian path"


def _read_idx_gz(path: Path, expect_dims: int) -> np.ndarray:
    """Read one gzipped IDX file (magic: 0, 0, dtype 0x08 = uint8, number of dims)."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or raw[3] != expect_dims:
        raise ValueError(f"{str(path)!r} is not a uint8 IDX file with {expect_dims} dimension(s)")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(expect_dims))
    offset = 4 + 4 * expect_dims
    data = np.frombuffer(raw, dtype=np.uint8, offset=offset)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{str(path)!r} is truncated: header says {dims}, found {data.size} bytes of data")
    return data.reshape(dims)


def _load_fashion_arrays(root: str | os.PathLike | None) -> tuple[np.ndarray, ...]:
    folder, source = _fashion_dir(root)
    missing = [f for f in _FASHION_FILES.values() if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST not found in {str(folder)!r} ({source}); missing {missing}. "
            f"Install it with 'sudo apt-get install dataset-fashion-mnist' (files go to "
            f"{FASHION_MNIST_DIR}), or pass root=<folder> / set {FASHION_MNIST_ENV}=<folder> "
            f"holding the four IDX .gz files. Nothing is downloaded at run time."
        )
    tx = _read_idx_gz(folder / _FASHION_FILES["train_x"], 3)[:, None]
    ty = _read_idx_gz(folder / _FASHION_FILES["train_y"], 1)
    sx = _read_idx_gz(folder / _FASHION_FILES["test_x"], 3)[:, None]
    sy = _read_idx_gz(folder / _FASHION_FILES["test_y"], 1)
    if len(tx) != len(ty) or len(sx) != len(sy):
        raise ValueError(f"Fashion-MNIST files in {str(folder)!r} disagree on the number of examples")
    # scale to [0, 1] before normalising, so the stored statistics read like the usual ones
    return tx / np.float32(255.0), ty, sx / np.float32(255.0), sy


def _load_digits_arrays() -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images.astype(np.float32) / np.float32(16.0))[:, None]
    y = d.target.astype(np.int64)
    tx, sx, ty, sy = train_test_split(x, y, test_size=_DIGITS_TEST_FRACTION, stratify=y,
                                      random_state=_DIGITS_TEST_SEED)
    return tx, ty, sx, sy


def load_dataset(name: str, root: str | os.PathLike | None = None, valid_fraction: float = 0.1,
                 seed: int = 0, device: str | torch.device = "cpu", limit_train: int | None = None,
                 limit_valid: int | None = None, limit_test: int | None = None,
                 image_size: int | None = None) -> DatasetSplits:
    """Load a built-in dataset as fixed, seeded train / valid / test splits.

    ``valid_fraction`` of the official training set becomes the validation split (a seeded
    permutation); the test split is the official test set (digits: a fixed 20 % stratified
    holdout). ``limit_*`` keep only the first N of a split (a random subset, as splits are shuffled).
    ``image_size`` resamples images to ``image_size x image_size`` (e.g. 14 for cheap CPU runs).
    ``device="auto"`` uses the GPU when there is one.

    Args:
        name: ``"fashion-mnist"`` or ``"digits"`` (case and ``_``/``-`` do not matter).
        root: folder holding Fashion-MNIST's four IDX ``.gz`` files (default: the Debian
            package's folder or ``$NASRANK_FASHION_MNIST``); only for ``"fashion-mnist"``.
        valid_fraction: share of the training set held out for validation, in ``(0, 1)``.
        seed: seeds the validation carve-out and the order of every split.
        device: where the tensors live (see :func:`resolve_device`).
        limit_train: keep only the first N training examples (``None``: all).
        limit_valid: keep only the first N validation examples.
        limit_test: keep only N test examples (a seeded subset).
        image_size: resample images to ``image_size x image_size`` (``None``: as stored).

    Returns:
        The :class:`DatasetSplits`, normalised with the training split's statistics.

    Raises:
        TypeError: ``name`` is not a string, or a limit is not an integer.
        ValueError: unknown dataset, ``valid_fraction`` or a limit out of range, ``root`` given for
            another dataset than Fashion-MNIST, or an invalid ``device``.
        FileNotFoundError: the Fashion-MNIST files are not installed (nothing is downloaded).

    >>> load_dataset("digits", limit_train=100).train.x.shape[0]
    100
    """
    if not isinstance(name, str):
        raise TypeError(f"dataset name must be a string, got {type(name).__name__}: {name!r}")
    key = name.lower().replace("_", "-")
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {list(DATASETS)} "
                         f"(wrap your own torch Dataset with from_torch_dataset)")
    valid_fraction = check_number("valid_fraction", valid_fraction, 0, 1, low_open=True, high_open=True)
    limit_train = check_int("limit_train", limit_train, low=1, optional=True)
    limit_valid = check_int("limit_valid", limit_valid, low=1, optional=True)
    limit_test = check_int("limit_test", limit_test, low=1, optional=True)
    image_size = check_int("image_size", image_size, low=1, optional=True)
    if root is not None and key != "fashion-mnist":
        raise ValueError(f"root= only applies to 'fashion-mnist', not {name!r}")
    dev = resolve_device(device)
    if key == "fashion-mnist":
        arrays = _load_fashion_arrays(root)
    else:
        arrays = _load_digits_arrays()
    return _make_splits(key, *arrays, num_classes=10, valid_fraction=valid_fraction, seed=int(seed),
                        device=dev, limit_train=limit_train, limit_valid=limit_valid, limit_test=limit_test,
                        image_size=image_size)


# --------------------------------------------------------------------------- any torch Dataset
def _materialise(ds: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        n = len(ds)
    except TypeError:
        raise TypeError(f"{what} must be a map-style torch Dataset with __len__, "
                        f"got {type(ds).__name__}") from None
    if n == 0:
        raise ValueError(f"{what} is empty")
    xs, ys = [], []
    for i in range(n):
        item = ds[i]
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise TypeError(f"{what}[{i}] must be an (image, label) pair, got {type(item).__name__}")
        img, label = item[0], item[1]
        if isinstance(img, np.ndarray):
            img = torch.from_numpy(img)
        if not isinstance(img, torch.Tensor):
            raise TypeError(f"{what}[{i}] image must be a tensor or numpy array, got {type(img).__name__} "
                            f"(add a ToTensor-style transform)")
        if img.dim() == 2:
            img = img.unsqueeze(0)
        if img.dim() != 3:
            raise ValueError(f"{what}[{i}] image must be [C, H, W] or [H, W], got shape {tuple(img.shape)}")
        if isinstance(label, torch.Tensor):
            if label.numel() != 1:
                raise ValueError(f"{what}[{i}] label must be one integer, got a tensor of shape {tuple(label.shape)}")
            label = label.item()
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or label < 0:
            raise TypeError(f"{what}[{i}] label must be a non-negative int class index, got {label!r}")
        if xs and img.shape != xs[0].shape:
            raise ValueError(f"{what}[{i}] image shape {tuple(img.shape)} differs from "
                             f"{tuple(xs[0].shape)} of item 0; resize images to one shape")
        xs.append(img.detach().to("cpu", torch.float32))
        ys.append(int(label))
    return torch.stack(xs).numpy(), np.asarray(ys, dtype=np.int64)


def from_torch_dataset(train_ds: Any, test_ds: Any | None = None, valid_fraction: float = 0.1,
                       seed: int = 0, device: str | torch.device = "cpu", num_classes: int | None = None,
                       test_fraction: float = 0.2, normalize: bool = True,
                       name: str = "custom") -> DatasetSplits:
    """Wrap any map-style ``torch.utils.data.Dataset`` of ``(image, int label)`` as splits.

    The dataset is read once into memory. Without ``test_ds`` a seeded ``test_fraction`` of
    ``train_ds`` becomes the test split; validation is then carved from the rest. ``normalize``
    standardises each channel with the training split's statistics.

    Args:
        train_ds: map-style dataset (``len`` and ``ds[i]``) of ``(image, label)`` pairs; images
            are ``[C, H, W]`` or ``[H, W]`` tensors or arrays of one shape, labels non-negative ints.
        test_ds: an own test set of the same form (``None``: hold out ``test_fraction`` of ``train_ds``).
        valid_fraction: share of the training data held out for validation, in ``(0, 1)``.
        seed: seeds the held-out splits and the order of every split.
        device: where the tensors live (see :func:`resolve_device`).
        num_classes: number of classes (``None``: largest label + 1).
        test_fraction: share of ``train_ds`` held out for testing when ``test_ds`` is ``None``.
        normalize: standardise each channel with the training split's statistics.
        name: the dataset's name in :class:`DatasetSplits`.

    Returns:
        The :class:`DatasetSplits`.

    Raises:
        TypeError: a dataset is not map-style, an item is not an ``(image, int label)`` pair or an
            image is neither a tensor nor an array.
        ValueError: an empty dataset, images of different shapes, a fraction out of range or leaving
            too few training examples, ``num_classes`` smaller than the labels present, or an
            invalid ``device``.

    >>> from torch.utils.data import TensorDataset
    >>> ds = TensorDataset(torch.randn(50, 1, 4, 4), torch.arange(50) % 3)
    >>> from_torch_dataset(ds, seed=0).num_classes
    3
    """
    valid_fraction = check_number("valid_fraction", valid_fraction, 0, 1, low_open=True, high_open=True)
    tx, ty = _materialise(train_ds, "train_ds")
    if test_ds is None:
        test_fraction = check_number("test_fraction", test_fraction, 0, 1, low_open=True, high_open=True)
        perm = np.random.default_rng(seed + 7919).permutation(len(ty))
        n_test = max(1, int(round(len(ty) * test_fraction)))
        if n_test >= len(ty) - 1:
            raise ValueError(f"test_fraction={test_fraction} leaves too few training examples of {len(ty)}")
        te, tr = perm[:n_test], perm[n_test:]
        sx, sy, tx, ty = tx[te], ty[te], tx[tr], ty[tr]
    else:
        sx, sy = _materialise(test_ds, "test_ds")
        if sx.shape[1:] != tx.shape[1:]:
            raise ValueError(f"test_ds images {sx.shape[1:]} differ in shape from train_ds images {tx.shape[1:]}")
    seen = int(max(ty.max(), sy.max())) + 1
    if num_classes is None:
        num_classes = seen
    elif isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < seen:
        raise ValueError(f"num_classes={num_classes!r} is smaller than the labels present (max label {seen - 1})")
    return _make_splits(name, tx, ty, sx, sy, num_classes=int(num_classes), valid_fraction=valid_fraction,
                        seed=int(seed), device=resolve_device(device), limit_train=None, limit_valid=None,
                        limit_test=None, normalize=normalize)


def split_sizes(splits: DatasetSplits) -> Sequence[int]:
    """``(train, valid, test)`` sizes, handy for logs and result files."""
    return len(splits.train), len(splits.valid), len(splits.test)
