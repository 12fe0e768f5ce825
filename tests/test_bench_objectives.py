"""``ray-nasrank bench objectives`` on a small table: hypervolume and a latency cap per sampler."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("optuna")

from ray_nasrank._checks import ConfigError  # noqa: E402
from ray_nasrank.benchmarks._objectives import ObjectivesBenchConfig, bench_objectives  # noqa: E402
from ray_nasrank.spaces import NB201Space  # noqa: E402


def _table(path, archs):
    space = NB201Space()
    conv3 = np.array([a.count("nor_conv_3x3") for a in archs], dtype=float)
    conv1 = np.array([a.count("nor_conv_1x1") for a in archs], dtype=float)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"arch": [space.to_string(a) for a in archs],
                          "test_acc": 80 + 2 * conv3 + conv1 + rng.normal(0, 0.5, len(archs)),
                          "weak": conv3 + conv1,
                          "lat_cpu": 1 + 3 * conv3 + conv1, "lat_phone": 2 + conv3 + 3 * conv1})
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def small_table(tmp_path_factory):
    """Every NB201 cell (the samplers may propose any), with made-up accuracy and latencies."""
    return _table(tmp_path_factory.mktemp("t") / "t.csv", list(NB201Space().enumerate()))


def test_bench_objectives_reports_hypervolume_and_constrained_best(small_table, tmp_path):
    from ray_nasrank.cli import main

    out = tmp_path / "r.json"
    rc = main(["bench", "objectives", "--table", str(small_table), "--target", "test_acc", "--weak", "weak",
               "--devices", "cpu", "--samplers", "nasrank,random", "--budgets", "5,12", "--seeds", "2",
               "--nasrank-intrinsic", "", "--out", str(out), "--strategy-args",
               '{"batch_size": 4, "predictor": {"ensemble": 1, "hidden": 8, "pretrain_epochs": 1, "fit_epochs": 10}}'])
    assert rc == 0
    r = json.loads(out.read_text())
    front, cons = r["devices"]["cpu"]["front"], r["devices"]["cpu"]["constrained"]
    for name in ("nasrank", "random"):
        hv = front[name]["hv_share"]
        assert 0 < hv["5"] <= hv["12"] <= 1
        assert len(front[name]["per_seed"]) == 2
        assert 0 <= cons[name]["feasible_share"] <= 1
    # NASRank knows the latency column: it never proposes a config over the cap
    assert cons["nasrank"]["feasible_share"] == 1.0


def test_unknown_device_is_refused_with_the_available_ones(small_table, tmp_path):
    cfg = ObjectivesBenchConfig(table=str(small_table), target="test_acc", devices=["tpu"],
                                out=str(tmp_path / "r.json"))
    with pytest.raises(ConfigError, match=r"device\(s\) \['tpu'\].*\['cpu', 'phone'\]"):
        bench_objectives(cfg)
    with pytest.raises(ConfigError, match="devices"):
        ObjectivesBenchConfig(table=str(small_table), target="test_acc", out="r.json")


def test_a_table_without_every_cell_is_refused(tmp_path):
    part = _table(tmp_path / "part.csv", NB201Space().sample_many(50, rng=0, unique=True))
    cfg = ObjectivesBenchConfig(table=str(part), target="test_acc", devices=["cpu"], out=str(tmp_path / "r.json"))
    with pytest.raises(ConfigError, match="lacks .* of the space's 15625 configurations"):
        bench_objectives(cfg)
