"""Strategies, the Tune searcher and the Optuna sampler take weak=WeakLabels(model_fn=..., supernet=...)
and compute the weak labels of the user's own model family themselves."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ray_nasrank.nn import ChoiceSupernet, OpChoice, SlimBatchNorm2d, SlimConv2d, SlimLinear, WidthChoice
from ray_nasrank.predictor import FineTuneConfig, PredictorConfig, PretrainConfig
from ray_nasrank.search import NASRankStrategy, WeakLabels, model_weak

CFG = PredictorConfig(ensemble=1, pretrain=PretrainConfig(epochs=2), finetune=FineTuneConfig(epochs=5))


def family() -> ChoiceSupernet:
    torch.manual_seed(0)
    w1, w2 = WidthChoice("w1", [4, 8, 16]), WidthChoice("w2", [8, 16])
    return ChoiceSupernet(nn.Sequential(
        SlimConv2d(1, w1, 3, padding=1), SlimBatchNorm2d(w1), nn.ReLU(),
        OpChoice({"conv": SlimConv2d(w1, w1, 3, padding=1), "pool": nn.AvgPool2d(3, 1, 1),
                  "skip": nn.Identity()}, label="op"),
        SlimConv2d(w1, w2, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), SlimLinear(w2, 10)))


def test_model_weak_joins_proxies_supernet_and_own_labels():
    sn = family()
    archs = list(sn.space.enumerate())
    calls = []

    def supernet(configs):
        calls.append(len(configs))
        return {"supernet_acc": np.array([float(c["w1"]) for c in configs])}

    fn = model_weak(sn.space, {"mine": np.arange(len(archs), dtype=float)}, model_fn=sn.model_fn(reset=True),
                    input_shape=(1, 8, 8), proxies=("params", "naswot"), supernet=supernet)
    got = fn(archs)
    assert sorted(got) == ["mine", "naswot", "params", "supernet_acc"]
    want = [sum(p.numel() for p in sn.extract(sn.space.to_config(a)).parameters()) / 1e6 for a in archs]
    np.testing.assert_allclose(got["params"], want)
    assert calls == [len(archs)] and fn.proxies.num_built == len(archs)
    assert model_weak(sn.space, None) is None
    with pytest.raises(ValueError, match="pass model_fn too"):
        model_weak(sn.space, None, input_shape=(1, 8, 8))
    with pytest.raises(TypeError, match="SupernetWeakLabels"):
        model_weak(sn.space, None, supernet=sn.space)


def test_nasrank_strategy_pretrains_on_the_models_weak_labels():
    sn = family()
    s = NASRankStrategy(sn.space, seed=0, weak=WeakLabels(model_fn=sn.model_fn(reset=True), input_shape=(1, 8, 8)),
                        predictor=CFG, batch_size=3)
    assert s._pretrained.weak_names == ["params", "snip"]
    # a client's ask/tell loop over configs of the family
    for _ in range(3):
        for arch in s.ask(3):
            config = sn.space.to_config(arch)
            s.tell(arch, float(config["w1"] + config["w2"]))
    assert len(s.observations()[0]) == 9
    plain = NASRankStrategy(sn.space, seed=0, predictor=CFG, batch_size=3)
    assert plain._pretrained.weak_names == []


def test_a_failing_model_is_nan_not_fatal():
    sn = family()

    def fn(config):
        if config["op"] == "skip" and config["w1"] == 4:
            raise RuntimeError("not built")
        return sn.extract(config, reset=True)

    s = NASRankStrategy(sn.space, seed=0, weak=WeakLabels(model_fn=fn, input_shape=(1, 8, 8), proxies=("params",)),
                        predictor=CFG, batch_size=2)
    assert s._pretrained.weak_names == ["params"] and len(s.ask(2)) == 2


def test_a_proxy_no_model_can_give_is_left_out_with_a_warning(caplog):
    """SNIP (a default label) needs a classifier's cross-entropy: a one-output regressor gets no
    SNIP value at all, so the family pretrains on params alone and a warning says why."""
    from ray_nasrank.spaces import CategoricalSpace

    space = CategoricalSpace({"width": [4, 8, 16, 32]})

    def regressor(config):
        return nn.Sequential(nn.Flatten(), nn.Linear(16, config["width"]), nn.ReLU(), nn.Linear(config["width"], 1))

    with caplog.at_level("WARNING"):
        s = NASRankStrategy(space, seed=0, weak=WeakLabels(model_fn=regressor, input_shape=(1, 4, 4)), predictor=CFG, batch_size=2)
    assert s._pretrained.weak_names == ["params"]
    assert "['snip'] failed for every config" in caplog.text
    assert len(s.ask(2)) == 2


def test_optuna_sampler_with_model_fn():
    optuna = pytest.importorskip("optuna")
    from ray_nasrank.integrations.optuna import NASRankSampler

    sn = family()
    sampler = NASRankSampler(sn.space, strategy="nasrank", seed=0,
                             weak=WeakLabels(model_fn=sn.model_fn(reset=True), input_shape=(1, 8, 8)),
                             strategy_kwargs={"predictor": CFG, "batch_size": 2})
    study = optuna.create_study(direction="maximize", sampler=sampler)

    def objective(trial):
        config = {"w1": trial.suggest_categorical("w1", [4, 8, 16]),
                  "op": trial.suggest_categorical("op", ["conv", "pool", "skip"]),
                  "w2": trial.suggest_categorical("w2", [8, 16]),
                  "lr": trial.suggest_float("lr", 1e-3, 1e-1, log=True)}
        return config["w1"] / 16 + config["w2"] / 16

    study.optimize(objective, n_trials=4)
    assert sampler.strategy._pretrained.weak_names == ["params", "snip"]
    assert len({tuple(t.params[k] for k in ("w1", "op", "w2")) for t in study.trials}) == 4
    with pytest.raises(ValueError, match="feeds a strategy that takes weak labels"):
        NASRankSampler(sn.space, strategy="random", weak=WeakLabels(model_fn=sn.model_fn(), input_shape=(1, 8, 8)))


@pytest.mark.ray
def test_tune_searcher_with_model_fn_over_a_choice_supernet(ray_session, tmp_path):
    pytest.importorskip("ray")
    from ray import tune

    from ray_nasrank.integrations.tune import NASRankSearcher

    sn = family()
    seen = []

    def build(config):  # the searcher hands the whole trial config, constants included
        seen.append(config["epochs"])
        return sn.extract(config, reset=True)

    def trainable(config):
        return {"acc": config["w1"] + config["w2"] + (config["op"] == "conv")}

    searcher = NASRankSearcher(metric="acc", mode="max", seed=0, weak=WeakLabels(model_fn=build, input_shape=(1, 8, 8)),
                               strategy_kwargs={"predictor": CFG, "batch_size": 2})
    tuner = tune.Tuner(trainable, param_space=sn.param_space({"epochs": 3}),
                       tune_config=tune.TuneConfig(search_alg=searcher, num_samples=4, max_concurrent_trials=2),
                       run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0))
    results = tuner.fit()
    assert len(results) == 4 and not results.errors
    assert searcher._strategy._pretrained.weak_names == ["params", "snip"]
    assert seen and set(seen) == {3}
    with pytest.raises(ValueError, match="feeds a named strategy that takes weak labels"):
        NASRankSearcher(strategy="random", weak=WeakLabels(model_fn=build, input_shape=(1, 8, 8)))
