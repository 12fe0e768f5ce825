"""bench search under HpBandSter's Hyperband brackets: BOHB, NASRank and random at an equal epoch budget."""

from __future__ import annotations

import sys

import pandas as pd
import pytest

from ray_nasrank._checks import ConfigError
from ray_nasrank.benchmarks import SearchBenchConfig, bench_search

EPOCHS = 9
NEEDS = "needs the bohb extra: pip install 'ray_nasrank[bohb]'"


@pytest.fixture(scope="module")
def curve_table(curve_table_of):
    return curve_table_of(EPOCHS)


def _config(curve_table, out, **kw):
    return SearchBenchConfig(table=str(curve_table), space="columns", arch_cols=["k", "w", "act"],
                             target=f"acc_{EPOCHS}", curve_cols=[f"acc_{e}" for e in range(1, EPOCHS + 1)],
                             scheduler="hpbandster", reduction_factor=3, out=str(out), **kw)


def test_bohb_nasrank_and_hyperband_spend_the_same_epochs_in_the_same_brackets(curve_table, tmp_path):
    pytest.importorskip("hpbandster", reason=NEEDS)
    pytest.importorskip("ConfigSpace", reason=NEEDS)
    # 63 epochs: one round of the three brackets (9 configs at 1 epoch, 3 on to 3, 1 on to 9; 3 at 3,
    # 1 on to 9; 3 at 9), then 10 epochs of the next round: its 9 configs at 1 epoch, one on to 2 when
    # the budget runs out
    cfg = _config(curve_table, tmp_path / "r.json", strategies=["bohb", "nasrank", "random"], seeds=1,
                  epoch_budget=73, strategy_args={"nasrank": {"predictor": {"ensemble": 1, "fit_epochs": 10}}})
    result = bench_search(cfg)
    for name, s in result["strategies"].items():
        (run,) = s["per_seed"]
        assert run["epochs_used"] == 73, name
        assert run["brackets"] == 4, name
        assert len(set(run["rows"])) == len(run["rows"]), name  # every config a distinct row
        e = run["epochs"]
        assert (sorted(e[:9]), sorted(e[9:12]), e[12:15], sorted(e[15:])) == \
            ([1] * 6 + [3] * 2 + [9], [3, 3, 9], [9] * 3, [1] * 8 + [2]), (name, e)
        assert run["incumbent"] in run["full"] and len(run["full"]) == 5, name
        assert 0 <= run["regret"] <= 3
    # the first bracket's promotions follow the 1-epoch values: the row kept to 9 epochs was the
    # best of the 9 after epoch 1 (HpBandSter's successive halving, not this loop, decided)
    run = result["strategies"]["random"]["per_seed"][0]
    curves = pd.read_csv(curve_table)[[f"acc_{e}" for e in range(1, EPOCHS + 1)]].to_numpy()
    first = run["rows"][:9]
    top3 = sorted(first, key=lambda i: -curves[i, 0])[:3]
    assert sorted(r for r, e in zip(first, run["epochs"][:9]) if e >= 3) == sorted(top3)


def test_bohb_uses_its_model_once_a_budget_holds_enough_results(curve_table, tmp_path):
    pytest.importorskip("hpbandster", reason=NEEDS)
    cfg = _config(curve_table, tmp_path / "r.json", strategies=["bohb"], seeds=1, epoch_budget=126)  # two rounds
    (run,) = bench_search(cfg)["strategies"]["bohb"]["per_seed"]
    # 3 decisions: a model needs 2 x (3 + 1) results at a budget; from then on about 2/3 of the configs are its picks
    assert run["model_picks"] > 0 and run["model_picks"] < len(run["rows"])


def test_bohb_is_refused_outside_its_brackets_and_names_the_extra_when_missing(curve_table, tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="use scheduler 'hpbandster'"):
        SearchBenchConfig(table=str(curve_table), space="columns", arch_cols=["k", "w", "act"], target="acc_9",
                          curve_cols=["acc_1"], scheduler="tune-asha", strategies=["bohb"], out=str(tmp_path / "r.json"))
    monkeypatch.setitem(sys.modules, "hpbandster", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"ray_nasrank\[bohb\]"):
        _config(curve_table, tmp_path / "r.json", strategies=["random"])
    assert not (tmp_path / "r.json").exists()
