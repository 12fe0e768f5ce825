"""Client-shaped scripts (tests/dropin/) with only the searcher or sampler swapped: Ray Tune's
Optuna example and PyTorch tutorial shapes, optuna-examples' sklearn_simple and pytorch_simple."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

DROPIN = Path(__file__).resolve().parent / "dropin"


def load(name: str):
    if str(DROPIN) not in sys.path:
        sys.path.insert(0, str(DROPIN))
    spec = importlib.util.spec_from_file_location(f"dropin_{name}", DROPIN / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # as a script's __main__ is: OptunaSearch.save pickles its functions by name
    spec.loader.exec_module(mod)
    try:  # Tune ships the trainable to workers that cannot import tests/dropin: send both by value
        import _data
        from ray import cloudpickle

        cloudpickle.register_pickle_by_value(mod)
        cloudpickle.register_pickle_by_value(_data)
    except ImportError:
        pass
    return mod


def test_optuna_sklearn_simple_with_no_argument_sampler():
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = load("optuna_sklearn_simple").main(n_trials=14)
    assert len(study.trials) == 14 and all(t.state.name == "COMPLETE" for t in study.trials)
    sampler = study.sampler
    desc = sampler.space.describe()
    # the space was inferred from the trials before the last; a branch is conditional once the
    # other branch was seen too (an unseeded study may, rarely, stay on one classifier)
    if len({t.params["classifier"] for t in study.trials[:-1]}) == 2:
        assert "svc_c: loguniform(1e-10, 10000000000.0)  if classifier in ['SVC']" in desc
        assert "rf_max_depth: lograndint(2, 33)  if classifier in ['RandomForest']" in desc
    else:
        assert "  if classifier" not in desc
    told = sampler.strategy.history
    assert len(told) == 14 and len({h["arch"] for h in told}) == 14  # each config once
    assert study.best_value > 0.5


def test_optuna_pytorch_simple_conditional_layers():
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = load("optuna_pytorch_simple").main(n_trials=12)
    space = study.sampler.space
    names = {d.name: d for d in space.decisions}
    assert {"n_layers", "n_units_l0", "dropout_l0", "optimizer", "lr"} <= set(names)
    assert repr(names["lr"].domain) == "loguniform(1e-05, 0.1)" and repr(names["n_layers"].domain) == "randint(1, 4)"
    # the sampler's space was inferred from the trials completed before the last (pruned ones do
    # not count); n_units_l1 is conditional on n_layers once one of them had 2+ layers and another
    # had 1 (an unseeded study may see only one kind)
    seen = [t.params["n_layers"] for t in study.trials[:-1] if t.state.name == "COMPLETE"]
    if min(seen) == 1 < max(seen):
        assert names["n_units_l1"].condition.parent == "n_layers"
        assert set(names["n_units_l1"].condition.values) == {n for n in seen if n > 1}
    elif min(seen) > 1:  # every trial had 2+ layers: its units are always there, so not conditional
        assert names["n_units_l1"].condition is None
    assert len(study.sampler.strategy.history) == 12 and study.best_value > 0.3


@pytest.mark.ray
def test_tune_optuna_example_shape_with_loguniform_lr_and_choice_arch(ray_session, tmp_path):
    out = load("tune_optuna_example").main(num_samples=6, storage_path=str(tmp_path))
    assert out["trials"] == 6 and out["best_accuracy"] > 0.5
    for cfg in out["configs"]:
        assert 1e-4 <= cfg["lr"] <= 1e-1 and cfg["activation"] in ("relu", "tanh") and cfg["steps"] == 30
    assert len({(c["lr"], c["alpha"], c["activation"], tuple(c["hidden"])) for c in out["configs"]}) == 6


@pytest.mark.ray
def test_tune_tutorial_shape_sample_from_is_one_clear_error_and_the_fix_runs(ray_session, tmp_path):
    mod = load("tune_cifar_tutorial")
    with pytest.raises(ValueError) as e:
        mod.main(fixed=False, num_samples=2, storage_path=str(tmp_path))
    msg = str(e.value)
    assert "'l1'" in msg and "'l2'" in msg and "tune.sample_from" in msg and "tune.choice" in msg
    out = mod.main(fixed=True, num_samples=4, storage_path=str(tmp_path))
    assert out["trials"] == 4 and out["best_loss"] < 2.3
    assert all(c["l1"] in [2 ** i for i in range(2, 9)] for c in out["configs"])


@pytest.mark.ray
def test_optuna_search_with_nasrank_sampler_in_tune(ray_session, tmp_path):
    results, search = load("optuna_pytorch_simple").tune_main(num_samples=5, storage_path=str(tmp_path))
    assert len(results) == 5 and not results.errors
    best = results.get_best_result("accuracy", "max")
    assert best.metrics["accuracy"] > 0.1 and "lr" in best.config
