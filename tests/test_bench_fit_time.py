"""``ray-nasrank bench fit-time``: seconds per ranker refit, as JSON."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd

from ray_nasrank.cli import main


def _table(tmp_path):
    rows = list(itertools.product([1, 3, 5, 7], [8, 16, 32, 64], ["relu", "gelu", "tanh"]))
    acc = np.array([0.5 + 0.04 * k + 0.002 * w + {"relu": 0.0, "gelu": 0.05, "tanh": -0.1}[a] for k, w, a in rows])
    df = pd.DataFrame(rows, columns=["kernel", "width", "act"]).assign(acc=acc)
    df["proxy"] = acc + np.random.default_rng(0).normal(0, 0.05, size=acc.size)
    path = tmp_path / "tbl.csv"
    df.to_csv(path, index=False)
    return path


def test_fit_time_json(tmp_path, capsys):
    out = tmp_path / "fit.json"
    rc = main(["bench", "fit-time", "--table", str(_table(tmp_path)), "--space", "columns",
               "--arch-cols", "kernel,width,act", "--target", "acc", "--weak", "proxy", "--labels", "12",
               "--refits", "2", "--threads", "1", "--out", str(out),
               "--predictor-args", '{"ensemble": 2, "pretrain_epochs": 3, "fit_epochs": 40}'])
    assert rc == 0
    r = json.loads(out.read_text())
    assert r["candidates"] == 48 and r["labels"] == 12 and r["threads"] == 1
    assert len(r["fit_wall_s"]) == len(r["fit_cpu_s"]) == len(r["score_wall_s"]) == 2
    assert all(t > 0 for t in r["fit_wall_s"]) and r["fit_wall_max_s"] >= r["fit_wall_median_s"] > 0
    assert all(abs(sum(w.values()) - 1) < 1e-9 for w in r["trust_weights"])  # the default ranker blends
    assert r["predictor"]["ensemble"] == 2 and r["command"].startswith("ray-nasrank bench fit-time ")
    assert "per refit" in capsys.readouterr().out


def test_fit_time_needs_weak_labels(tmp_path, capsys):
    rc = main(["bench", "fit-time", "--table", str(_table(tmp_path)), "--space", "columns",
               "--arch-cols", "kernel,width,act", "--target", "acc", "--out", str(tmp_path / "f.json")])
    assert rc == 2
    assert "--weak is empty" in capsys.readouterr().err


def test_fit_time_pretrains_on_the_intrinsic_labels_too(tmp_path, capsys):
    # --intrinsic is a table option of every bench command: here it must reach the timed ranker,
    # not be dropped (the refit cost grows with the weak columns the prior blends)
    from ray_nasrank.spaces import NB201Space

    space = NB201Space()
    archs = space.sample_many(60, rng=0, unique=True)
    convs = np.array([a.count("nor_conv_3x3") + 0.5 * a.count("nor_conv_1x1") for a in archs])
    path = tmp_path / "nb.csv"
    pd.DataFrame({"arch": [space.to_string(a) for a in archs], "acc": convs,
                  "noise": np.random.default_rng(2).normal(size=60)}).to_csv(path, index=False)
    out = tmp_path / "fit.json"
    rc = main(["bench", "fit-time", "--table", str(path), "--space", "nb201", "--arch-col", "arch",
               "--target", "acc", "--weak", "noise", "--intrinsic", "params,flops", "--labels", "12",
               "--refits", "1", "--threads", "1", "--out", str(out),
               "--predictor-args", '{"ensemble": 2, "pretrain_epochs": 2, "fit_epochs": 20}'])
    assert rc == 0, capsys.readouterr().err
    r = json.loads(out.read_text())
    assert r["weak"] == ["noise", "params", "flops"]
    assert "--intrinsic params,flops" in r["command"]
