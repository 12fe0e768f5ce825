"""SupernetActor: named get-or-create, resource check, training, weight sharing, weak-label fallback."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

ray = pytest.importorskip("ray")

from ray_nasrank.integrations.tune import (  # noqa: E402
    NASRankSearcher,
    check_actor_resources,
    get_or_create_supernet_actor,
)
from ray_nasrank.integrations.tune._weak import ActorWeakFn, proxy_weak_fn, resolve_weak_source  # noqa: E402
from ray_nasrank.spaces import NB201Space  # noqa: E402

pytestmark = pytest.mark.ray
SPACE = NB201Space()
ARCHS = SPACE.sample_many(40, rng=0, unique=True)
TINY = {"channels": 4, "cells_per_stage": 1}


def _labels() -> pd.DataFrame:
    return pd.DataFrame({"arch": [SPACE.to_string(a) for a in ARCHS],
                         "weak_acc": [float(a.count("nor_conv_3x3")) for a in ARCHS]})


def test_named_actor_is_created_once_and_serves_labels(ray_session):
    a = get_or_create_supernet_actor("t-labels", "t-ns", labels=_labels(), trial_cpus=1)
    b = get_or_create_supernet_actor("t-labels", "t-ns", labels=_labels(), trial_cpus=1)
    assert a._actor_id == b._actor_id
    assert ray.get(a.ready.remote()) is True
    got = ray.get(a.weak_labels.remote(ARCHS[:5]))
    np.testing.assert_array_equal(got, [a_.count("nor_conv_3x3") for a_ in ARCHS[:5]])
    with pytest.raises(ray.exceptions.RayTaskError, match="no weak label"):
        ray.get(a.weak_labels.remote([next(x for x in SPACE.enumerate() if x not in ARCHS)]))
    ray.kill(a)


def test_resource_check_refuses_an_actor_that_would_starve_trials(ray_session):
    total = ray.cluster_resources()["CPU"]
    with pytest.raises(RuntimeError, match="hang silently"):
        check_actor_resources(num_cpus=total, trial_cpus=1)
    with pytest.raises(RuntimeError, match="not enough GPUs"):
        check_actor_resources(num_cpus=0, num_gpus=0.5, trial_gpus=1)
    with pytest.raises(RuntimeError, match="hang silently"):
        get_or_create_supernet_actor("t-greedy", "t-ns", num_cpus=total, trial_cpus=1, labels=_labels())
    check_actor_resources(num_cpus=0.25, trial_cpus=1)  # the default sizing fits


def test_trained_supernet_weights_are_shared_through_the_object_store(ray_session):
    trainer = get_or_create_supernet_actor(
        "t-train", "t-ns", train=True, supernet_config=TINY, dataset="digits",
        train_config={"epochs": 1, "batch_size": 32, "limit_train": 96},
        eval_config={"batch_size": 32, "calib_batches": 1, "eval_batches": 1}, trial_cpus=1)
    assert ray.get(trainer.wait.remote(120)) is True
    info = ray.get(trainer.info.remote())
    assert info["source"] == "supernet" and info["train_seconds"] > 0
    labels = ray.get(trainer.weak_labels.remote(ARCHS[:6]))
    assert labels.shape == (6,) and np.all((labels >= 0) & (labels <= 100))
    ref = ray.put(ray.get(trainer.state_dict.remote()))
    loader = get_or_create_supernet_actor(
        "t-load", "t-ns", weights=ref, supernet_config=TINY, dataset="digits",
        eval_config={"batch_size": 32, "calib_batches": 1, "eval_batches": 1}, trial_cpus=1)
    np.testing.assert_allclose(ray.get(loader.weak_labels.remote(ARCHS[:6])), labels)
    for h in (trainer, loader):
        ray.kill(h)


def test_searcher_uses_the_fallback_until_the_actor_is_ready(ray_session):
    slow = get_or_create_supernet_actor(
        "t-slow", "t-ns", train=True, supernet_config=TINY, dataset="digits",
        train_config={"epochs": 3, "batch_size": 32, "limit_train": 256}, trial_cpus=1)

    def params_like(archs):
        return {"convs": [a.count("nor_conv_3x3") + a.count("nor_conv_1x1") for a in archs]}

    weak = resolve_weak_source(slow, SPACE, fallback=params_like)
    assert isinstance(weak, ActorWeakFn)
    out = weak(ARCHS[:4])
    assert weak.used == "fallback" and list(out) == ["convs"]
    ready_actor = get_or_create_supernet_actor("t-ready", "t-ns", labels=_labels(), trial_cpus=1)
    weak_ready = resolve_weak_source(ready_actor, SPACE, fallback=params_like)
    assert list(weak_ready(ARCHS[:4])) == ["supernet"] and weak_ready.used == "actor"

    # end to end: a nasrank searcher pretrains on the actor's labels, off Tune's loop
    from ray_nasrank.predictor import FineTuneConfig, PredictorConfig, PretrainConfig

    searcher = NASRankSearcher(
        SPACE, metric="acc", mode="max", strategy="nasrank", weak_source=ready_actor, seed=0,
        strategy_kwargs={"candidates": ARCHS, "batch_size": 4,
                         "predictor": PredictorConfig(ensemble=1, pretrain=PretrainConfig(epochs=2), finetune=FineTuneConfig(epochs=5))})
    searcher.set_search_properties(None, None, SPACE.to_tune(), num_samples=8)
    searcher.wait_until_ready(timeout_s=120)
    cfg = searcher.suggest("t0")
    assert SPACE.from_config(cfg) in ARCHS and searcher.build_s > 0
    with pytest.raises(TypeError, match="weak_source must be"):
        resolve_weak_source(42, SPACE)
    with pytest.raises(ValueError, match="zero-cost proxies need a model.*pass model_fn="):
        from ray_nasrank.spaces import CategoricalSpace

        proxy_weak_fn(CategoricalSpace({"k": [1, 2]}))
    for h in (slow, ready_actor):
        ray.kill(h)


def test_params_proxy_fallback_builds_one_network_per_op_count_vector():
    archs = SPACE.sample_many(12, rng=4, unique=True)
    fast = proxy_weak_fn(SPACE, ("params",), channels=4, cells_per_stage=1)(archs)["zc_params"]
    from ray_nasrank.proxies import compute_proxies_many

    slow = compute_proxies_many(archs, ("params",), progress=False, channels=4, cells_per_stage=1)["params"]
    np.testing.assert_allclose(fast, slow.to_numpy(dtype=float))


def test_actor_holds_a_user_supernet(ray_session):
    from torch import nn

    from ray_nasrank.nn import ChoiceSupernet, OpChoice, SlimBatchNorm2d, SlimConv2d, SlimLinear, WidthChoice

    w = WidthChoice("width", [4, 8])
    sn = ChoiceSupernet(nn.Sequential(
        SlimConv2d(1, w, 3, padding=1), SlimBatchNorm2d(w), nn.ReLU(),
        OpChoice({"conv": SlimConv2d(w, w, 3, padding=1), "pool": nn.AvgPool2d(3, 1, 1)}, label="op"),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), SlimLinear(w, 10)))
    actor = get_or_create_supernet_actor(
        "t-user", "t-ns", train=True, supernet=sn, dataset="digits",
        train_config={"epochs": 1, "batch_size": 32, "limit_train": 128},
        eval_config={"batch_size": 32, "calib_batches": 1, "eval_batches": 1}, trial_cpus=1)
    assert ray.get(actor.wait.remote(120))
    configs = [{"width": 4, "op": "conv"}, {"width": 8, "op": "pool"}]
    got = ray.get(actor.weak_labels.remote(configs))
    assert got.shape == (2,) and np.all((got >= 0) & (got <= 100))
    # the same weights loaded elsewhere give the same labels (archs as tuples of its space)
    ref = ray.put(ray.get(actor.state_dict.remote()))
    loader = get_or_create_supernet_actor("t-user-load", "t-ns", weights=ref, supernet=sn, dataset="digits",
                                          eval_config={"batch_size": 32, "calib_batches": 1, "eval_batches": 1},
                                          trial_cpus=1)
    np.testing.assert_allclose(ray.get(loader.weak_labels.remote([(4, "conv"), (8, "pool")])), got)
    with pytest.raises(ray.exceptions.RayActorError, match="supernet_config shapes the NB201 supernet"):
        ray.get(get_or_create_supernet_actor("t-user-bad", "t-ns", supernet=sn, supernet_config=TINY,
                                             trial_cpus=1).ready.remote())
    for a in (actor, loader):
        ray.kill(a)
