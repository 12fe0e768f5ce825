"""NASRankSampler: ask/tell, optimize, warm starts, failures, and OptunaSearch inside Ray Tune."""

from __future__ import annotations

import pickle

import pytest

optuna = pytest.importorskip("optuna")

from ray_nasrank.integrations.optuna import NASRankSampler  # noqa: E402
from ray_nasrank.search import make_strategy  # noqa: E402
from ray_nasrank.spaces import NB201Space  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)
SPACE = NB201Space()


def _score(arch) -> float:
    return float(arch.count("nor_conv_3x3") * 2 + arch.count("nor_conv_1x1"))


def _study(direction="maximize", **kw) -> optuna.Study:
    kw.setdefault("strategy", "random")
    kw.setdefault("seed", 0)
    return optuna.create_study(direction=direction, sampler=NASRankSampler(SPACE, **kw))


def test_ask_tell_fills_every_edge_from_the_strategy_without_iso_repeats():
    study = _study()
    sampler = study.sampler
    assert sampler.infer_relative_search_space(study, None) == SPACE.to_optuna()
    trials = [study.ask(SPACE.to_optuna()) for _ in range(12)]
    archs = [SPACE.from_config(t.params) for t in trials]
    assert sampler.strategy.pending == set(archs)  # every edge came from the strategy
    assert len({SPACE.iso_key(a) for a in archs}) == 12
    for t, a in zip(trials, archs):
        study.tell(t, _score(a))
    hist = sampler.strategy.history
    assert [h["arch"] for h in hist] == archs and all(h["source"] == "asked" for h in hist)
    assert sampler.strategy.best[1] == study.best_value


def test_optimize_mixes_relative_arch_and_independent_hyperparameters():
    study = _study(independent_sampler=optuna.samplers.RandomSampler(seed=1))

    def objective(trial):
        arch = SPACE.from_config({d.name: trial.suggest_categorical(d.name, list(d.choices))
                                  for d in SPACE.decisions})
        lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
        if lr > 0.5:
            raise optuna.TrialPruned()
        return _score(arch)

    study.optimize(objective, n_trials=15)
    s = study.sampler.strategy
    assert len(s.history) == 15 and not s.pending
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert sum(h["status"] == "failed" for h in s.history) == len(pruned)
    assert len({t.params["lr"] for t in study.trials}) == 15  # lr came from the independent sampler


def test_failed_trials_are_failures_and_minimize_direction_is_honoured():
    study = _study(direction="minimize")
    assert study.sampler.strategy is None
    t = study.ask(SPACE.to_optuna())
    study.tell(t, state=optuna.trial.TrialState.FAIL)
    assert study.sampler.strategy.mode == "min"
    assert study.sampler.strategy.history[0]["status"] == "failed"
    mismatch = optuna.create_study(direction="minimize",
                                   sampler=NASRankSampler(SPACE, strategy=make_strategy("random", SPACE)))
    with pytest.raises(ValueError, match="mode='max'.*minimized"):
        mismatch.ask(SPACE.to_optuna())


def test_warm_start_and_enqueued_trials_reach_the_strategy():
    study = _study()
    warm = SPACE.sample(5)
    study.add_trial(optuna.trial.create_trial(params=SPACE.to_flat_params(warm), distributions=SPACE.to_optuna(),
                                              value=3.0))
    queued = SPACE.sample(6)
    study.enqueue_trial(SPACE.to_flat_params(queued))
    t1 = study.ask(SPACE.to_optuna())
    assert SPACE.from_config(t1.params) == queued
    study.tell(t1, 1.0)
    s = study.sampler.strategy
    assert s.status(warm) == "ok" and s.status(queued) == "ok"
    t2 = study.ask(SPACE.to_optuna())
    assert SPACE.from_config(t2.params) not in (warm, queued)


def test_bad_arguments_fail_clearly_and_sampler_pickles():
    with pytest.raises(TypeError, match="space must be a SearchSpace"):
        NASRankSampler(42)
    with pytest.raises(ValueError, match="unknown strategy 'nope'"):
        NASRankSampler(SPACE, strategy="nope")
    with pytest.raises(ValueError, match="searches"):
        NASRankSampler(SPACE, strategy=make_strategy("random", NB201Space(key="other")))
    with pytest.raises(TypeError, match="independent_sampler"):
        NASRankSampler(SPACE, independent_sampler="random")
    multi = optuna.create_study(directions=["maximize", "minimize"], sampler=NASRankSampler(SPACE, strategy="random"))
    with pytest.raises(ValueError, match="single-objective"):
        multi.ask(SPACE.to_optuna())
    study = _study()
    t = study.ask(SPACE.to_optuna())
    clone = pickle.loads(pickle.dumps(study.sampler))
    assert clone.strategy.pending == study.sampler.strategy.pending
    study.tell(t, 1.0)


@pytest.mark.ray
def test_optuna_search_with_the_sampler_runs_in_tune(ray_session, nb201_bench, tmp_path):
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    from ray_nasrank.integrations.tune import make_table_trainable

    first = SPACE.sample(3)
    sampler = NASRankSampler(SPACE, strategy="random", seed=0)
    search = OptunaSearch(sampler=sampler, metric="test_acc", mode="max",
                          points_to_evaluate=[SPACE.to_flat_params(first)])  # flat keys, as OptunaSearch needs
    tuner = tune.Tuner(
        make_table_trainable(nb201_bench),
        param_space={**SPACE.to_tune(), "epochs": 1},
        tune_config=tune.TuneConfig(search_alg=search, num_samples=6, max_concurrent_trials=2, reuse_actors=True),
        run_config=tune.RunConfig(verbose=0, storage_path=str(tmp_path)),
    )
    df = tuner.fit().get_dataframe()
    assert len(df) == 6 and df["arch"].nunique() == 6
    assert SPACE.to_string(first) in set(df["arch"])
    s = sampler.strategy
    assert len(s.history) == 6 and not s.pending
    told = {SPACE.to_string(h["arch"]): h["value"] for h in s.history}
    assert told == pytest.approx(dict(zip(df["arch"], df["test_acc"])))
