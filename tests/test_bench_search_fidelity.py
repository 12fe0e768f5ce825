"""bench search on a learning-curve table under Tune's ASHA and Optuna's HyperbandPruner."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("ray.tune")
pytest.importorskip("optuna")

from ray_nasrank.benchmarks import SearchBenchConfig, bench_search  # noqa: E402

EPOCHS = 4


@pytest.fixture(scope="module")
def curve_table(curve_table_of):
    return curve_table_of(EPOCHS)


@pytest.mark.parametrize("scheduler", ["tune-asha", "optuna-hyperband"])
def test_strategies_spend_the_same_epochs_and_report_regret(curve_table, tmp_path, scheduler):
    out = tmp_path / "r.json"
    cfg = SearchBenchConfig(table=str(curve_table), space="columns", arch_cols=["k", "w", "act"],
                            target=f"acc_{EPOCHS}", curve_cols=[f"acc_{e}" for e in range(1, EPOCHS + 1)],
                            scheduler=scheduler, strategies=["nasrank", "optuna-tpe", "random"], seeds=2,
                            epoch_budget=40, workers=2, reduction_factor=2, out=str(out),
                            strategy_args={"nasrank": {"predictor": {"ensemble": 1, "fit_epochs": 10}}})
    result = bench_search(cfg)
    assert json.loads(out.read_text())["config"]["scheduler"] == scheduler
    for name, s in result["strategies"].items():
        assert s["seeds"] == 2 and 0 <= s["mean_regret"] <= 3, name
        for run in s["per_seed"]:
            assert run["epochs_used"] == 40
            assert len(set(run["rows"])) == len(run["rows"])  # every trial a distinct row
            assert min(run["epochs"]) < EPOCHS and max(run["epochs"]) == EPOCHS  # stopped early, and not all
            assert run["incumbent"] in run["full"]


def test_strategies_outside_the_scheduled_set_are_refused(curve_table):
    with pytest.raises(ValueError, match="unknown strategy 'rea'"):
        SearchBenchConfig(table=str(curve_table), space="columns", arch_cols=["k", "w", "act"], target="acc_4",
                          curve_cols=["acc_1"], strategies=["rea"], out="x.json")
