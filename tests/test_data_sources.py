"""The user's own data: image folders, .npz files, MODULE:FUNCTION; one clear error for bad input."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from ray_nasrank.data_sources import DataSourceError, make_splits, read_source


def _folder(root, classes=("cat", "dog", "eel"), n=12, size=(10, 10), mode="L", layout="flat"):
    rng = np.random.default_rng(0)
    parts = [("train", n), ("test", max(2, n // 3))] if layout == "split" else [("", n)]
    for part, count in parts:
        for c in classes:
            d = root / part / c if part else root / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
                Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode).save(d / f"{i}.png")
    return root


def test_image_folder_tree_gives_fixed_recorded_splits(tmp_path):
    raw = read_source(str(_folder(tmp_path / "imgs")))
    assert raw.kind == "image-folder" and raw.classes == ["cat", "dog", "eel"] and raw.shape == (1, 10, 10)
    assert len(raw.train_y) + len(raw.test_y) == 36 and "held out" in raw.test_from
    assert raw.train_x.dtype == np.float32 and 0.0 <= raw.train_x.min() and raw.train_x.max() <= 1.0
    a, b = make_splits(raw, seed=3), make_splits(read_source(str(tmp_path / "imgs")), seed=3)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)  # fixed splits
    assert raw.fingerprint() == read_source(str(tmp_path / "imgs")).fingerprint()
    # a seed moves the validation split, never the held-out test split
    c = make_splits(raw, seed=4)
    assert torch.equal(a.test.y, c.test.y) and not torch.equal(a.valid.x, c.valid.x)
    low = make_splits(raw, seed=3, image_size=5, limit_train=10)
    assert low.train.x.shape == (10, 1, 5, 5) and low.num_classes == 3


def test_image_folder_with_train_and_test_rgb(tmp_path):
    raw = read_source(str(_folder(tmp_path / "imgs", mode="RGB", layout="split")))
    assert raw.shape == (3, 10, 10) and raw.test_from == "own test set" and len(raw.test_y) == 12


@pytest.mark.parametrize("case, match", [
    ("one_class", "one class"),
    ("non_image", r"notes\.txt' is not an image file"),
    ("broken_image", r"bad\.png' cannot be read as an image"),
    ("sizes", "images differ in size"),
    ("no_subfolders", "has no subfolders"),
    ("empty_class", "holds no images"),
])
def test_malformed_image_folders_are_one_clear_error(tmp_path, case, match):
    root = tmp_path / "imgs"
    if case == "one_class":
        _folder(root, classes=("only",))
    else:
        _folder(root)
    if case == "non_image":
        (root / "dog" / "notes.txt").write_text("hello")
    elif case == "broken_image":
        (root / "dog" / "bad.png").write_bytes(b"not a png")
    elif case == "sizes":
        Image.fromarray(np.zeros((7, 9), np.uint8), "L").save(root / "eel" / "odd.png")
    elif case == "no_subfolders":
        root = tmp_path / "flat"
        root.mkdir()
        (root / "a.png").write_bytes(b"")
    elif case == "empty_class":
        (root / "fox").mkdir()
    with pytest.raises(DataSourceError, match=match):
        read_source(str(root))


def test_folder_images_of_mixed_sizes_are_resampled_when_asked(tmp_path):
    root = _folder(tmp_path / "imgs")
    Image.fromarray(np.zeros((7, 9), np.uint8), "L").save(root / "eel" / "odd.png")
    assert read_source(str(root), resize=8).shape == (1, 8, 8)


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def test_npz_layouts(tmp_path):
    rng = np.random.default_rng(0)
    y = np.arange(40) % 4
    nhwc = _npz(tmp_path / "a.npz", x=rng.integers(0, 255, (40, 6, 6, 3), dtype=np.uint8), y=y,
                classes=np.array(["a", "b", "c", "d"]))
    raw = read_source(nhwc)
    assert raw.shape == (3, 6, 6) and raw.classes == ["a", "b", "c", "d"] and raw.train_x.max() <= 1.0
    own = _npz(tmp_path / "b.npz", x=rng.normal(size=(40, 1, 6, 6)).astype(np.float32), y=y,
               x_test=rng.normal(size=(8, 1, 6, 6)), y_test=np.arange(8) % 4)
    raw = read_source(own)
    assert raw.test_from == "own test set" and len(raw.test_y) == 8 and len(raw.train_y) == 40


@pytest.mark.parametrize("arrays, match", [
    ({"x": np.zeros((10, 6, 6))}, r"needs arrays 'x' \(images\) and 'y' \(labels\)"),
    ({"x": np.zeros((10, 6)), "y": np.arange(10) % 2}, r"\['x'\]: images must be \[N, H, W\]"),
    ({"x": np.zeros((10, 5, 6, 7)), "y": np.arange(10) % 2}, "cannot tell the channel axis"),
    ({"x": np.zeros((10, 6, 6)), "y": np.arange(9) % 2}, r"labels must have shape \[10\]"),
    ({"x": np.zeros((10, 6, 6)), "y": np.zeros(10)}, "one class only"),
    ({"x": np.zeros((10, 6, 6)), "y": np.arange(10) - 1}, "label -1 of row 0 is out of range"),
    ({"x": np.zeros((10, 6, 6)), "y": np.arange(10) % 3, "classes": np.array(["a", "b"])},
     "label 2 of row 2 is out of range"),
    ({"x": np.zeros((10, 6, 6)), "y": np.arange(10) % 2 * 2}, r"class\(es\) \['1'\] have no training image"),
    ({"x": np.zeros((10, 6, 6)), "y": np.arange(10) % 2 + 0.5}, "is not a whole class id"),
    ({"x": np.full((10, 6, 6), np.nan), "y": np.arange(10) % 2}, "image 0 holds NaN"),
    ({"x": np.zeros((10, 6, 6)), "y": np.arange(10) % 2, "x_test": np.zeros((3, 6, 6))},
     "give both 'x_test' and 'y_test'"),
    ({"x": np.zeros((10, 6, 6)), "y": np.arange(10) % 2, "x_test": np.zeros((3, 5, 5)),
      "y_test": np.arange(3) % 2}, "test images are"),
])
def test_malformed_npz_is_one_clear_error(tmp_path, arrays, match):
    with pytest.raises(DataSourceError, match=match):
        read_source(_npz(tmp_path / "d.npz", **arrays))


def test_module_function_returning_torch_datasets(tmp_path, monkeypatch):
    (tmp_path / "my_data.py").write_text(
        "import torch\n"
        "from torch.utils.data import TensorDataset\n"
        "def both():\n"
        "    g = torch.Generator().manual_seed(0)\n"
        "    tr = TensorDataset(torch.rand(30, 1, 6, 6, generator=g), torch.arange(30) % 3)\n"
        "    te = TensorDataset(torch.rand(9, 1, 6, 6, generator=g), torch.arange(9) % 3)\n"
        "    return tr, te\n"
        "def one():\n"
        "    return both()[0]\n"
        "def bad_labels():\n"
        "    return TensorDataset(torch.rand(6, 1, 6, 6), torch.tensor([0, 1, -2, 0, 1, 0]))\n"
        "not_callable = 3\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "my_data", raising=False)
    raw = read_source("my_data:both")
    assert raw.kind == "function" and raw.num_classes == 3 and len(raw.test_y) == 9
    assert "held out" in read_source("my_data:one").test_from
    with pytest.raises(DataSourceError, match="non-negative int class index"):
        read_source("my_data:bad_labels")
    with pytest.raises(DataSourceError, match="has no function 'not_callable'"):
        read_source("my_data:not_callable")
    with pytest.raises(DataSourceError, match="cannot import module 'no_such_mod'"):
        read_source("no_such_mod:f")
    with pytest.raises(DataSourceError, match="neither a dataset"):
        read_source(str(tmp_path / "missing_dir"))


def test_pipeline_data_step_records_the_splits_and_refuses_changed_data(tmp_path):
    from ray_nasrank.pipeline import ConfigMismatchError, PipelineConfig
    from ray_nasrank.pipeline._steps import load_data_step, prepare_out_dir

    rng = np.random.default_rng(0)
    data = _npz(tmp_path / "mine.npz", x=rng.integers(0, 255, (200, 12, 12), dtype=np.uint8), y=np.arange(200) % 5)
    cfg = PipelineConfig(data=data, budget=2, pool_size=8, image_size=6, train_size=50, valid_size=10, test_size=20)
    assert cfg.dataset == "custom"
    out = prepare_out_dir(tmp_path / "run", cfg)
    search, final = load_data_step(cfg, out)
    assert search.train.x.shape == (50, 1, 6, 6) and final.train.x.shape[2:] == (12, 12)
    rec = json.loads((out / "data.json").read_text())
    assert rec["source"] == data and rec["num_classes"] == 5 and rec["splits"]["search"]["train"] == 50
    assert rec["splits"]["final"] == {"train": 144, "valid": 16, "test": 40, "image_shape": [1, 12, 12]}
    load_data_step(cfg, out)  # same data: resumes
    _npz(tmp_path / "mine.npz", x=rng.integers(0, 255, (200, 12, 12), dtype=np.uint8), y=np.arange(200) % 5)
    with pytest.raises(ConfigMismatchError, match="changed since"):
        load_data_step(cfg, out)
    with pytest.raises(ValueError, match="either dataset='digits' or data="):
        PipelineConfig(dataset="digits", data=data)
