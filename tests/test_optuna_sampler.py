"""NASRankSampler: ask/tell, optimize, warm starts, failures, and OptunaSearch inside Ray Tune."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

optuna = pytest.importorskip("optuna")

from ray_nasrank.integrations.optuna import NASRankSampler  # noqa: E402
from ray_nasrank.search import make_strategy  # noqa: E402
from ray_nasrank.spaces import CategoricalSpace, NB201Space  # noqa: E402

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
    with pytest.raises(TypeError, match="space must be None, a SearchSpace"):
        NASRankSampler(42)
    with pytest.raises(ValueError, match="unknown strategy 'nope'"):
        NASRankSampler(SPACE, strategy="nope")
    with pytest.raises(ValueError, match="searches"):
        NASRankSampler(SPACE, strategy=make_strategy("random", NB201Space(key="other")))
    with pytest.raises(TypeError, match="independent_sampler"):
        NASRankSampler(SPACE, independent_sampler="random")
    # several directions need a strategy that searches several objectives (tests/test_optuna_objectives.py)
    multi = optuna.create_study(directions=["maximize", "minimize"], sampler=NASRankSampler(SPACE, strategy="rea"))
    with pytest.raises(ValueError, match="strategy 'rea' searches one objective"):
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


# ------------------------------------------------------------------------------ define-by-run, no space given
def _objective(trial):
    clf = trial.suggest_categorical("classifier", ["svc", "forest"])
    if clf == "svc":
        c = trial.suggest_float("svc_c", 1e-3, 1e3, log=True)
        score = -abs(np.log10(c) - 1)
    else:
        depth = trial.suggest_int("rf_max_depth", 2, 32, log=True)
        n = trial.suggest_int("rf_n_estimators", 10, 50, step=10)
        score = -abs(np.log2(depth) - 3) + n / 100
    lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
    drop = trial.suggest_float("dropout", 0.0, 0.5, step=0.1)
    return score - abs(np.log10(lr) + 3) - drop


def test_no_argument_sampler_infers_a_conditional_mixed_space_from_the_study():
    study = optuna.create_study(direction="maximize", sampler=NASRankSampler(strategy="random", seed=0))
    study.optimize(_objective, n_trials=25)
    space = study.sampler.space
    desc = space.describe()
    for line in ("classifier: choice(['svc', 'forest'])", "svc_c: loguniform(0.001, 1000.0)  if classifier in ['svc']",
                 "rf_max_depth: lograndint(2, 33)  if classifier in ['forest']",
                 "rf_n_estimators: qrandint(10, 50, 10)  if classifier in ['forest']",
                 "lr: loguniform(1e-05, 0.1)", "dropout: quniform(0.0, 0.5, 0.1)"):
        assert line in desc, desc
    s = study.sampler.strategy
    # every finished trial reached the strategy, each configuration once (inactive params are not a difference)
    keys = [space.validate(space.from_config(t.params)) for t in study.trials]
    assert len(set(keys)) == len(keys) == 25
    assert {h["arch"] for h in s.history} == set(keys)
    # after the first trial the strategy proposed every modelled parameter
    proposed = [t for t in study.trials[2:] if space.from_config(t.params) in {h["arch"] for h in s.history if h["source"] == "asked"}]
    assert len(proposed) >= 15


def test_a_branch_that_appears_later_rebuilds_the_space_and_keeps_every_result():
    calls = []

    def objective(trial):
        x = trial.suggest_int("x", 0, 3)
        calls.append(x)
        if len(calls) > 1 and x >= 2:
            return x + trial.suggest_float("y", 0.0, 1.0)
        return float(x)

    study = optuna.create_study(direction="maximize", sampler=NASRankSampler(strategy="rea", seed=3))
    study.enqueue_trial({"x": 0})
    study.enqueue_trial({"x": 3})
    study.optimize(objective, n_trials=12)
    space = study.sampler.space
    assert [d.name for d in space.decisions] == ["x", "y"] and space.decisions[1].condition is not None
    assert len(study.sampler.strategy.history) == 12


def test_params_the_space_cannot_hold_go_to_tpe_and_conflicts_name_both_distributions():
    sampler = NASRankSampler(strategy="random", seed=0)
    assert isinstance(sampler._independent, optuna.samplers.TPESampler)

    def drifting(trial):
        if trial.number < 3:
            return trial.suggest_float("lr", 0.0, 1.0)
        return trial.suggest_float("lr", 0.0, 2.0)

    study = optuna.create_study(sampler=sampler)
    with pytest.raises(ValueError, match=r"'lr' is declared as FloatDistribution\(.*high=1.0.*trial 0 and as FloatDistribution\(.*high=2.0"):
        study.optimize(drifting, n_trials=6)
    given = NASRankSampler(CategoricalSpace({"n": [1, 2, 3]}), strategy="random", seed=0)
    study = optuna.create_study(sampler=given)
    study.enqueue_trial({"n": 2})
    with pytest.raises(ValueError, match=r"'n' is declared as IntDistribution.*sampler's space has CategoricalDistribution"):
        study.optimize(lambda t: t.suggest_int("n", 1, 3), n_trials=2)


def test_a_finite_space_that_runs_out_says_so_once(caplog):
    study = optuna.create_study(sampler=NASRankSampler(CategoricalSpace({"a": [1, 2], "b": ["x", "y"]}),
                                                       strategy="random", seed=0))
    with caplog.at_level("INFO", logger="ray_nasrank.integrations.optuna._sampler"):
        study.optimize(lambda t: t.suggest_categorical("a", [1, 2]) + len(t.suggest_categorical("b", ["x", "y"])),
                       n_trials=7)
    assert caplog.text.count("every configuration") == 1
    assert len(study.sampler.strategy.history) == 4


def test_infer_space_picks_the_parameter_that_decides_a_branch():
    from optuna.distributions import FloatDistribution, IntDistribution

    from ray_nasrank.integrations.optuna import infer_space

    d = {"n_layers": IntDistribution(1, 3), "n_units_l0": IntDistribution(4, 128), "n_units_l1": IntDistribution(4, 128),
         "lr": FloatDistribution(1e-5, 1e-1, log=True)}

    def trial(**params):
        return optuna.trial.create_trial(params=params, distributions={k: d[k] for k in params}, value=0.0)

    trials = [trial(n_layers=1, n_units_l0=57, lr=1e-3), trial(n_layers=2, n_units_l0=8, n_units_l1=9, lr=1e-2),
              trial(n_layers=1, n_units_l0=100, lr=1e-4)]
    for i, t in enumerate(trials):
        t.number = i
    space = infer_space(trials)
    cond = {dd.name: dd.condition for dd in space.decisions}
    assert cond["n_units_l1"].parent == "n_layers" and cond["n_units_l1"].values == (2,)
    assert cond["n_layers"] is None and cond["lr"] is None
    one = {"n_layers": 1, "n_units_l0": 57, "lr": 1e-3}
    assert space.from_config({**one, "n_units_l1": 99}) == space.from_config(one)  # inactive units: one candidate


def test_infer_space_never_takes_a_parameter_suggested_later_as_the_deciding_one():
    from optuna.distributions import CategoricalDistribution, IntDistribution

    from ray_nasrank.integrations.optuna import infer_space

    d = {"n_layers": IntDistribution(1, 3), "n_units_l1": IntDistribution(4, 128),
         "optimizer": CategoricalDistribution(["Adam", "RMSprop", "SGD"])}

    def trial(number, **params):  # params in the order the objective suggests them
        t = optuna.trial.create_trial(params=params, distributions={k: d[k] for k in params}, value=0.0)
        t.number = number
        return t

    # by chance the optimizer splits these trials exactly as n_layers does, and it comes nearer in
    # first-seen order, but pytorch_simple's code suggests it after the layers: n_layers decides
    trials = [trial(0, n_layers=1, optimizer="RMSprop"), trial(1, n_layers=2, n_units_l1=9, optimizer="Adam"),
              trial(2, n_layers=1, optimizer="RMSprop")]
    cond = {dd.name: dd.condition for dd in infer_space(trials).decisions}
    assert cond["n_units_l1"].parent == "n_layers" and cond["n_units_l1"].values == (2,)


def test_a_fresh_sampler_never_reproposes_trials_still_running_from_before_a_restart():
    from reliability import finite_conditional_space, suggest_config

    space = finite_conditional_space()
    study = optuna.create_study(direction="maximize", sampler=NASRankSampler(space, strategy="random", seed=0))
    running = [study.ask() for _ in range(3)]
    archs = [space.from_config(suggest_config(t, space)) for t in running]
    # the driver restarts: same seed, same study, the three trials still running on their workers
    study = optuna.load_study(study_name=study.study_name, storage=study._storage,
                              sampler=NASRankSampler(space, strategy="random", seed=0))
    t = study.ask()
    new = space.from_config(suggest_config(t, space))
    assert new not in archs and study.sampler.strategy.pending == {*archs, new}
    for r, a in zip(running, archs):
        study.tell(r.number, 1.0)
    study.tell(t, 2.0)
    s = study.sampler.strategy
    assert not s.pending and sorted(h["value"] for h in s.history) == [1.0, 1.0, 1.0, 2.0]


def test_normal_values_stay_inside_the_declared_distribution_and_on_their_step():
    from ray_nasrank.integrations.optuna._sampler import _inside_declared
    from ray_nasrank.spaces import Decision, Normal, SearchSpace

    space = SearchSpace([Decision(("k",), ["a", "b"]), Decision(("z",), Normal(0.0, 1.0, step=0.5))])
    assert _inside_declared(space, ("a", -6.0)) == ("a", -4.0)
    assert _inside_declared(space, ("a", 9.5)) == ("a", 4.0)
    assert _inside_declared(space, ("b", 1.5)) == ("b", 1.5)
    study = optuna.create_study(direction="maximize", sampler=NASRankSampler(space, strategy="rea", seed=0))
    study.optimize(lambda t: -abs(t.suggest_float("z", -4.0, 4.0) - 3.5) + (t.suggest_categorical("k", ["a", "b"]) == "b"),
                   n_trials=25)  # 34 configurations inside +-4 sd
    assert all(abs(t.params["z"]) <= 4 and t.params["z"] % 0.5 == 0 for t in study.trials)
    told = {h["arch"] for h in study.sampler.strategy.history if h["status"] == "ok"}
    assert told == {space.from_config(t.params) for t in study.trials}


def test_an_enqueued_point_outside_the_space_is_named_and_never_credited_to_a_proposal():
    from ray_nasrank.spaces import Integer, SearchSpace

    space = SearchSpace({"a": Integer(1, 3), "b": ["x", "y"]})

    def objective(t):
        return t.suggest_int("a", 1, 3) + len(t.suggest_categorical("b", ["x", "y"]))

    study = optuna.create_study(direction="maximize", sampler=NASRankSampler(space, strategy="random", seed=0))
    study.enqueue_trial({"a": 7, "b": "x"})  # Optuna warns and evaluates it as given
    with pytest.warns(UserWarning, match=r"trial 0 is not a configuration of the sampler's space.*'a'"):
        study.optimize(objective, n_trials=1)
    assert study.trials[0].params["a"] == 7
    assert study.sampler.strategy is None or study.sampler.strategy.history == []
    study.optimize(objective, n_trials=2)
    assert len(study.sampler.strategy.history) == 2


def test_a_non_finite_value_is_recorded_as_failed_with_a_warning():
    # Optuna keeps a trial returning inf COMPLETE; the sampler treats it as the Tune searcher does
    study = _study()
    t = study.ask(SPACE.to_optuna())
    arch = SPACE.from_config(t.params)
    with pytest.warns(UserWarning, match=rf"trial {t.number} returned inf, not a finite number"):
        study.tell(t, float("inf"))
    assert study.trials[0].state == optuna.trial.TrialState.COMPLETE
    assert study.sampler.strategy.status(arch) == "failed"
    assert study.sampler.strategy.best is None
