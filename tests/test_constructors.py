"""The public constructors: keyword-only after the first argument, weak labels as one ``WeakLabels``
object, and a ``Strategy`` handed to the Optuna sampler brings its own space (docs/migration.md)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ray_nasrank.predictor import BlendConfig, FineTuneConfig, PredictorConfig, PretrainConfig
from ray_nasrank.search import NASRankStrategy, RandomStrategy, WeakLabels, make_strategy
from ray_nasrank.spaces import CategoricalSpace

SPACE = CategoricalSpace({"width": [4, 8, 16, 32], "op": ["a", "b", "c"]})
TINY = PredictorConfig(ensemble=1, hidden=8, pretrain=PretrainConfig(epochs=2), finetune=FineTuneConfig(epochs=5),
                       blend=BlendConfig(mode="off"))


def _model(config):
    return torch.nn.Linear(4, config["width"])


def test_strategies_take_only_the_space_positionally():
    with pytest.raises(TypeError, match="positional"):
        NASRankStrategy(SPACE, 0)
    with pytest.raises(TypeError, match="positional"):
        RandomStrategy(SPACE, 0)
    with pytest.raises(TypeError, match="positional"):
        make_strategy("random", SPACE, 0)
    assert RandomStrategy(SPACE, seed=3).seed == 3


def test_weak_labels_join_given_and_model_labels_in_the_strategy():
    pool = SPACE.sample_many(12, rng=0, unique=True)
    mine = np.arange(len(pool), dtype=float)
    s = NASRankStrategy(SPACE, seed=0, candidates=pool, predictor=TINY, batch_size=2,
                        weak=WeakLabels(given={"mine": mine}, model_fn=_model, input_shape=(4,), proxies=("params",)))
    assert sorted(s._pretrained.weak_names) == ["mine", "params"]
    plain = NASRankStrategy(SPACE, seed=0, candidates=pool, predictor=TINY, batch_size=2, weak={"mine": mine})
    assert plain._pretrained.weak_names == ["mine"]  # a dict is WeakLabels(given=dict)


def test_weak_labels_check_their_fields():
    with pytest.raises(ValueError, match="pass model_fn too"):
        WeakLabels(input_shape=(4,))
    with pytest.raises(TypeError, match="supernet must be a callable"):
        WeakLabels(supernet=SPACE)
    with pytest.raises(TypeError, match="not another WeakLabels"):
        WeakLabels(given=WeakLabels())
    w = WeakLabels(model_fn=_model, input_shape=(4,))
    assert WeakLabels.of(w) is w and WeakLabels.of({"a": [1.0]}).given == {"a": [1.0]} and w.computed


def test_optuna_sampler_takes_a_strategy_without_its_space_and_weak_labels_once():
    optuna = pytest.importorskip("optuna")
    from ray_nasrank.integrations.optuna import NASRankSampler

    with pytest.raises(TypeError, match="positional"):
        NASRankSampler(SPACE, "random")
    strategy = make_strategy("random", SPACE, seed=0)
    sampler = NASRankSampler(strategy=strategy)  # the strategy's own space
    assert sampler.space == SPACE
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(lambda t: float(t.suggest_categorical("width", [4, 8, 16, 32])
                                   + (t.suggest_categorical("op", ["a", "b", "c"]) == "a")), n_trials=3)
    assert len(strategy.history) == 3
    with pytest.raises(ValueError, match="has its weak labels already"):
        NASRankSampler(strategy=strategy, weak=WeakLabels(model_fn=_model, input_shape=(4,)))
    with pytest.raises(ValueError, match="give them once"):
        NASRankSampler(SPACE, weak={"a": np.zeros(3)}, strategy_kwargs={"weak": {"b": np.zeros(3)}})
    with pytest.raises(ValueError, match="takes weak labels"):
        NASRankSampler(SPACE, strategy="random", weak={"a": np.zeros(3)})
    # labels in strategy_kwargs and a model family in weak= are joined
    pool = SPACE.sample_many(12, rng=0, unique=True)
    joined = NASRankSampler(SPACE, seed=0, weak=WeakLabels(model_fn=_model, input_shape=(4,), proxies=("params",)),
                            strategy_kwargs={"candidates": pool, "weak": {"mine": np.arange(12.0)}, "predictor": TINY})
    study = optuna.create_study(direction="maximize", sampler=joined)
    study.optimize(lambda t: float(t.suggest_categorical("width", [4, 8, 16, 32])
                                   + (t.suggest_categorical("op", ["a", "b", "c"]) == "a")), n_trials=2)
    assert sorted(joined.strategy._pretrained.weak_names) == ["mine", "params"]


def test_tune_searcher_is_keyword_only_and_takes_weak_labels_once():
    pytest.importorskip("ray")
    from ray_nasrank.integrations.tune import NASRankSearcher

    with pytest.raises(TypeError, match="positional"):
        NASRankSearcher(SPACE, "acc")
    with pytest.raises(TypeError, match="must be a WeakLabels"):
        NASRankSearcher(SPACE, metric="acc", weak={"a": np.zeros(3)})
    with pytest.raises(ValueError, match="give your own weak labels once"):
        NASRankSearcher(SPACE, metric="acc", weak=WeakLabels(given={"a": np.zeros(3)}), weak_source={"b": np.zeros(3)})
    s = NASRankSearcher(SPACE, metric="acc", mode="max", weak=WeakLabels(given={"a": np.zeros(3)}, model_fn=_model,
                                                                         input_shape=(4,)))
    assert set(s._weak_source) == {"a"}  # the given labels are the weak_source
    assert s._model_weak.given is None and s._model_weak.model_fn is _model
