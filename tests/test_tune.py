"""NASRankSearcher inside real Ray Tune runs (the session's 2-CPU Ray instance)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("ray.tune")

from ray import tune  # noqa: E402

from ray_nasrank.benchmarks import TabularBenchmark  # noqa: E402
from ray_nasrank.integrations.tune import NASRankSearcher, make_table_trainable  # noqa: E402

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def small_bench() -> TabularBenchmark:
    rng = np.random.default_rng(0)
    rows = [(k, w, d) for k in (1, 3, 5) for w in (8, 16, 32) for d in (1, 2, 3, 4)]
    df = pd.DataFrame(rows, columns=["k", "w", "d"])
    df["acc"] = rng.random(len(df))
    return TabularBenchmark.from_frame(df, space="columns", arch_cols=["k", "w", "d"], target="acc")


def _param_space(bench: TabularBenchmark) -> dict:
    return {**bench.space.to_tune(), "note": "constant"}


def _tuner(trainable, param_space, searcher, tmp_path, num_samples, concurrency=2, name="exp", callbacks=None):
    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=num_samples,
                                    max_concurrent_trials=concurrency, reuse_actors=True),
        run_config=tune.RunConfig(name=name, verbose=0, storage_path=str(tmp_path), callbacks=callbacks),
    )


def test_tuner_run_respects_budget_without_duplicates_and_runs_concurrently(ray_session, small_bench, tmp_path):
    searcher = NASRankSearcher(strategy="random", metric="acc", mode="max", seed=0)
    results = _tuner(make_table_trainable(small_bench, sleep_s=1.0), _param_space(small_bench), searcher,
                     tmp_path, num_samples=8).fit()
    df = results.get_dataframe()
    assert len(df) == 8 and not results.errors
    assert df["arch"].nunique() == 8
    assert (df["config/note"] == "constant").all()
    # the reported value is the table's value of the config's arch
    for _, row in df.iterrows():
        arch = small_bench.space.from_string(row["arch"])
        assert row["acc"] == pytest.approx(small_bench.lookup(arch))
        assert arch == (row["config/k"], row["config/w"], row["config/d"])
    # concurrency > 1: some trials' [start, end] intervals overlap
    spans = sorted(zip(df["started_at"], df["finished_at"]))
    assert any(b_start < a_end for (_, a_end), (b_start, _) in zip(spans, spans[1:]))
    assert len(searcher.completed) == 8 and searcher.overhead_s < 5.0


def test_a_trainable_without_the_metric_stops_with_a_clear_error(ray_session, tmp_path):
    def _never_reports_metric(config):  # local, so Ray pickles it by value (tests/ is no package)
        tune.report({"loss": 1.0})

    # Tune's strict metric check (on in conftest) names the missing metric; with the check off,
    # the searcher records such trials as failed (test_tune_searcher covers that path)
    space = {"k": tune.choice([1, 2, 3])}
    searcher = NASRankSearcher(strategy="random", metric="acc", mode="max", seed=0)
    with pytest.raises(Exception, match="did not include the specified metric.*`acc`"):
        _tuner(_never_reports_metric, space, searcher, tmp_path, num_samples=2, concurrency=1).fit()


class _InterruptAfter(tune.Callback):
    """Send SIGINT once after ``n`` completed trials (Tune stops gracefully and checkpoints)."""

    def __init__(self, n: int, flag: Path) -> None:
        self.n, self.flag, self.done = n, flag, 0

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.done += 1
        if self.done >= self.n and not self.flag.exists():
            self.flag.write_text("interrupted")
            os.kill(os.getpid(), signal.SIGINT)


def test_tuner_restore_after_interruption_loses_and_repeats_nothing(ray_session, small_bench, tmp_path):
    trainable = make_table_trainable(small_bench, sleep_s=0.3)
    searcher = NASRankSearcher(strategy="random", metric="acc", mode="max", seed=1)
    flag = tmp_path / "interrupted.flag"
    first = _tuner(trainable, _param_space(small_bench), searcher, tmp_path, num_samples=10,
                   name="resume", callbacks=[_InterruptAfter(3, flag)]).fit()
    assert flag.exists() and len(first.get_dataframe()) < 10
    path = str(tmp_path / "resume")
    assert tune.Tuner.can_restore(path)
    results = tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True).fit()
    df = results.get_dataframe()
    assert len(df) == 10 and not results.errors
    assert df["trial_id"].nunique() == 10
    assert df["arch"].nunique() == 10  # no arch evaluated twice across the interruption


def _expected_random_best(values: np.ndarray, k: int) -> float:
    """Exact E[max of k draws without replacement] (P(max = i-th smallest) = C(i-1, k-1) / C(n, k))."""
    from scipy.special import gammaln

    v = np.sort(values)
    n = len(v)
    i = np.arange(k, n + 1)
    logp = gammaln(i) - gammaln(k) - gammaln(i - k + 1) - (gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1))
    return float(np.sum(np.exp(logp) * v[i - 1]))


@pytest.mark.data
def test_nasrank_through_tune_beats_random_on_the_table(ray_session, nb201_bench):
    from ray_nasrank.benchmarks._search_tune import search_via_tune
    from ray_nasrank.predictor import FineTuneConfig, PredictorConfig, PretrainConfig

    # a 1,500-arch slice of NB201 with an informative weak label (truth + noise), and a small
    # predictor, so the run stays short; what is tested is that Tune delivers the strategy's gain
    rng = np.random.default_rng(0)
    idx = rng.choice(len(nb201_bench), size=1500, replace=False)
    y = nb201_bench.targets[idx]
    df = pd.DataFrame({"arch": [nb201_bench.space.to_string(nb201_bench.archs[i]) for i in idx], "test_acc": y,
                       "weak": y + rng.normal(0, 2.0, size=y.size)})
    bench = TabularBenchmark.from_frame(df, space="nb201", target="test_acc", weak=["weak"])
    budget = 16
    out = search_via_tune(bench, strategy="nasrank", budget=budget, seed=0, concurrency=4, weak=["weak"],
                          strategy_kwargs={"batch_size": 4,
                                           "predictor": PredictorConfig(ensemble=1, pretrain=PretrainConfig(epochs=5), finetune=FineTuneConfig(epochs=30))})
    values = out["values"]
    assert len(values) == budget and len(set(out["archs"])) == budget
    assert max(values) > _expected_random_best(y, budget)
    assert np.mean(values) > np.mean(y) + 1.0
    assert out["overhead_s_per_trial"] < 2.0 and out["wall_s"] > 0


def test_a_finite_space_runs_out_cleanly_and_metric_only_on_the_searcher_behaves_as_in_tune(
        ray_session, tmp_path, caplog):
    """Six configs, twenty samples: six trials, one info line, no warning per trial. The metric is
    only on the searcher (as with any Tune searcher, TuneConfig never learns it): one warning up
    front, and get_best_result() needs the metric exactly as with Ray's own searchers."""
    import logging

    def _trainable(config):
        tune.report({"acc": config["k"] * 10 + config["w"]})

    space = {"k": tune.choice([1, 3, 5]), "w": tune.choice([8, 16])}
    searcher = NASRankSearcher(strategy="random", metric="acc", mode="max", seed=0)
    logger = logging.getLogger("ray.tune.search.nasrank")
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level("INFO", logger=logger.name):
            results = _tuner(_trainable, space, searcher, tmp_path, num_samples=20).fit()
    finally:
        logger.removeHandler(caplog.handler)
    ours = [r for r in caplog.records if r.name == logger.name]
    assert [r.levelname for r in ours] == ["WARNING", "INFO"], [r.getMessage() for r in ours]
    assert "every configuration of the space was tried (6 trials)" in ours[1].getMessage()
    assert len(results) == 6 and not results.errors
    assert len({(r.config["k"], r.config["w"]) for r in results}) == 6
    with pytest.raises(ValueError, match="TuneConfig"):
        results.get_best_result()  # Ray's own message, the same for every searcher
    assert results.get_best_result("acc", "max").config == {"k": 5, "w": 16}
