"""NASRankSampler under Optuna's pruners: intermediate values of pruned and complete trials are
learning curves, and a pruned trial is a partial observation, never a final result."""

from __future__ import annotations

import math
import warnings

import pytest

optuna = pytest.importorskip("optuna")

from optuna.trial import TrialState  # noqa: E402

from ray_nasrank.integrations.optuna import NASRankSampler  # noqa: E402
from ray_nasrank.predictor import FineTuneConfig, PredictorConfig  # noqa: E402
from ray_nasrank.spaces import CategoricalSpace  # noqa: E402

SPACE = CategoricalSpace({"k": [1, 3, 5, 7], "w": [8, 16, 32, 64], "act": ["relu", "tanh"]})
STEPS = 9


def _acc(config: dict, step: int) -> float:
    """Validation accuracy after ``step + 1`` epochs: larger kernels end higher, tanh lower."""
    final = config["k"] * 10 + config["w"] / 8 - (15 if config["act"] == "tanh" else 0)
    return final * (1 - math.exp(-(step + 1) * 8 / config["w"]))


def objective(trial):  # an Optuna tutorial's objective with pruning
    config = {"k": trial.suggest_categorical("k", [1, 3, 5, 7]), "w": trial.suggest_categorical("w", [8, 16, 32, 64]),
              "act": trial.suggest_categorical("act", ["relu", "tanh"])}
    for step in range(STEPS):
        acc = _acc(config, step)
        trial.report(acc, step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return acc


PRUNERS = {
    "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1),
    "successive_halving": lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3),
    "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=1, max_resource=STEPS, reduction_factor=3),
}


@pytest.mark.parametrize("name", list(PRUNERS))
def test_pruned_trials_are_partial_observations_and_complete_ones_keep_their_curves(name):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    strategy = "nasrank" if name == "hyperband" else "random"
    kwargs = {"strategy_kwargs": {"predictor": PredictorConfig(ensemble=1, hidden=8, finetune=FineTuneConfig(epochs=10)),
                                  "batch_size": 4}} if strategy == "nasrank" else {}
    sampler = NASRankSampler(SPACE, strategy=strategy, seed=0, **kwargs)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=PRUNERS[name]())
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        study.optimize(objective, n_trials=24)
    s = sampler.strategy
    states = {t.number: t.state for t in study.trials}
    assert TrialState.PRUNED in states.values() and TrialState.COMPLETE in states.values()
    history = {h["arch"]: h for h in s.history}
    assert len(history) == len(study.trials)  # every bracket's trials reach the strategy
    for t in study.trials:
        h = history[SPACE.from_config(t.params)]
        steps = sorted(t.intermediate_values)
        assert [f for f, _ in h["curve"]][:len(steps) - 1] == [st + 1.0 for st in steps][:len(steps) - 1]
        if t.state == TrialState.PRUNED:  # a curve, never a final result
            assert h["status"] == "partial" and h["fidelity"] == steps[-1] + 1
        else:
            assert h["status"] == "ok" and h["value"] == pytest.approx(t.value)
    assert s.best[1] == pytest.approx(study.best_value)
    assert [f for f, _, _ in s.fidelity_levels()][-1] is None and len(s.fidelity_levels()) > 2


def test_a_nan_intermediate_value_gets_one_warning_naming_the_trial_and_is_dropped():
    sampler = NASRankSampler(SPACE, strategy="random", seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=optuna.pruners.NopPruner())

    def nan_at_two(trial):
        trial.suggest_categorical("k", [1, 3, 5, 7]), trial.suggest_categorical("w", [8, 16, 32, 64])
        trial.suggest_categorical("act", ["relu", "tanh"])
        for step in range(4):
            trial.report(math.nan if step in (1, 2) else float(step), step)
        return 3.0

    with pytest.warns(UserWarning) as caught:
        study.optimize(nan_at_two, n_trials=1)
    texts = [str(w.message) for w in caught if "intermediate" in str(w.message)]
    assert texts == ["trial 0 reported a non-finite intermediate value at step(s) [1, 2]; those values are dropped"]
    (h,) = sampler.strategy.history
    assert h["curve"] == [[1.0, 0.0], [4.0, 3.0]] and h["status"] == "ok" and h["value"] == 3.0



