"""Finalists trained from scratch as Tune trials (nb201_trainable) and the table trainable's checks."""

from __future__ import annotations

import pytest

pytest.importorskip("ray.tune")

from ray import tune  # noqa: E402

from ray_nasrank.integrations.tune import NASRankSearcher, make_table_trainable, nb201_trainable  # noqa: E402
from ray_nasrank.spaces import NB201Space  # noqa: E402

pytestmark = pytest.mark.ray
SPACE = NB201Space()


def test_nb201_trainable_trains_finalists_and_reports_every_epoch(ray_session, tmp_path):
    finalists = SPACE.sample_many(2, rng=3, unique=True)
    searcher = NASRankSearcher(SPACE, strategy="random", metric="valid_acc", mode="max", seed=0,
                               points_to_evaluate=[SPACE.to_string(a) for a in finalists])
    param_space = {**SPACE.to_tune(), "dataset": "digits", "epochs": 2, "limit_train": 256,
                   "train": {"channels": 4, "cells_per_stage": 1, "batch_size": 64, "seed": 0}}
    tuner = tune.Tuner(
        tune.with_resources(nb201_trainable, {"cpu": 1}),
        param_space=param_space,
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=2, max_concurrent_trials=2),
        run_config=tune.RunConfig(verbose=0, storage_path=str(tmp_path)),
    )
    results = tuner.fit()
    assert not results.errors
    for r in results:
        hist = r.metrics_dataframe
        assert list(hist["epoch"].dropna().astype(int)) == [1, 2]  # one report per epoch (1-based)
        assert bool(r.metrics["done"]) and 0.0 <= r.metrics["test_acc"] <= 100.0
        assert r.metrics["params"] > 0
    trained = {SPACE.from_config(r.config) for r in results}
    assert trained == set(finalists)
    assert {h["arch"] for h in searcher.strategy.history} == set(finalists)


def test_trainable_inputs_are_checked(nb201_bench):
    with pytest.raises(TypeError, match="TabularBenchmark"):
        make_table_trainable({"not": "a table"})
    with pytest.raises(ValueError, match="sleep_s"):
        make_table_trainable(nb201_bench, sleep_s=-1)
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['epochz'\]"):
        nb201_trainable({"arch": SPACE.to_string(SPACE.sample(0)), "epochz": 3})
    with pytest.raises(ValueError, match=r"unknown config\[.train.\] key\(s\) \[.lrr.\]"):
        nb201_trainable({"arch": SPACE.to_string(SPACE.sample(0)), "train": {"lrr": 0.1}})
