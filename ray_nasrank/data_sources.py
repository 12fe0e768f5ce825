"""The user's own images as fixed, recorded splits: an image-folder tree, an ``.npz`` file, or
``MODULE:FUNCTION`` returning torch datasets — next to the built-in datasets of
:mod:`ray_nasrank.data`.

:func:`read_source` reads a source once into arrays (:class:`RawData`), checking it (one clear
error naming the file, key or row for wrong shapes, a single class, non-image files or labels
out of range); :func:`make_splits` cuts those arrays into seeded train / valid / test splits at
a fidelity (image size, limits); :func:`describe` records what was read and how it was split
(``data.json`` of a search), with a fingerprint of the arrays so a resumed run can tell when
the data changed.

Sources:

* ``"fashion-mnist"`` / ``"digits"``: the built-in datasets (:func:`ray_nasrank.data.load_dataset`).
* a folder: one subfolder per class (``root/<class>/<image>``), or ``root/train/<class>/...`` and
  ``root/test/<class>/...``; images are read with Pillow (grayscale stays one channel, anything
  else becomes RGB); hidden files are ignored, any other non-image file is an error.
* ``*.npz``: ``x`` (``[N, H, W]``, ``[N, C, H, W]`` or ``[N, H, W, C]``; uint8 is scaled to
  [0, 1]) and ``y`` (``[N]`` integer class ids ``0..K-1``), optionally ``x_test``/``y_test`` and
  ``classes`` (names, which fixes ``K``).
* ``MODULE:FUNCTION``: a function returning a map-style torch ``Dataset`` of ``(image, label)``
  or a pair ``(train, test)``; ``MODULE`` is imported from the current folder or ``sys.path``.

Without a test set of its own, a fixed 20 % of the data (a seed that does not change with the
run's seed) is held out as the test split.

>>> import numpy as np, tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "toy.npz")
>>> rng = np.random.default_rng(0)
>>> np.savez(path, x=rng.integers(0, 255, (60, 8, 8), dtype=np.uint8), y=np.arange(60) % 3)
>>> raw = read_source(path)
>>> raw.kind, raw.num_classes, raw.train_x.shape
('npz', 3, (48, 1, 8, 8))
>>> splits = make_splits(raw, seed=0)
>>> len(splits.train), len(splits.valid), len(splits.test)
(43, 5, 12)
"""

from __future__ import annotations

import hashlib
import importlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ray_nasrank.data import DATASETS, DatasetSplits, _load_digits_arrays, _load_fashion_arrays, _make_splits

__all__ = ["RawData", "DataSourceError", "read_source", "make_splits", "describe", "TEST_FRACTION"]

#: share of a source without its own test set that is held out for testing
TEST_FRACTION = 0.2
# the held-out test split does not move with the run's seed: every run scores on the same images
_TEST_SEED = 12345
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


class DataSourceError(ValueError):
    """A data source that cannot be used as it is (the message names the file, key or row).

    Args:
        message: what is wrong and where (file, key or row).
    """


@dataclass
class RawData:
    """A source read into arrays: ``x`` float32 ``[N, C, H, W]``, ``y`` int64 ``[N]``.

    Args:
        train_x: training images, float32 ``[N, C, H, W]``.
        train_y: training labels, int64 ``[N]``.
        test_x: test images of the same shape.
        test_y: test labels.
        classes: class names; label ``i`` is ``classes[i]``.
        source: the source as given (dataset name, folder, file or ``MODULE:FUNCTION``).
        kind: ``"builtin"``, ``"image-folder"``, ``"npz"`` or ``"function"``.
        test_from: how the test split came about (``"own test set"`` or the held-out share).
        notes: anything else worth reporting about the read (JSON-ready).
    """

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    classes: list[str]
    source: str
    kind: str
    #: how the test split came about ("own test set" or the held-out share)
    test_from: str = "own test set"
    notes: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(v) for v in self.train_x.shape[1:])  # type: ignore[return-value]

    def fingerprint(self) -> str:
        """SHA-1 of the arrays (what a resumed search compares with the recorded one)."""
        h = hashlib.sha1()
        for a in (self.train_x, self.train_y, self.test_x, self.test_y):
            h.update(str(a.shape).encode())
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()


# ------------------------------------------------------------------------------------ checks
def _check_labels(y: Any, n: int, what: str, num_classes: int | None) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        raise DataSourceError(f"{what}: labels must have shape [{n}] (one per image), got {list(y.shape)}")
    if y.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(y) | (y != np.round(y)))
        if bad.size:
            raise DataSourceError(f"{what}: label {y[bad[0]]!r} of row {int(bad[0])} is not a whole class id")
    elif y.dtype.kind not in "iu":
        raise DataSourceError(f"{what}: labels must be integer class ids, got dtype {y.dtype}")
    y = y.astype(np.int64)
    hi = num_classes if num_classes is not None else None
    bad = np.flatnonzero((y < 0) | (y >= hi if hi is not None else False))
    if bad.size:
        rng = f"0..{hi - 1}" if hi is not None else ">= 0"
        raise DataSourceError(f"{what}: label {int(y[bad[0]])} of row {int(bad[0])} is out of range "
                              f"(class ids must be {rng})")
    return y


def _check_images(x: Any, what: str) -> np.ndarray:
    """``[N, H, W]``, ``[N, C, H, W]`` or ``[N, H, W, C]`` (C in 1, 3, 4) -> float32 ``[N, C, H, W]``."""
    x = np.asarray(x)
    if x.dtype.kind not in "uif" or x.dtype == np.bool_:
        raise DataSourceError(f"{what}: images must be numbers, got dtype {x.dtype}")
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4:
        if x.shape[1] not in (1, 3, 4) and x.shape[3] in (1, 3, 4):
            x = x.transpose(0, 3, 1, 2)  # channels last -> first
        elif x.shape[1] not in (1, 3, 4):
            raise DataSourceError(f"{what}: cannot tell the channel axis of shape {list(x.shape)}; "
                                  "give [N, C, H, W] or [N, H, W, C] with C = 1, 3 or 4")
    else:
        raise DataSourceError(f"{what}: images must be [N, H, W], [N, C, H, W] or [N, H, W, C], "
                              f"got shape {list(x.shape)}")
    if x.shape[0] == 0:
        raise DataSourceError(f"{what}: holds no images")
    if min(x.shape[2:]) < 2:
        raise DataSourceError(f"{what}: images of {x.shape[2]}x{x.shape[3]} pixels are too small")
    scale = np.float32(255.0) if x.dtype == np.uint8 else np.float32(1.0)
    out = x.astype(np.float32) / scale
    if not np.isfinite(out).all():
        row = int(np.flatnonzero(~np.isfinite(out.reshape(len(out), -1)).all(axis=1))[0])
        raise DataSourceError(f"{what}: image {row} holds NaN or infinite values")
    return out


def _finish(tx: np.ndarray, ty: np.ndarray, sx: np.ndarray | None, sy: np.ndarray | None,
            classes: list[str] | None, source: str, kind: str) -> RawData:
    """Hold out a test split when there is none; check the classes; build the :class:`RawData`."""
    k = len(classes) if classes is not None else int(max(ty.max(), -1 if sy is None else sy.max())) + 1
    if classes is None:
        classes = [str(i) for i in range(k)]
    if k < 2:
        raise DataSourceError(f"{source}: one class only ({classes[0]!r}); classification needs at least 2")
    missing = sorted(set(range(k)) - set(np.unique(ty).tolist()))
    if missing:
        names = [classes[i] for i in missing[:5]]
        raise DataSourceError(f"{source}: class(es) {names} have no training image "
                              f"(labels must be 0..{k - 1}, each used at least once)")
    if sx is not None and sx.shape[1:] != tx.shape[1:]:
        raise DataSourceError(f"{source}: test images are {list(sx.shape[1:])}, training images "
                              f"{list(tx.shape[1:])}; they must match")
    test_from = "own test set"
    if sx is None:
        perm = np.random.default_rng(_TEST_SEED).permutation(len(ty))
        n_test = max(1, int(round(len(ty) * TEST_FRACTION)))
        if len(ty) - n_test < 4:
            raise DataSourceError(f"{source}: {len(ty)} images are too few to hold out a test split")
        te, tr = np.sort(perm[:n_test]), np.sort(perm[n_test:])
        tx, ty, sx, sy = tx[tr], ty[tr], tx[te], ty[te]
        test_from = f"held out: {TEST_FRACTION:.0%} of the data (fixed seed {_TEST_SEED})"
    return RawData(tx, ty, sx, sy, list(classes), source, kind, test_from)


# ------------------------------------------------------------------------------------ readers
def _read_npz(path: Path) -> RawData:
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataSourceError(f"{str(path)!r} is not a readable .npz file: {e}") from None
    with z:
        keys = set(z.files)
        if not {"x", "y"} <= keys:
            raise DataSourceError(f"{str(path)!r} needs arrays 'x' (images) and 'y' (labels); it has {sorted(keys)}")
        if ("x_test" in keys) != ("y_test" in keys):
            raise DataSourceError(f"{str(path)!r}: give both 'x_test' and 'y_test' or neither")
        classes = [str(c) for c in z["classes"].tolist()] if "classes" in keys else None
        k = len(classes) if classes is not None else None
        tx = _check_images(z["x"], f"{path.name}['x']")
        ty = _check_labels(z["y"], len(tx), f"{path.name}['y']", k)
        sx = sy = None
        if "x_test" in keys:
            sx = _check_images(z["x_test"], f"{path.name}['x_test']")
            sy = _check_labels(z["y_test"], len(sx), f"{path.name}['y_test']", k)
    return _finish(tx, ty, sx, sy, classes, str(path), "npz")


def _image_files(folder: Path) -> dict[str, list[Path]]:
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    out = {}
    for c in classes:
        files = sorted(p for p in (folder / c).rglob("*") if p.is_file() and not p.name.startswith("."))
        for p in files:
            if p.suffix.lower() not in _IMAGE_SUFFIXES:
                raise DataSourceError(f"{str(p)!r} is not an image file (expected one of "
                                      f"{sorted(_IMAGE_SUFFIXES)}); remove it or move it out of {str(folder)!r}")
        if not files:
            raise DataSourceError(f"class folder {str(folder / c)!r} holds no images")
        out[c] = files
    return out


def _read_images(files: dict[str, list[Path]], classes: list[str], resize: int | None,
                 gray: bool) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image, UnidentifiedImageError

    xs, ys, first = [], [], None
    for label, c in enumerate(classes):
        for p in files.get(c, []):
            try:
                with Image.open(p) as im:
                    im = im.convert("L" if gray else "RGB")
                    if resize is not None and im.size != (resize, resize):
                        im = im.resize((resize, resize), Image.BILINEAR)
                    a = np.asarray(im, dtype=np.uint8)
            except (UnidentifiedImageError, OSError) as e:
                raise DataSourceError(f"{str(p)!r} cannot be read as an image: {e}") from None
            if first is None:
                first = (p, a.shape)
            elif a.shape != first[1]:
                raise DataSourceError(
                    f"images differ in size: {str(p)!r} is {a.shape[1]}x{a.shape[0]}, {str(first[0])!r} is "
                    f"{first[1][1]}x{first[1][0]}; resize them to one size or pass a final image size "
                    "(--final-image-size N) to resample every image")
            xs.append(a)
            ys.append(label)
    x = np.stack(xs)
    x = x[:, None] if gray else x.transpose(0, 3, 1, 2)
    return x.astype(np.float32) / np.float32(255.0), np.asarray(ys, dtype=np.int64)


def _is_gray(files: list[Path]) -> bool:
    from PIL import Image, UnidentifiedImageError

    for p in files:
        try:
            with Image.open(p) as im:
                if im.mode not in ("1", "L", "LA", "I", "I;16", "F"):
                    return False
        except (UnidentifiedImageError, OSError) as e:
            raise DataSourceError(f"{str(p)!r} cannot be read as an image: {e}") from None
    return True


def _read_folder(root: Path, resize: int | None) -> RawData:
    subdirs = {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}
    if not subdirs:
        raise DataSourceError(f"{str(root)!r} has no subfolders: put each class's images in a folder "
                              "named after the class (root/<class>/<image>)")
    split = "train" in subdirs and "test" in subdirs
    train_files = _image_files(root / "train" if split else root)
    test_files = _image_files(root / "test") if split else {}
    classes = sorted(train_files)
    unknown = sorted(set(test_files) - set(classes))
    if unknown:
        raise DataSourceError(f"{str(root / 'test')!r} has class folder(s) {unknown} that train/ lacks")
    everything = [p for fs in (*train_files.values(), *test_files.values()) for p in fs]
    gray = _is_gray(everything)
    tx, ty = _read_images(train_files, classes, resize, gray)
    sx = sy = None
    if split:
        sx, sy = _read_images(test_files, classes, resize, gray)
    if len(classes) < 2:
        raise DataSourceError(f"{str(root)!r}: one class folder only ({classes[0]!r}); "
                              "classification needs at least 2")
    return _finish(tx, ty, sx, sy, classes, str(root), "image-folder")


def _materialise(ds: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    from ray_nasrank.data import _materialise as read

    try:
        x, y = read(ds, what)
    except (TypeError, ValueError) as e:
        raise DataSourceError(str(e)) from None
    return _check_images(x, what), _check_labels(y, len(x), what, None)


def _read_function(spec: str) -> RawData:
    module, _, name = spec.partition(":")
    if not module or not name:
        raise DataSourceError(f"{spec!r}: a data function is written MODULE:FUNCTION")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # a user's module next to where they run the command
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        raise DataSourceError(f"{spec!r}: cannot import module {module!r} ({e})") from None
    fn = getattr(mod, name, None)
    if not callable(fn):
        raise DataSourceError(f"{spec!r}: module {module!r} has no function {name!r}")
    got = fn()
    if isinstance(got, (tuple, list)):
        if len(got) != 2:
            raise DataSourceError(f"{spec!r} returned {len(got)} items; return a dataset or (train, test)")
        train, test = got
    else:
        train, test = got, None
    tx, ty = _materialise(train, f"{spec} train dataset")
    sx = sy = None
    if test is not None:
        sx, sy = _materialise(test, f"{spec} test dataset")
    classes = getattr(train, "classes", None)
    classes = [str(c) for c in classes] if isinstance(classes, (list, tuple)) else None
    if classes is not None:
        for y, what in ((ty, "train"), (sy, "test")):
            if y is not None and y.max() >= len(classes):
                raise DataSourceError(f"{spec} {what} dataset: label {int(y.max())} is out of range for its "
                                      f"{len(classes)} classes")
    return _finish(tx, ty, sx, sy, classes, spec, "function")


def read_source(source: str, resize: int | None = None) -> RawData:
    """Read a built-in dataset name, a folder, an ``.npz`` file or ``MODULE:FUNCTION``.

    ``resize``: resample folder images to ``resize x resize`` while reading (needed when the
    images differ in size).

    Args:
        source: a built-in dataset name (``"fashion-mnist"``, ``"digits"``), a folder with one
            sub-folder of images per class, an ``.npz`` file, or ``MODULE:FUNCTION`` returning arrays.
        resize: resample folder images to ``resize x resize`` (``None``: keep their size).

    Returns:
        The :class:`RawData` read.

    Raises:
        DataSourceError: the source is empty, missing or malformed (the message names the file,
            key or row).
        FileNotFoundError: ``"fashion-mnist"`` is named but not installed.
    """
    if not isinstance(source, str) or not source.strip():
        raise DataSourceError(f"a data source is a dataset name, a folder, an .npz file or MODULE:FUNCTION, "
                              f"got {source!r}")
    key = source.lower().replace("_", "-")
    if key in DATASETS:
        tx, ty, sx, sy = _load_fashion_arrays(None) if key == "fashion-mnist" else _load_digits_arrays()
        raw = RawData(np.asarray(tx, np.float32), np.asarray(ty, np.int64), np.asarray(sx, np.float32),
                      np.asarray(sy, np.int64), [str(i) for i in range(10)], key, "builtin",
                      "official test set" if key == "fashion-mnist" else "fixed 20 % stratified holdout")
        return raw
    path = Path(source).expanduser()
    if path.is_dir():
        return _read_folder(path, resize)
    if path.suffix.lower() == ".npz":
        if not path.is_file():
            raise DataSourceError(f"no such .npz file: {str(path)!r}")
        return _read_npz(path)
    if ":" in source and not path.exists():
        return _read_function(source)
    raise DataSourceError(f"{source!r} is neither a dataset ({list(DATASETS)}), a folder, an .npz file nor "
                          "MODULE:FUNCTION")


def make_splits(raw: RawData, seed: int = 0, device: str | torch.device = "cpu", valid_fraction: float = 0.1,
                limit_train: int | None = None, limit_valid: int | None = None, limit_test: int | None = None,
                image_size: int | None = None) -> DatasetSplits:
    """Seeded train / valid / test splits of ``raw`` (validation carved from the training data).

    The same ``seed`` gives the same splits; limits keep the first images of a split (a random
    subset) and ``image_size`` resamples (a lower fidelity of the same splits).

    Args:
        raw: the data read by :func:`read_source`.
        seed: seeds the validation carve-out and the order of every split.
        device: where the tensors live (see :func:`ray_nasrank.data.resolve_device`).
        valid_fraction: share of the training data held out for validation, in ``(0, 1)``.
        limit_train: keep only the first N training examples (``None``: all).
        limit_valid: keep only the first N validation examples.
        limit_test: keep only N test examples (a seeded subset).
        image_size: resample images to ``image_size x image_size`` (``None``: as read).

    Returns:
        The :class:`~ray_nasrank.data.DatasetSplits`, normalised with the training statistics.

    Raises:
        ValueError: ``valid_fraction`` or a limit out of range, or an invalid ``device``.
        TypeError: a limit is not an integer.
    """
    from ray_nasrank._checks import check_int, check_number
    from ray_nasrank.data import resolve_device

    def limit(key: str, v: int | None) -> int | None:
        return check_int(key, v, low=1, optional=True)

    return _make_splits(raw.source, raw.train_x, raw.train_y, raw.test_x, raw.test_y, raw.num_classes,
                        check_number("valid_fraction", valid_fraction, 0, 1, low_open=True, high_open=True),
                        int(seed), resolve_device(device), limit("limit_train", limit_train),
                        limit("limit_valid", limit_valid), limit("limit_test", limit_test),
                        image_size=limit("image_size", image_size))


def describe(raw: RawData, splits: dict[str, DatasetSplits], seed: int) -> dict:
    """What was read and how it was split (JSON-ready; ``data.json`` of a search).

    Args:
        raw: the data read by :func:`read_source`.
        splits: the splits made of it, by name (e.g. one per fidelity).
        seed: the seed the splits were made with.

    Returns:
        A dict with the source, kind, classes, image shape, image counts, how the test split came
        about, the seed, the data's fingerprint and each split's sizes and image shape.
    """
    return {
        "source": raw.source, "kind": raw.kind, "classes": raw.classes, "num_classes": raw.num_classes,
        "image_shape": list(raw.shape), "images": {"train": int(len(raw.train_y)), "test": int(len(raw.test_y))},
        "test_split": raw.test_from, "seed": int(seed), "fingerprint": raw.fingerprint(),
        "splits": {name: {"train": len(s.train), "valid": len(s.valid), "test": len(s.test),
                          "image_shape": [s.in_channels, *s.image_size]} for name, s in splits.items()},
    }
