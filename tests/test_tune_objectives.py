"""NASRankSearcher with several metrics and constraints: through Tune's Searcher API, and in a real
Tuner in the shape of Tune's multi-objective searcher examples (``metric``/``mode`` lists)."""

from __future__ import annotations

import warnings

import pytest

pytest.importorskip("ray.tune")

from ray import tune  # noqa: E402

from ray_nasrank.integrations.tune import NASRankSearcher  # noqa: E402

SPACE = {"width": tune.choice([8, 16, 32, 64]), "depth": tune.choice([1, 2, 3, 4]), "k": tune.choice([1, 3, 5]),
         "epochs": 2}
FAST = {"predictor": {"ensemble": 1, "hidden": 16}, "batch_size": 4, "intrinsic_weak": ()}


def size(cfg: dict) -> float:
    return cfg["width"] * cfg["depth"] * cfg["k"]


def acc(cfg: dict) -> float:
    return float(cfg["width"].bit_length() + cfg["depth"] + cfg["k"] / 2)


def _run(s: NASRankSearcher, n: int, report) -> list[dict]:
    assert s.set_search_properties(None, None, SPACE, num_samples=n + 1)
    configs = []
    for i in range(n):
        s.wait_until_ready(timeout_s=120)
        cfg = s.suggest(f"t{i}")
        configs.append(cfg)
        s.on_trial_complete(f"t{i}", report(cfg))
    return configs


def _fast_kwargs() -> dict:
    from ray_nasrank.predictor import PredictorConfig

    return {**FAST, "predictor": PredictorConfig(ensemble=1, hidden=16)}


def test_metric_and_mode_lists_search_a_front_and_known_constraints_are_never_suggested(tmp_path):
    cap = 96
    s = NASRankSearcher(metric=["acc", "size"], mode=["max", "min"], seed=0, strategy_kwargs=_fast_kwargs(),
                        known_objectives={"size": size}, known_constraints=[lambda c: size(c) - cap])
    configs = _run(s, 12, lambda c: {"acc": acc(c), "size": size(c)})
    assert all(size(c) <= cap for c in configs)
    st = s.strategy
    assert st.modes == ("max", "min") and all(h["feasible"] for h in st.history)
    assert st.history[0]["value"] == (acc(configs[0]), size(configs[0]))
    # a saved state holds data only; restoring gives the strategy this searcher's functions back
    s.save(str(tmp_path / "s.npz"))
    again = NASRankSearcher(metric=["acc", "size"], mode=["max", "min"], seed=0, strategy_kwargs=_fast_kwargs(),
                            known_objectives={"size": size}, known_constraints=[lambda c: size(c) - cap])
    again.restore(str(tmp_path / "s.npz"))
    assert again.strategy.history == st.history
    again._queue.clear()
    assert all(size(again._config_for(a)) <= cap for a in again.strategy.ask(3))


def test_constraint_metrics_are_learned_and_bad_values_named():
    s = NASRankSearcher(metric="acc", mode="max", seed=0, strategy_kwargs=_fast_kwargs(),
                        constraint_metrics=["over"])
    _run(s, 16, lambda c: {"acc": acc(c), "over": size(c) - 96})
    st = s.strategy
    assert st.n_constraints == 1 and st._constraint_models
    best_arch, _ = st.best
    assert size(s._config_for(best_arch)) <= 96
    cfg = s.suggest("bad")
    with pytest.raises(ValueError, match="constraint metric over='high'"):
        s.on_trial_complete("bad", {"acc": acc(cfg), "over": "high"})


def test_missing_metric_fails_the_trial_and_mode_lists_are_checked():
    s = NASRankSearcher(metric=["acc", "size"], mode=["max", "min"], strategy="random", seed=0)
    assert s.set_search_properties(None, None, SPACE, num_samples=4)
    s.wait_until_ready()
    cfg = s.suggest("t0")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        s.on_trial_complete("t0", {"acc": acc(cfg)})
    assert "without reporting metric 'size'" in str(w[0].message)
    assert s.strategy.history[0]["status"] == "failed"
    with pytest.raises(ValueError, match="same length"):
        NASRankSearcher(metric=["acc"], mode=["max", "min"])
    with pytest.raises(ValueError, match="give a list mode"):
        NASRankSearcher(metric=["acc", "size"], mode="max")
    with pytest.raises(ValueError, match="not among metric"):
        NASRankSearcher(metric=["acc", "size"], mode=["max", "min"], known_objectives={"latency": size})


def test_tuner_multi_objective_in_the_shape_of_tunes_example(ray_session, tmp_path):
    # Tune's multi-objective searchers take metric/mode lists; get_best_result names one metric
    def objective(config):  # self-contained: Ray workers cannot import this test module
        from ray import tune as worker_tune

        worker_tune.report({"acc": float(config["width"].bit_length() + config["depth"] + config["k"] / 2),
                            "size": config["width"] * config["depth"] * config["k"]})

    searcher = NASRankSearcher(metric=["acc", "size"], mode=["max", "min"], seed=0,
                               strategy_kwargs=_fast_kwargs(), known_constraints=[lambda c: size(c) - 128])
    tuner = tune.Tuner(objective, param_space=SPACE,
                       tune_config=tune.TuneConfig(search_alg=searcher, num_samples=8, max_concurrent_trials=2),
                       run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0))
    results = tuner.fit()
    assert len(results) == 8 and not results.errors
    assert all(size(r.config) <= 128 for r in results)
    best = results.get_best_result(metric="acc", mode="max")
    assert best.metrics["size"] <= 128


def test_metric_lists_with_a_scheduler_keep_stopped_trials_partial():
    """Several metrics under ASHA (which stops on one of them): every result reporting all the
    metrics is a point of the trial's curve; a trial stopped below ``max_fidelity`` stays partial
    and never joins the front, one trained in full does."""
    s = NASRankSearcher(metric=["acc", "size"], mode=["max", "min"], seed=0, strategy_kwargs=_fast_kwargs(),
                        max_fidelity=3, constraint_metrics=["over"])
    assert s.set_search_properties(None, None, SPACE, num_samples=5)
    s.wait_until_ready(timeout_s=120)
    cfgs = {f"t{i}": s.suggest(f"t{i}") for i in range(4)}

    def result(cfg, it):
        return {"acc": acc(cfg) * it / 3, "size": size(cfg), "over": size(cfg) - 96, "training_iteration": it}

    for tid, cfg in cfgs.items():
        s.on_trial_result(tid, result(cfg, 1))
    s.on_trial_result("t0", {"acc": 1.0, "training_iteration": 2})  # not every metric: no curve point
    for tid in ("t0", "t1"):
        s.on_trial_complete(tid, result(cfgs[tid], 3))   # trained in full
    for tid in ("t2", "t3"):
        s.on_trial_complete(tid, result(cfgs[tid], 1))   # stopped at the first rung
    st = s.strategy
    hist = {h["arch"]: h for h in st.history}
    assert [h["status"] for h in st.history] == ["ok", "ok", "partial", "partial"]
    assert {a for a, _ in st.pareto_front} <= {h["arch"] for h in st.history[:2]}
    assert all(len(h["curve"]) == 1 for h in hist.values())
    assert st.history[2]["constraints"] == (size(cfgs["t2"]) - 96,)
    assert [c["fidelity"] for c in s.completed] == [None, None, 1.0, 1.0]


def test_nan_in_one_metric_fails_that_trial_only_and_bad_limits_are_refused():
    s = NASRankSearcher(metric=["acc", "size"], mode=["max", "min"], seed=0, strategy="random")
    assert s.set_search_properties(None, None, SPACE, num_samples=5)
    for i in range(4):
        cfg = s.suggest(f"t{i}")
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            s.on_trial_complete(f"t{i}", {"acc": acc(cfg), "size": float("nan") if i == 1 else size(cfg)})
        assert bool(w) == (i == 1) and (i != 1 or "size=nan" in str(w[0].message))
    assert [h["status"] for h in s.strategy.history] == ["ok", "failed", "ok", "ok"]
    for known, match in ((["latency_pixel3"], r"'latency_pixel3' is not computed by .*offers \[\]"),
                         ([lambda c: size(c) + 1.0], r"no one of the 48 candidates of the pool meets.*smallest value 9")):
        bad = NASRankSearcher(metric="acc", mode="max", seed=0, strategy_kwargs=_fast_kwargs(),
                              known_constraints=known)
        assert bad.set_search_properties(None, None, SPACE, num_samples=2)
        with pytest.raises(ValueError, match=match):
            bad.wait_until_ready(timeout_s=120)
            bad.suggest("t0")


@pytest.mark.ray
@pytest.mark.slow  # 15 s of Ray; test_metric_lists_with_a_scheduler_keep_stopped_trials_partial is the quick one
def test_tuner_metric_lists_under_asha_keep_stopped_trials_partial(ray_session, tmp_path):
    """Tune's shape: ``ASHAScheduler`` stops trials on one metric while the searcher searches a
    front of two; a trial stopped early is a curve in the strategy, never a front point."""
    from ray.tune.schedulers import ASHAScheduler

    epochs = 4

    def objective(config):  # self-contained: Ray workers cannot import this test module
        from ray import tune as worker_tune

        final = float(config["width"].bit_length() + config["depth"] + config["k"] / 2)
        for epoch in range(1, epochs + 1):
            worker_tune.report({"acc": final * epoch / epochs, "size": config["width"] * config["depth"] * config["k"]})

    # random proposals: a search that only improves would leave ASHA nothing to stop
    searcher = NASRankSearcher(metric=["acc", "size"], mode=["max", "min"], seed=0, strategy="random",
                               max_fidelity=epochs)
    results = tune.Tuner(
        objective, param_space=SPACE,
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=8, max_concurrent_trials=2,
                                    scheduler=ASHAScheduler(metric="acc", mode="max", max_t=epochs, grace_period=1,
                                                            reduction_factor=2)),
        run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0)).fit()
    assert len(results) == 8 and not results.errors
    reached = {(r.config["width"], r.config["depth"], r.config["k"]): r.metrics["training_iteration"] for r in results}
    st = searcher.strategy
    for h in st.history:
        cfg = searcher._config_for(h["arch"])
        its = reached[(cfg["width"], cfg["depth"], cfg["k"])]
        assert h["status"] == ("ok" if its == epochs else "partial") and len(h["curve"]) == min(its, epochs - 1), (h, its, searcher.completed)
    assert min(reached.values()) < epochs  # ASHA did stop some trials
    assert all(reached[(c["width"], c["depth"], c["k"])] == epochs
               for c in (searcher._config_for(a) for a, _ in st.pareto_front))
