"""NASRankSampler in multi-objective and constrained studies, in the shape of Optuna's
multi-objective and constrained-optimisation tutorials with only the sampler swapped."""

from __future__ import annotations

import math

import numpy as np
import pytest

optuna = pytest.importorskip("optuna")

from ray_nasrank.integrations.optuna import NASRankSampler  # noqa: E402
from ray_nasrank.predictor import FineTuneConfig, PredictorConfig, PretrainConfig  # noqa: E402
from ray_nasrank.spaces import NB201Space  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)
SPACE = NB201Space()
FAST = {"predictor": PredictorConfig(ensemble=1, hidden=16, pretrain=PretrainConfig(epochs=2),
                                     finetune=FineTuneConfig(epochs=15, patience=5)), "batch_size": 4,
        "n_candidates": 200, "local_moves": 16,
        "intrinsic_weak": ()}  # no SynFlow of every cell: seconds, not minutes


def _cell(trial):
    """The objective's architecture, suggested edge by edge as an Optuna user writes it."""
    return SPACE.from_config({d.name: trial.suggest_categorical(d.name, list(d.choices)) for d in SPACE.decisions})


def _acc(arch) -> float:
    return 2.0 * arch.count("nor_conv_3x3") + arch.count("nor_conv_1x1") - arch.count("none")


def _latency(arch) -> float:
    return 1.0 + 3.0 * arch.count("nor_conv_3x3") + arch.count("nor_conv_1x1")


def _capped_studies(samplers: dict, n_trials: int, cap: float = 7.0):
    """Optuna's constrained tutorial: maximise accuracy with ``trial.set_constraint("latency",
    ms - cap)``; one study per sampler, yielded as ``(name, study)`` once it has run."""
    def objective(trial):
        arch = _cell(trial)
        trial.set_constraint("latency", _latency(arch) - cap)
        return _acc(arch)

    for name, sampler in samplers.items():
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.optimize(objective, n_trials=n_trials)
        yield name, study


def test_multi_objective_tutorial_shape_with_three_directions():
    # Optuna's tutorial: return several values, directions per value, read study.best_trials
    def objective(trial):
        arch = _cell(trial)
        return _acc(arch), _latency(arch), float(arch.count("skip_connect"))

    sampler = NASRankSampler(strategy_kwargs=FAST, seed=0)
    study = optuna.create_study(directions=["maximize", "minimize", "maximize"], sampler=sampler)
    study.optimize(objective, n_trials=16)
    assert len(study.trials) == 16 and all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    s = sampler.strategy
    assert s.modes == ("max", "min", "max") and len(s.history) >= 15
    ours = {SPACE.to_string(a) for a, _ in s.pareto_front}
    theirs = {SPACE.to_string(SPACE.from_config(t.params)) for t in study.best_trials}
    assert ours <= theirs  # the strategy's front is Optuna's (trials it did not propose aside)


def test_nan_in_one_direction_fails_that_trial_only():
    calls = []

    def objective(trial):
        arch = _cell(trial)
        calls.append(arch)
        return _acc(arch), (math.nan if len(calls) == 3 else _latency(arch))

    sampler = NASRankSampler(strategy="random", seed=0)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.optimize(objective, n_trials=8)
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.FAIL) == 1 and len(states) == 8
    assert [h["status"] for h in sampler.strategy.history].count("failed") == 1


def binh_and_korn(trial):
    """Optuna's constrained multi-objective example (NSGAIISampler's docs), written for Optuna 4:
    the constraints go to ``user_attrs`` and a ``constraints_func`` returns them."""
    x = trial.suggest_float("x", -15, 30)
    y = trial.suggest_float("y", -15, 30)
    c0 = (x - 5) ** 2 + y ** 2 - 25
    c1 = -((x - 8) ** 2) - (y + 3) ** 2 + 7.7
    trial.set_user_attr("constraint", (c0, c1))
    return 4 * x ** 2 + 4 * y ** 2, (x - 5) ** 2 + (y - 5) ** 2


def constraints(trial):
    return trial.user_attrs["constraint"]


def test_constrained_tutorial_shape_with_constraints_func():
    sampler = NASRankSampler(constraints_func=constraints, strategy_kwargs=FAST, seed=0)
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=sampler)
    study.optimize(binh_and_korn, n_trials=24)
    # stored as Optuna's own samplers store them: best_trials holds feasible trials only
    assert all(t.constraints == {"0": t.user_attrs["constraint"][0], "1": t.user_attrs["constraint"][1]}
               for t in study.trials)
    assert study.best_trials and all(max(t.user_attrs["constraint"]) <= 0 for t in study.best_trials)
    s = sampler.strategy
    assert s.n_constraints == 2 and set(s._constraint_models) == {0, 1}
    feasible = [max(t.user_attrs["constraint"]) <= 0 for t in study.trials]
    random = optuna.create_study(directions=["minimize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=0))
    random.optimize(binh_and_korn, n_trials=24)
    rand_feasible = [max(t.user_attrs["constraint"]) <= 0 for t in random.trials]
    assert sum(feasible[12:]) > sum(rand_feasible[12:]), (feasible, rand_feasible)


def test_set_constraint_single_objective_learns_feasibility():
    if not hasattr(optuna.Trial, "set_constraint"):
        pytest.skip("trial.set_constraint needs Optuna 5")
    shares = {}
    for name, study in _capped_studies({"nasrank": NASRankSampler(strategy_kwargs=FAST, seed=0),
                                        "random": optuna.samplers.RandomSampler(seed=0)}, n_trials=28):
        shares[name] = np.mean([t.constraints["latency"] <= 0 for t in study.trials[12:]])
        if name == "nasrank":
            assert study.best_trial.constraints["latency"] <= 0
            s = study.sampler.strategy
            assert s.n_constraints == 1 and s.best[1] == study.best_value
    assert shares["nasrank"] > shares["random"], shares


def test_known_constraint_is_never_violated():
    cap = 7.0

    def lat_of(params):
        return _latency(SPACE.from_config(params))

    def objective(trial):
        arch = _cell(trial)
        trial.set_user_attr("latency", _latency(arch))
        return _acc(arch), _latency(arch)

    sampler = NASRankSampler(SPACE, strategy_kwargs=FAST, seed=0, known_objectives={1: lat_of},
                             known_constraints={"latency": lambda p: lat_of(p) - cap})
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.optimize(objective, n_trials=12)
    assert all(t.user_attrs["latency"] <= cap for t in study.trials)
    assert sampler.strategy.history[0]["constraints"] == (study.trials[0].user_attrs["latency"] - cap,)


@pytest.mark.parametrize("func, match", [
    (lambda t: 1 / 0, "constraints_func raised on trial 0: ZeroDivisionError"),
    (lambda t: [0.0] if t.number else [0.0, 1.0], "constraints_func returned 1 values for trial 1 but 2"),
    (lambda t: ["low"], "constraints_func returned 'low' as value 0"),
    (lambda t: [float("nan")], "constraints_func returned nan"),
])
def test_bad_constraints_func_is_one_clear_error(func, match):
    study = optuna.create_study(sampler=NASRankSampler(strategy="random", seed=0, constraints_func=func))
    with pytest.raises(ValueError, match=match):
        study.optimize(lambda trial: _acc(_cell(trial)), n_trials=3)


def test_constraints_and_directions_checks():
    with pytest.raises(TypeError, match="constraints_func must be a function"):
        NASRankSampler(constraints_func=[1.0])
    with pytest.raises(ValueError, match="'nasrank' strategy, not 'random'"):
        NASRankSampler(strategy="random", known_objectives={0: "params"})
    study = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=NASRankSampler(SPACE, seed=0, known_objectives={2: "params"},
                                                       strategy_kwargs=FAST))
    with pytest.raises(ValueError, match="known_objectives key 2 is not an objective position"):
        study.optimize(lambda t: (_acc(_cell(t)), 1.0), n_trials=1)


def test_multi_objective_study_with_a_pruner_runs_and_optuna_refuses_reports():
    """Optuna has no pruning with several objectives (``trial.report`` raises): a multi-objective
    study given ``HyperbandPruner`` runs, every trial is a full result, none a partial one."""
    def objective(trial):
        arch = _cell(trial)
        with pytest.raises(NotImplementedError):
            trial.report(_acc(arch) / 2, step=0)
        return _acc(arch), _latency(arch)

    sampler = NASRankSampler(strategy_kwargs=FAST, seed=0)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler,
                                pruner=optuna.pruners.HyperbandPruner(max_resource=4))
    study.optimize(objective, n_trials=8)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    s = sampler.strategy
    assert s.modes == ("max", "min") and len(s.history) >= 7  # the first trial came from the independent sampler
    assert all(h["status"] == "ok" and not h["curve"] for h in s.history)


@pytest.mark.parametrize("known, match", [
    ({"latency": "latency_pixel3"}, r"'latency_pixel3' is not computed by .*\['params', 'flops', 'synflow'\]"),
    ({"params": lambda p: 5.0}, r"no one of the 15625 candidates of the pool meets .*smallest value 5"),
])
def test_an_unknown_quantity_or_a_limit_no_cell_meets_is_refused_before_training(known, match):
    ran = []

    def objective(trial):
        ran.append(_cell(trial))
        return _acc(ran[-1])

    sampler = NASRankSampler(SPACE, strategy_kwargs=FAST, seed=0, known_constraints=known)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    with pytest.raises(ValueError, match=match):
        study.optimize(objective, n_trials=2)
    assert not ran  # refused at the first trial's sampling, before its objective ran


def test_learned_constraint_is_met_more_often_than_by_tpe():
    """Optuna's constrained tutorial shape (``trial.set_constraint``), the sampler swapped: told
    only the constraint values, NASRank proposes feasible cells more often than TPE with the
    same constraints, and its best feasible value is at least TPE's."""
    if not hasattr(optuna.Trial, "set_constraint"):
        pytest.skip("trial.set_constraint needs Optuna 5")
    out = {}
    for name, study in _capped_studies({"nasrank": NASRankSampler(strategy_kwargs=FAST, seed=0),
                                        "tpe": optuna.samplers.TPESampler(seed=0)}, n_trials=30):
        ok = [t.constraints["latency"] <= 0 for t in study.trials]
        out[name] = (np.mean(ok[10:]), study.best_value)  # best_value: the best feasible trial's
    assert out["nasrank"][0] > out["tpe"][0] and out["nasrank"][1] >= out["tpe"][1], out
