"""NASRankStrategy: predictor-driven batches, exploration, async refit, exact resume."""

from __future__ import annotations

import numpy as np
import pytest

from ray_nasrank.predictor import FineTuneConfig, PredictorConfig, PretrainConfig, RankPredictor
from ray_nasrank.search import NASRankStrategy, Strategy, make_strategy
from ray_nasrank.spaces import NB201Space

TINY = PredictorConfig(ensemble=2, hidden=16, pretrain=PretrainConfig(epochs=2), finetune=FineTuneConfig(epochs=15, patience=5, weak_reg_batch=64))


def _value(arch) -> float:
    return float(sum({"nor_conv_3x3": 3, "nor_conv_1x1": 2, "skip_connect": 1}.get(op, 0) for op in arch))


@pytest.fixture(scope="module")
def space():
    return NB201Space()


@pytest.fixture(scope="module")
def pool(space):
    return space.sample_many(400, rng=1, unique=True)


@pytest.fixture(scope="module")
def weak(pool):
    noise = np.random.default_rng(0).normal(0, 1.0, len(pool))
    return {"proxy": np.array([_value(a) for a in pool]) + noise}


@pytest.fixture(scope="module")
def pretrained(space, pool, weak):
    return RankPredictor(space, TINY).pretrain(pool, weak)


def _loop(s, budget, batch=1, fail=lambda i: False):
    asked = []
    while len(asked) < budget:
        got = s.ask(min(batch, budget - len(asked)))
        if not got:
            break
        for a in got:
            s.tell(a, None if fail(len(asked)) else _value(a))
            asked.append(a)
    return asked


def test_first_batch_exploits_the_pretrained_ranking(space, pool, weak, pretrained):
    s = NASRankStrategy(space, seed=0, candidates=pool, predictor=pretrained, batch_size=8, explore=0.0,
                         first_explore=0.0)
    first = s.ask(8)
    top = set(pretrained.top_k(pool, 8))
    assert set(first) & top  # greedy on the pretrained scores (iso twins may swap in)
    mean_first = np.mean([_value(a) for a in first])
    assert mean_first > np.mean([_value(a) for a in pool]) + 2
    # the shared pretrained predictor is cloned, never modified
    assert pretrained.fitted is False


def test_no_repeats_failures_and_refits(space, pool, pretrained):
    s = NASRankStrategy(space, seed=1, candidates=pool, predictor=pretrained, batch_size=5, explore=0.4)
    asked = _loop(s, 30, batch=2, fail=lambda i: i % 7 == 3)
    assert len({space.iso_key(a) for a in asked}) == 30
    assert set(asked) <= set(pool)
    assert sum(h["status"] == "failed" for h in s.history) == 4  # i = 3, 10, 17, 24
    assert s._labels_at_fit >= 15  # re-fitted on the labels, failures excluded
    assert s._model is not s._pretrained and s._model.fitted


def test_pretrains_from_config_and_runs_without_weak(space, pool, weak):
    s = make_strategy("nasrank", space, seed=0, candidates=pool, weak=weak, predictor=TINY, batch_size=4)
    # on NB201 the cells' params, FLOPs and SynFlow join the given weak labels as pretraining targets
    assert s._pretrained.weak_names == ["proxy", "params", "flops", "synflow"]
    assert len(_loop(s, 8)) == 8
    # no weak labels on NB201: the intrinsic ones alone are the pretraining targets
    s1 = NASRankStrategy(space, seed=0, candidates=pool, predictor=TINY, batch_size=4)
    assert s1._pretrained.weak_names == ["params", "flops", "synflow"] and s1._model is s1._pretrained
    assert len(_loop(s1, 8)) == 8
    # nothing at all to pretrain on: the first round explores, later rounds use the fitted predictor
    s2 = NASRankStrategy(space, seed=0, candidates=pool, predictor=TINY, batch_size=4, opdist_prior=False,
                         intrinsic_weak=())
    assert s2._model is None
    _loop(s2, 12)
    assert s2._model is not None and s2._model.fitted


def test_async_refit_runs_in_background(space, pool, pretrained):
    s = NASRankStrategy(space, seed=2, candidates=pool, predictor=pretrained, batch_size=4, async_refit=True)
    batch = s.ask(4)
    for a in batch:
        s.tell(a, _value(a))
    # the 4th label made a refit due: it runs in a thread while the caller goes on
    assert s._thread is not None
    s._thread.join()
    assert s.ready
    more = _loop(s, 12)
    assert s._labels_at_fit >= 12
    assert len({space.iso_key(a) for a in batch + more}) == 16


def test_resume_is_identical_including_the_predictor(space, pool, pretrained, tmp_path):
    ref = NASRankStrategy(space, seed=3, candidates=pool, predictor=pretrained, batch_size=4)
    _loop(ref, 10)
    inflight = ref.ask(1)
    ref.save(tmp_path / "n.pkl")
    for a in inflight:
        ref.tell(a, _value(a))
    later = _loop(ref, 9)
    resumed = Strategy.from_file(tmp_path / "n.pkl")
    assert resumed.pending == set(inflight)
    assert isinstance(resumed._pretrained, RankPredictor)
    for a in inflight:
        resumed.tell(a, _value(a))
    assert _loop(resumed, 9) == later


def test_bad_arguments(space, pool, weak):
    with pytest.raises(ValueError, match="explore"):
        NASRankStrategy(space, candidates=pool, predictor=TINY, explore=1.5)
    with pytest.raises(TypeError, match="predictor"):
        NASRankStrategy(space, candidates=pool, predictor="mlp")
    with pytest.raises(ValueError, match="aligned"):
        NASRankStrategy(space, candidates=pool, predictor=TINY, weak={"w": np.zeros(3)})
    with pytest.raises(ValueError, match="batch_size"):
        NASRankStrategy(space, candidates=pool, predictor=TINY, batch_size=0)


def test_default_first_batch_explores_with_the_weak_opdist_prior(space, pool, weak, pretrained):
    # weak labels are least reliable at the very top, so by default the first batch is drawn by
    # op-distribution Thompson sampling whose prior is the weak labels' per-vector mean
    s = NASRankStrategy(space, seed=0, candidates=pool, predictor=pretrained, weak=weak, batch_size=8)
    first = s.ask(8)
    assert s._opdist is not None and s._opdist.prior_mean.max() > 0
    assert np.mean([_value(a) for a in first]) > np.mean([_value(a) for a in pool])
    top = set(pretrained.top_k(pool, 8))
    assert len(set(first) & top) < 8
