"""RankPredictor: learning a synthetic ranking, determinism, persistence, input validation."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from ray_nasrank.metrics import kendall_tau, ndcg_at_k
from ray_nasrank.predictor import FineTuneConfig, PredictorConfig, PretrainConfig, RankPredictor
from ray_nasrank.spaces import CategoricalSpace, NB201Space

torch.set_num_threads(1)

SPACE = NB201Space()
FAST = PredictorConfig(ensemble=2, hidden=64, pretrain=PretrainConfig(epochs=8),
                       finetune=FineTuneConfig(epochs=120, patience=30))


def synthetic_target(archs) -> np.ndarray:
    """A smooth function of the ops with a wiring term: convs help, 'none' hurts, conv on edge 3 (0->3) helps more."""
    w = {"none": -1.0, "skip_connect": 0.2, "nor_conv_1x1": 0.8, "nor_conv_3x3": 1.5, "avg_pool_3x3": 0.1}
    return np.array([sum(w[o] for o in a) + (1.0 if a[3] == "nor_conv_3x3" else 0.0) for a in archs])


@pytest.fixture(scope="module")
def data():
    archs = SPACE.sample_many(800, rng=0, unique=True)
    y = synthetic_target(archs)
    rng = np.random.default_rng(1)
    weak = y + rng.normal(0, 1.5, size=y.size)  # a noisy but informative weak label
    flops = np.array([a.count("nor_conv_3x3") * 9 + a.count("nor_conv_1x1") for a in archs], dtype=float)
    return archs, y, weak, flops


@pytest.fixture(scope="module")
def pretrained(data):
    archs, _, weak, flops = data
    flops = flops.copy()
    flops[::7] = np.nan  # missing weak values are allowed and masked
    return RankPredictor(SPACE, FAST.updated({"seed": 0})).pretrain(archs, {"weak": weak, "flops": flops})


def test_pretrained_predictor_learns_synthetic_ranking(data, pretrained):
    archs, y, weak, _ = data
    # after pretraining alone the main head follows the weak labels
    assert kendall_tau(y, pretrained.score(archs)) > 0.4
    labelled = list(range(0, 800, 20))  # 40 labels
    p = pretrained.clone().fit([archs[i] for i in labelled], y[labelled])
    s = p.score(archs)
    assert kendall_tau(y, s) > 0.7
    assert kendall_tau(y, s) > kendall_tau(y, weak)
    assert ndcg_at_k(y, s, 20) > 0.6


def test_fit_without_pretraining_learns_and_gcn_learns(data):
    archs, y, _, _ = data
    idx = list(range(0, 800, 8))
    for encoder in ("mlp", "gcn"):
        cfg = FAST.updated({"encoder": encoder, "seed": 3, "finetune": {"epochs": 80}})
        p = RankPredictor(SPACE, cfg).fit([archs[i] for i in idx], y[idx])
        assert kendall_tau(y, p.score(archs)) > 0.6, encoder


@pytest.mark.parametrize("loss", ["lambdarank", "ranknet", "listmle", "listnet", "margin", "mse"])
def test_every_loss_fits(data, loss):
    archs, y, _, _ = data
    idx = list(range(0, 800, 10))
    p = RankPredictor(SPACE, loss=loss, aux_loss=None, ensemble=1, hidden=32, fit_epochs=80, seed=0)
    p.fit([archs[i] for i in idx], y[idx])
    assert kendall_tau(y, p.score(archs)) > 0.5


def test_mode_min_on_categorical_space():
    space = CategoricalSpace({"k": [1, 3, 5, 7], "w": [8, 16, 32], "d": [1, 2, 3]})
    archs = list(space.enumerate())
    loss_value = np.array([10.0 - a[0] - a[1] / 8 + 1.0 * a[2] for a in archs])  # lower is better
    p = RankPredictor(space, ensemble=1, hidden=32, fit_epochs=150, seed=0).fit(archs[::2], loss_value[::2], mode="min")
    assert kendall_tau(loss_value, p.score(archs), mode="max") < -0.7  # high score = low loss
    assert archs[int(np.argmin(loss_value))] in p.top_k(archs, 3)


def test_deterministic_under_seed(data):
    archs, y, weak, _ = data
    sub = archs[:300]
    cfg = FAST.updated({"seed": 5, "pretrain": {"epochs": 3}, "finetune": {"epochs": 40}})
    a = RankPredictor(SPACE, cfg).pretrain(sub, weak[:300]).fit(sub[:30], y[:30]).score(sub)
    b = RankPredictor(SPACE, cfg).pretrain(sub, weak[:300]).fit(sub[:30], y[:30]).score(sub)
    np.testing.assert_array_equal(a, b)
    other = RankPredictor(SPACE, cfg.updated({"seed": 6})).pretrain(sub, weak[:300]).fit(sub[:30], y[:30])
    assert not np.array_equal(a, other.score(sub))


def test_score_std_top_k_and_clone(data, pretrained):
    archs, y, _, _ = data
    p = pretrained.clone().fit(archs[:40], y[:40])
    mean, std = p.score_std(archs)
    np.testing.assert_allclose(mean, p.score(archs))
    assert std.shape == mean.shape and np.all(std >= 0) and std.max() > 0
    top = p.top_k(archs, 5)
    order = np.argsort(-p.score(archs), kind="stable")
    assert top == [archs[i] for i in order[:5]]
    top_ex = p.top_k(archs, 5, exclude=top[:2])
    assert top_ex[:3] == top[2:] and not set(top_ex) & set(top[:2])
    assert p.top_k([SPACE.to_string(a) for a in archs[:3]], 10) and len(p.top_k(archs[:3], 10)) == 3
    # fitting a clone leaves the original untouched
    before = pretrained.score(archs[:50])
    pretrained.clone().fit(archs[100:140], -y[100:140])
    np.testing.assert_array_equal(before, pretrained.score(archs[:50]))


def test_save_load_and_pickle_round_trip(tmp_path, data, pretrained):
    archs, y, _, _ = data
    p = pretrained.clone().fit(archs[:40], y[:40])
    path = p.save(tmp_path / "pred.pt")
    q = RankPredictor.load(path)
    np.testing.assert_array_equal(p.score(archs), q.score(archs))
    assert q.fitted and q.weak_names == ["weak", "flops"] and q.config == p.config
    # the loaded one keeps its pretraining: a refit gives the same as a refit of the original
    np.testing.assert_array_equal(p.clone().fit(archs[:30], y[:30]).score(archs[:20]),
                                  q.clone().fit(archs[:30], y[:30]).score(archs[:20]))
    r = pickle.loads(pickle.dumps(p))
    np.testing.assert_array_equal(p.score(archs[:100]), r.score(archs[:100]))
    torch.save({"x": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a saved RankPredictor"):
        RankPredictor.load(tmp_path / "other.pt")


def test_input_validation(data, pretrained):
    archs, y, weak, _ = data
    p = RankPredictor(SPACE, FAST)
    with pytest.raises(RuntimeError, match="untrained"):
        p.score(archs[:3])
    with pytest.raises(ValueError, match="10 architectures but 9 labels"):
        p.fit(archs[:10], y[:9])
    bad = y[:10].copy()
    bad[4] = np.nan
    with pytest.raises(ValueError, match="NaN/inf, first at position 4"):
        p.fit(archs[:10], bad)
    with pytest.raises(ValueError, match="needs at least 2 labels, got 1"):
        p.fit(archs[:1], y[:1])
    with pytest.raises(ValueError, match="all 5 labels equal"):
        p.fit(archs[:5], np.ones(5))
    with pytest.raises(ValueError, match="mode must be"):
        p.fit(archs[:5], y[:5], mode="best")
    with pytest.raises(ValueError, match="'weak' has 10 values for 20 architectures"):
        p.pretrain(archs[:20], {"weak": weak[:10]})
    with pytest.raises(ValueError, match="missing \\(NaN\\) for every"):
        p.pretrain(archs[:20], np.full(20, np.nan))
    with pytest.raises(ValueError, match="unknown NB201 op 'conv9'"):
        pretrained.score([("conv9",) * 6])
    with pytest.raises(ValueError, match="encoder must be"):
        PredictorConfig(encoder="transformer")
    with pytest.raises(ValueError, match="unknown loss"):
        PredictorConfig(finetune=FineTuneConfig(loss="hinge"))
    with pytest.raises(ValueError, match="unknown PredictorConfig keys"):
        RankPredictor(SPACE, epochs=3)
    with pytest.raises(ValueError, match="unknown encoding"):
        RankPredictor(SPACE, features="onehot+fancy")
    with pytest.raises(ValueError, match="graph encoders need a space whose archs are graphs"):
        RankPredictor(CategoricalSpace({"a": [1, 2]}), encoder="gcn")
    with pytest.raises(TypeError, match="SearchSpace"):
        RankPredictor("nb201")  # type: ignore[arg-type]
