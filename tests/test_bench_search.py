"""``ray-nasrank bench search`` on a small synthetic categorical table (and NB201, slow)."""

from __future__ import annotations

import itertools
import json
import sys

import numpy as np
import pandas as pd
import pytest

from ray_nasrank.cli import main

TINY_NASRANK = {"predictor": {"ensemble": 1, "hidden": 16, "pretrain_epochs": 2, "fit_epochs": 10, "patience": 5},
                "batch_size": 4}


@pytest.fixture()
def table(tmp_path):
    rows = list(itertools.product([1, 3, 5, 7], [8, 16, 32, 64], ["relu", "gelu", "tanh"]))
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rows, columns=["k", "w", "act"])
    score = df.k * 0.3 + np.log2(df.w) + (df.act == "gelu") * 0.7
    df["acc"] = (score + rng.normal(0, 0.05, len(df))).round(4)
    df["proxy"] = score + rng.normal(0, 1.0, len(df))
    path = tmp_path / "toy.csv"
    df.to_csv(path, index=False)
    return path, df


def _args(table, out, *extra):
    return ["bench", "search", "--table", str(table), "--space", "columns", "--arch-cols", "k,w,act",
            "--target", "acc", "--weak", "proxy", "--out", str(out), "--quiet", *extra]


def test_bench_search_writes_the_documented_layout(table, tmp_path):
    path, df = table
    out = tmp_path / "res" / "search.json"
    rc = main(_args(path, out, "--budget", "20", "--seeds", "3",
                    "--strategies", "nasrank,random,optuna-tpe,rea,opdist",
                    "--strategy-args", json.dumps({"nasrank": TINY_NASRANK, "rea": {"population": 5, "sample_size": 2}})))
    assert rc == 0
    res = json.loads(out.read_text())
    assert set(res) >= {"config", "optimum", "strategies"}
    assert res["optimum"] == df.acc.max()
    assert list(res["strategies"]) == ["nasrank", "random", "optuna-tpe", "rea", "opdist"]
    for name, s in res["strategies"].items():
        assert set(s["best_at"]) == {"10", "20"}
        assert s["best_at"]["10"] <= s["best_at"]["20"] <= res["optimum"]
        assert 0.0 <= s["hit_rate"] <= 1.0
        assert len(s["per_seed"]) == 3
        for run in s["per_seed"]:
            assert len(run["values"]) == 20
            assert run["best_so_far"] == list(np.maximum.accumulate(run["values"]))
            q = run["queries_to_optimum"]
            assert (q is None) or run["values"][q - 1] == res["optimum"]
        hits = [r["queries_to_optimum"] or 21 for r in s["per_seed"]]
        assert s["median_queries_to_optimum"] == float(np.median(hits))
        assert s["best_at"]["20"] == pytest.approx(np.mean([r["best_so_far"][19] for r in s["per_seed"]]))


def test_bench_search_exhausted_pool_and_small_budget(table, tmp_path):
    path, df = table
    out = tmp_path / "r.json"
    assert main(_args(path, out, "--budget", "60", "--seeds", "1", "--strategies", "random")) == 0
    res = json.loads(out.read_text())["strategies"]["random"]
    assert len(res["per_seed"][0]["values"]) == len(df) == 48  # the pool ran out first
    assert res["hit_rate"] == 1.0
    assert set(res["best_at"]) == {"10", "20", "50", "60"}


def test_bench_search_pretrains_nasrank_on_the_intrinsic_labels_of_nb201_cells(tmp_path):
    from ray_nasrank.spaces import NB201Space

    space = NB201Space()
    archs = space.sample_many(150, rng=0, unique=True)
    convs = np.array([a.count("nor_conv_3x3") for a in archs], dtype=float)
    df = pd.DataFrame({"arch": [space.to_string(a) for a in archs], "acc": convs + 0.1 * np.arange(150) / 150,
                       "proxy": np.random.default_rng(0).normal(size=150)})
    path = tmp_path / "nb.csv"
    df.to_csv(path, index=False)
    base = ["bench", "search", "--table", str(path), "--space", "nb201", "--target", "acc", "--weak", "proxy",
            "--budget", "8", "--seeds", "1", "--strategies", "nasrank", "--quiet"]
    runs = {}
    for name, extra in (("default", {}), ("off", {"intrinsic_weak": []})):
        out = tmp_path / f"{name}.json"
        assert main([*base, "--out", str(out), "--strategy-args", json.dumps({"nasrank": {**TINY_NASRANK, **extra}})]) == 0
        runs[name] = json.loads(out.read_text())
    assert runs["default"]["config"]["nasrank_pretrained_on"] == ["proxy", "params", "flops", "synflow"]
    assert runs["off"]["config"]["nasrank_pretrained_on"] == ["proxy"]
    assert len(runs["default"]["strategies"]["nasrank"]["per_seed"][0]["values"]) == 8
    # no --weak at all: the intrinsic labels alone are pretrained on (once, shared by the seeds)
    out = tmp_path / "none.json"
    no_weak = [x for x in base if x not in ("--weak", "proxy")]
    assert main([*no_weak, "--out", str(out), "--strategy-args", json.dumps({"nasrank": TINY_NASRANK})]) == 0
    assert json.loads(out.read_text())["config"]["nasrank_pretrained_on"] == ["params", "flops", "synflow"]
    assert main([*no_weak, "--out", str(out), "--strategy-args",
                 json.dumps({"nasrank": {**TINY_NASRANK, "intrinsic_weak": []}})]) == 0
    assert json.loads(out.read_text())["config"]["nasrank_pretrained_on"] == []


@pytest.mark.parametrize("extra, message", [
    (["--strategies", "random,grid"], "unknown strategy 'grid'"),
    (["--budget", "0"], "--budget must be >= 1"),
    (["--strategies", "random,random"], "twice"),
    (["--strategy-args", '{"rea": {"population": 3}}', "--strategies", "random"], "not in --strategies"),
])
def test_bench_search_bad_arguments(table, tmp_path, capsys, extra, message):
    path, _ = table
    assert main(_args(path, tmp_path / "x.json", *extra)) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_via_tune_without_ray_tune_is_a_clear_error(table, tmp_path, capsys, monkeypatch):
    path, _ = table
    monkeypatch.setitem(sys.modules, "ray.tune", None)  # as if Ray Tune were not installed
    assert main(_args(path, tmp_path / "x.json", "--via", "tune", "--strategies", "random")) == 2
    err = capsys.readouterr().err
    assert "Ray Tune" in err and "ray_nasrank[tune]" in err and not (tmp_path / "x.json").exists()


@pytest.fixture(scope="module")
def nb201_search(nb201_path, tmp_path_factory):
    """The documented 30-seed run (about 9 minutes of wall time on the 2-core machine when it is quiet, more when shared)."""
    out = tmp_path_factory.mktemp("search") / "nb201.json"
    rc = main(["bench", "search", "--table", str(nb201_path), "--space", "nb201", "--target", "test_acc",
               "--weak", "supernet_oneshot_acc", "--budget", "100", "--seeds", "30", "--quiet",
               "--strategies", "nasrank,random,optuna-tpe,rea", "--out", str(out)])
    assert rc == 0
    return json.loads(out.read_text())["strategies"]


@pytest.mark.slow
@pytest.mark.data
def test_nb201_nasrank_beats_the_baselines_at_every_budget(nb201_search):
    for other in ("random", "optuna-tpe", "rea"):
        for k in ("10", "20", "50", "100"):
            assert nb201_search["nasrank"]["best_at"][k] > nb201_search[other]["best_at"][k], (other, k)
    assert nb201_search["nasrank"]["hit_rate"] > nb201_search["optuna-tpe"]["hit_rate"]


@pytest.mark.slow
@pytest.mark.data
def test_nb201_nasrank_reaches_the_optimum_within_the_target_median(nb201_search):
    # issue 5: median queries to the 94.37 optimum <= 30 (measured 19.0, every seed reaching it)
    assert nb201_search["nasrank"]["median_queries_to_optimum"] <= 30
    assert nb201_search["nasrank"]["hit_rate"] >= 0.9


@pytest.mark.slow
@pytest.mark.data
def test_nb201_best_after_20_target(nb201_search):
    # issue 5: mean best after 20 queries >= 94.20 (measured 94.26 with SynFlow pretraining)
    assert nb201_search["nasrank"]["best_at"]["20"] >= 94.20


def test_bench_search_with_model_weak_labels(table, tmp_path):
    path, df = table
    models = tmp_path / "toy_models.py"
    models.write_text("from torch import nn\n\n"
                      "def build(c):\n"
                      "    act = {'relu': nn.ReLU(), 'gelu': nn.GELU(), 'tanh': nn.Tanh()}[c['act']]\n"
                      "    return nn.Sequential(nn.Conv2d(1, int(c['w']), int(c['k']), padding=int(c['k']) // 2), act,\n"
                      "                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(int(c['w']), 10))\n")
    out = tmp_path / "m.json"
    rc = main(_args(path, out, "--budget", "10", "--seeds", "2", "--strategies", "nasrank,random",
                    "--model", f"{models}:build", "--input-shape", "1,8,8", "--intrinsic", "params,naswot",
                    "--strategy-args", json.dumps({"nasrank": TINY_NASRANK})))
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["config"]["nasrank_pretrained_on"] == ["proxy", "params", "naswot"]
    assert res["config"]["model"] == f"{models}:build" and res["config"]["input_shape"] == [1, 8, 8]
