"""Intrinsic weak labels (params, FLOPs, SynFlow) computed by the package, and NASRank pretraining on them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ray_nasrank.predictor import FineTuneConfig, PredictorConfig, PretrainConfig
from ray_nasrank.proxies import compute_proxies_many
from ray_nasrank.search import INTRINSIC, NASRankStrategy, default_intrinsic, intrinsic_weak, pretraining_labels
from ray_nasrank.spaces import CategoricalSpace, NB201Space

torch.set_num_threads(1)

SPACE = NB201Space()
SMALL_NET = dict(channels=4, cells_per_stage=1, input_shape=(3, 8, 8))
TINY = PredictorConfig(ensemble=1, hidden=32, pretrain=PretrainConfig(epochs=40, batch=64), finetune=FineTuneConfig(epochs=10, patience=5))


def test_intrinsic_labels_equal_the_direct_computation_of_every_arch():
    archs = SPACE.sample_many(12, rng=4, unique=True) + [("none",) * 6, ("nor_conv_3x3",) * 6]
    got = intrinsic_weak(SPACE, archs, **SMALL_NET)
    direct = compute_proxies_many(archs, ("params", "flops"), progress=False, **SMALL_NET)
    np.testing.assert_allclose(got["params"], direct["params"].to_numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got["flops"], direct["flops"].to_numpy(), rtol=1e-9, atol=1e-12)
    # strings and tuples give the same values; one name alone works
    strings = [SPACE.to_string(a) for a in archs]
    np.testing.assert_array_equal(intrinsic_weak(SPACE, strings, "params", **SMALL_NET)["params"], got["params"])
    # a cell with more convolutions has more parameters
    assert got["params"][-1] > got["params"][-2]


def test_shared_synflow_equals_synflow_of_the_extracted_network():
    from ray_nasrank.nn import NB201Supernet
    from ray_nasrank.proxies import compute_proxies, shared_synflow

    torch.manual_seed(3)
    sn = NB201Supernet(channels=4, cells_per_stage=1, in_channels=3)
    before = {k: v.clone() for k, v in sn.state_dict().items()}
    archs = SPACE.sample_many(6, rng=1, unique=True) + [("nor_conv_3x3",) * 6]
    got = shared_synflow(archs, supernet=sn, input_shape=(3, 8, 8))
    # each path scored alone is the proxy of the stand-alone network holding the shared weights
    direct = [compute_proxies(sn.extract(a), ("synflow",), input_shape=(3, 8, 8))["synflow"] for a in archs]
    np.testing.assert_allclose(got, direct, rtol=1e-9)
    assert all(torch.equal(before[k], v) for k, v in sn.state_dict().items())  # the caller's supernet is untouched
    with pytest.raises(TypeError, match="NB201Supernet"):
        shared_synflow(archs, supernet=torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="input_shape"):
        shared_synflow(archs, input_shape=(8, 8))


def test_intrinsic_synflow_is_per_isomorphism_class_and_nan_when_disconnected():
    conv = ("nor_conv_3x3",) * 6
    # node 3 fed by node 0 only through edge 3 (0->3); edges into the dead nodes 1, 2 do not matter
    iso_a = ("nor_conv_3x3", "none", "none", "skip_connect", "none", "none")
    iso_b = ("nor_conv_1x1", "avg_pool_3x3", "none", "skip_connect", "none", "none")
    assert SPACE.iso_key(iso_a) == SPACE.iso_key(iso_b)
    dead = ("nor_conv_3x3", "nor_conv_3x3", "nor_conv_3x3", "none", "none", "none")
    v = intrinsic_weak(SPACE, [conv, iso_a, iso_b, dead], "synflow", **SMALL_NET)["synflow"]
    assert v[1] == v[2] and np.isfinite(v[:3]).all() and np.isnan(v[3])
    assert v[0] > v[1]
    # the same cells again (now cached, and in another order) give the same values
    again = intrinsic_weak(SPACE, [dead, iso_b, conv], "synflow", **SMALL_NET)["synflow"]
    np.testing.assert_array_equal(again[1:], [v[2], v[0]])
    # unlike params and FLOPs, SynFlow tells apart cells with the same ops wired differently
    skip_03 = ("nor_conv_3x3", "nor_conv_3x3", "nor_conv_3x3", "skip_connect", "nor_conv_3x3", "nor_conv_3x3")
    skip_23 = ("nor_conv_3x3", "nor_conv_3x3", "nor_conv_3x3", "nor_conv_3x3", "nor_conv_3x3", "skip_connect")
    w = intrinsic_weak(SPACE, [skip_03, skip_23], **SMALL_NET)
    np.testing.assert_allclose(w["params"][0], w["params"][1], rtol=1e-12)
    np.testing.assert_allclose(w["flops"][0], w["flops"][1], rtol=1e-12)
    assert abs(w["synflow"][0] - w["synflow"][1]) > 1e-3


def test_intrinsic_labels_reject_bad_input():
    with pytest.raises(ValueError, match="computes no intrinsic weak labels.*model_fn="):
        intrinsic_weak(CategoricalSpace({"k": [3, 5]}), [(3,)])
    with pytest.raises(ValueError, match="subset of"):
        intrinsic_weak(SPACE, [("none",) * 6], ("latency",))
    with pytest.raises(ValueError, match="subset of"):
        intrinsic_weak(SPACE, [("none",) * 6], ())
    with pytest.raises(ValueError, match="NB201 op"):
        intrinsic_weak(SPACE, [("conv",) * 6], **SMALL_NET)
    assert default_intrinsic(SPACE) == INTRINSIC == ("params", "flops", "synflow")
    assert default_intrinsic(CategoricalSpace({"k": [3, 5]})) == ()


def test_pretraining_labels_add_intrinsic_columns_and_keep_the_callers():
    pool = SPACE.sample_many(20, rng=0, unique=True)
    mine = np.arange(20, dtype=float)
    cols = pretraining_labels(SPACE, pool, {"w": mine, "params": -mine}, INTRINSIC)
    assert list(cols) == ["w", "params", "flops", "synflow"]
    np.testing.assert_array_equal(cols["params"], -mine)  # the caller's column wins
    assert pretraining_labels(SPACE, pool, {"w": mine}, ()) .keys() == {"w"}
    assert pretraining_labels(SPACE, pool, None, ()) is None


def test_nasrank_pretrains_on_intrinsic_labels_by_default_and_can_switch_them_off():
    pool = SPACE.sample_many(200, rng=2, unique=True)
    weak = {"oneshot": np.random.default_rng(0).normal(size=200)}
    on = NASRankStrategy(SPACE, seed=0, candidates=pool, weak=weak, predictor=TINY, batch_size=4)
    off = NASRankStrategy(SPACE, seed=0, candidates=pool, weak=weak, predictor=TINY, batch_size=4,
                          intrinsic_weak=())
    assert on._pretrained.weak_names == ["oneshot", "params", "flops", "synflow"]
    assert off._pretrained.weak_names == ["oneshot"]
    # with random weak labels, the params/flops heads make the ranking follow the cells' size
    params = intrinsic_weak(SPACE, pool, "params")["params"]
    assert np.corrcoef(on._pretrained.score(pool), params)[0, 1] > np.corrcoef(off._pretrained.score(pool), params)[0, 1] + 0.2
    with pytest.raises(ValueError, match="subset of"):
        NASRankStrategy(SPACE, seed=0, candidates=pool, weak=weak, predictor=TINY, intrinsic_weak=("latency",))


def test_diverse_first_batch_takes_the_best_cell_of_each_op_count_vector():
    pool = SPACE.sample_many(300, rng=3, unique=True)
    weak = {"convs": np.array([a.count("nor_conv_3x3") for a in pool], dtype=float)}
    kw = dict(seed=0, candidates=pool, weak=weak, predictor=TINY, batch_size=8, first_explore=0.0, intrinsic_weak=())
    s = NASRankStrategy(SPACE, **kw)  # first_diverse is the default
    first = s.ask(8)
    # expected: walk the pretrained ranking, keep a cell only if its op counts are new
    score = s._pretrained.score(pool)
    expected, vectors = [], set()
    for i in np.argsort(-score, kind="stable"):
        v = tuple(sorted(pool[i]))
        if v not in vectors:
            vectors.add(v)
            expected.append(pool[i])
        if len(expected) == 8:
            break
    assert first == expected
    # without it the first batch is the plain top of the ranking (which repeats op counts here)
    plain = NASRankStrategy(SPACE, first_diverse=False, **kw).ask(8)
    assert plain == [pool[i] for i in np.argsort(-score, kind="stable")[:8]]
    assert len({tuple(sorted(a)) for a in plain}) < 8


def test_prior_intrinsic_shapes_the_op_distribution_prior():
    pool = SPACE.sample_many(200, rng=2, unique=True)
    weak = {"oneshot": np.random.default_rng(1).normal(size=200)}
    kw = dict(seed=0, candidates=pool, weak=weak, predictor=TINY, batch_size=4)
    with_prior = NASRankStrategy(SPACE, **kw)  # the default
    without = NASRankStrategy(SPACE, prior_intrinsic=False, **kw)
    # per-vector params (every cell of a vector has the same) against each vector's prior mean
    model = with_prior._opdist
    vid = model.vector_ids(pool)
    params = intrinsic_weak(SPACE, pool, "params")["params"]
    present = np.unique(vid)
    vec_params = np.array([params[vid == v][0] for v in present])
    r_with = np.corrcoef(model.prior_mean[present], vec_params)[0, 1]
    r_without = np.corrcoef(without._opdist.prior_mean[present], vec_params)[0, 1]
    assert r_with > 0.5 and r_with > r_without + 0.3
