"""From-scratch training: learns on digits, reports every epoch, is seeded, rejects bad input."""

from __future__ import annotations

import math

import pytest
import torch

from ray_nasrank.data import load_dataset
from ray_nasrank.training import (
    TrainConfig,
    augment_batch,
    evaluate,
    first_inputs,
    recalibrate_bn,
    train_arch,
    train_model,
)

ARCH = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|"


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


def _cfg(**kw):
    base = dict(epochs=2, batch_size=64, lr=0.05, channels=4, cells_per_stage=1, seed=0, bn_recalibrate=4)
    base.update(kw)
    return TrainConfig(**base)


def test_beats_chance_and_reports(digits):
    calls = []
    res = train_arch(ARCH, digits, _cfg(), report=lambda e, m: calls.append((e, m)))
    assert [e for e, _ in calls] == [1, 2]
    assert {"train_loss", "train_acc", "valid_acc", "valid_loss", "lr", "seconds"} <= set(calls[-1][1])
    assert res["epochs"] == 2 and res["valid_acc"] == calls[-1][1]["valid_acc"]
    # 10 classes: chance is 10 %
    assert res["valid_acc"] > 50 and res["test_acc"] > 50
    assert math.isfinite(res["train_loss"]) and res["params"] > 0 and res["seconds"] > 0
    assert res["arch"] == ARCH and len(res["history"]) == 2
    # cosine ends at zero learning rate
    assert calls[-1][1]["lr"] == pytest.approx(0.0, abs=1e-9)


def test_seeded_runs_repeat(digits):
    small = load_dataset("digits", seed=0, limit_train=256)
    a = train_arch(ARCH, small, _cfg(epochs=1, augment=("flip", "crop")))
    b = train_arch(ARCH, small, _cfg(epochs=1, augment=("flip", "crop")))
    c = train_arch(ARCH, small, _cfg(epochs=1, augment=("flip", "crop"), seed=1))
    assert a["valid_acc"] == b["valid_acc"] and a["train_loss"] == b["train_loss"]
    assert c["train_loss"] != a["train_loss"]


def test_report_can_stop_and_eval_every(digits):
    small = load_dataset("digits", seed=0, limit_train=128)
    seen = []
    res = train_arch(ARCH, small, _cfg(epochs=5, eval_every=2), report=lambda e, m: seen.append(m) or e == 3)
    assert res["epochs"] == 3 and len(seen) == 3
    assert "valid_acc" not in seen[0] and "valid_acc" in seen[1]
    assert "valid_acc" in res and 0 <= res["valid_acc"] <= 100


def test_adam_constant_warmup_and_any_model(digits):
    small = load_dataset("digits", seed=0, limit_train=128)
    lrs = []
    train_arch(ARCH, small, _cfg(epochs=3, optimizer="adam", lr=1e-3, schedule="constant", warmup_epochs=1),
               report=lambda e, m: lrs.append(m["lr"]))
    assert lrs[1] == pytest.approx(1e-3) and lrs[2] == pytest.approx(1e-3)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    res = train_model(model, small, _cfg(epochs=1, optimizer="adamw", lr=1e-2))
    assert res["params"] == 650 and res["epochs"] == 1


def test_augment_batch_shapes_and_effect():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4)
    g = torch.Generator().manual_seed(0)
    flipped = [augment_batch(x, ("flip",), 0, g) for _ in range(8)]
    assert all(f.shape == x.shape for f in flipped)
    assert any(torch.equal(f[0], x[0].flip(2)) for f in flipped)
    cropped = augment_batch(x, ("crop",), 1, torch.Generator().manual_seed(1))
    assert cropped.shape == x.shape and not torch.equal(cropped, x)
    assert augment_batch(x, (), 2, g) is x


def test_evaluate_and_recalibrate(digits):
    model = torch.nn.Sequential(torch.nn.BatchNorm2d(1), torch.nn.Flatten(), torch.nn.Linear(64, 10))
    recalibrate_bn(model, first_inputs(digits.train, batches=2, batch_size=100))
    bn = model[0]
    assert bn.momentum == 0.1 and int(bn.num_batches_tracked) == 2
    assert float(bn.running_mean) == pytest.approx(float(digits.train.x[:200].mean()), abs=1e-4)
    acc, loss = evaluate(model, digits.test)
    assert 0 <= acc <= 100 and loss > 0


@pytest.mark.parametrize("kwargs, err", [
    (dict(epochs=0), ValueError),
    (dict(epochs=1.5), ValueError),
    (dict(lr=0), ValueError),
    (dict(lr=float("nan")), ValueError),
    (dict(optimizer="lbfgs"), ValueError),
    (dict(schedule="step"), ValueError),
    (dict(augment=("rotate",)), ValueError),
    (dict(augment=3), TypeError),
    (dict(momentum=1.5), ValueError),
    (dict(warmup_epochs=2, epochs=2), ValueError),
    (dict(grad_clip=-1), ValueError),
    (dict(device=3), TypeError),
])
def test_bad_config(kwargs, err):
    with pytest.raises(err):
        _cfg(**kwargs)


def test_bad_call(digits):
    with pytest.raises(TypeError, match="DatasetSplits"):
        train_arch(ARCH, "digits", _cfg())
    with pytest.raises(TypeError, match="TrainConfig"):
        train_arch(ARCH, digits, {"epochs": 1})
    with pytest.raises(TypeError, match="report"):
        train_arch(ARCH, digits, _cfg(), report=5)
    with pytest.raises(ValueError):
        train_arch("|bad~0|", digits, _cfg())
    broken = load_dataset("digits", limit_train=64)
    broken.train.x[3] = float("nan")  # a corrupt image makes the loss non-finite
    with pytest.raises(FloatingPointError, match="diverged"):
        train_arch(ARCH, broken, _cfg(epochs=1))


def test_config_round_trip():
    cfg = _cfg(augment="flip")
    assert cfg.augment == ("flip",)
    again = TrainConfig.from_dict(cfg.to_dict())
    assert again == cfg
    with pytest.raises(ValueError, match="unknown TrainConfig keys"):
        TrainConfig.from_dict({"epochs": 1, "epoch": 2})


def test_ground_truth_script_shards_resume_and_check(tmp_path, capsys):
    import importlib.util
    import json
    from pathlib import Path

    import pandas as pd

    path = Path(__file__).resolve().parents[1] / "scripts" / "ground_truth.py"
    spec = importlib.util.spec_from_file_location("ground_truth_script", path)
    gt = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gt)
    archs = gt.sample_archs(4, seed=0)
    from ray_nasrank.spaces import NB201Space

    assert len({NB201Space().iso_key(a) for a in archs}) == 4 and archs == gt.sample_archs(4, seed=0)
    out = tmp_path / "gt.csv"
    common = ["--dataset", "digits", "--num-archs", "2", "--epochs", "1", "--batch-size", "128",
              "--channels", "4", "--out", str(out)]
    assert gt.main(common + ["--shard", "1/2"]) == 0
    assert len(pd.read_csv(out)) == 1
    assert gt.main(common + ["--shard", "0/2"]) == 0
    table = pd.read_csv(out)
    assert list(table.columns) == ["arch", "valid_acc", "test_acc", "seconds", "params"]
    assert sorted(table["arch"]) == sorted(NB201Space().to_string(a) for a in gt.sample_archs(2, seed=0))
    capsys.readouterr()
    assert gt.main(common) == 0  # resume: nothing left to train
    assert "2 done, 0 to train" in capsys.readouterr().out
    assert len(pd.read_csv(out)) == 2
    assert gt.main(["--check", "--out", str(out)]) == 0
    rep = json.loads(out.with_suffix(".check.json").read_text())
    assert rep["num_archs"] == 2 and rep["distinct_iso_classes"] == 2
    with pytest.raises(SystemExit):
        gt.main(common + ["--shard", "2/2"])
