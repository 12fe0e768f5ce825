"""Trust in the pretrained order: the fine-tuning decides, by cross-validation, how far to follow the weak labels."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from ray_nasrank.metrics import kendall_tau
from ray_nasrank.predictor import BlendConfig, FineTuneConfig, PredictorConfig, PretrainConfig, RankPredictor
from ray_nasrank.predictor.blend import (
    choose_weights,
    fold_ids,
    grid_step,
    prior_places_top,
    shortlist_cut,
    shrink,
    simplex_grid,
    top_weighted_tau,
    validation_score,
)
from ray_nasrank.predictor.boost import boost_score, fit_boost
from ray_nasrank.spaces import NB201Space

torch.set_num_threads(1)

SPACE = NB201Space()
FAST = PredictorConfig(ensemble=2, hidden=64, pretrain=PretrainConfig(epochs=8),
                       finetune=FineTuneConfig(epochs=120, patience=30))


def target(archs) -> np.ndarray:
    """A function of the ops and the wiring that 10 labels cannot pin down."""
    w = {"none": -1.0, "skip_connect": 0.2, "nor_conv_1x1": 0.8, "nor_conv_3x3": 1.5, "avg_pool_3x3": 0.1}
    return np.array([sum(w[o] * (1 + 0.3 * i) for i, o in enumerate(a)) for a in archs])


@pytest.fixture(scope="module")
def data():
    archs = SPACE.sample_many(800, rng=0, unique=True)
    y = target(archs)
    rng = np.random.default_rng(1)
    good = y + rng.normal(0, 0.3 * y.std(), size=y.size)  # close to the truth
    noise = rng.normal(size=y.size)  # tells nothing
    return archs, y, good, noise


def _labels(archs, y, n, seed):
    idx = np.sort(np.random.default_rng(seed).choice(len(archs), n, replace=False))
    return [archs[i] for i in idx], y[idx]


def test_informative_weak_label_is_kept_with_10_labels(data):
    archs, y, good, _ = data
    pre = RankPredictor(SPACE, FAST.updated({"seed": 0})).pretrain(archs, {"good": good})
    weak_tau = kendall_tau(y, good)
    la, ly = _labels(archs, y, 10, seed=3)
    trusted = pre.clone().fit(la, ly)
    off = pre.clone()
    off.config.blend.mode = "off"
    off = off.fit(la, ly)
    assert off.blend_weights is None
    w = trusted.blend_weights
    assert w is not None and abs(sum(w.values()) - 1) < 1e-9
    assert w["prior"] == max(w.values()), w
    tau = kendall_tau(y, trusted.score(archs))
    assert tau >= weak_tau - 0.05, (tau, weak_tau)
    assert tau > kendall_tau(y, off.score(archs)) + 0.02


def test_uninformative_weak_label_is_dropped(data):
    archs, y, _, noise = data
    pre = RankPredictor(SPACE, FAST.updated({"seed": 0})).pretrain(archs, {"noise": noise})
    la, ly = _labels(archs, y, 40, seed=4)
    q = pre.clone().fit(la, ly)
    w = q.blend_weights
    assert w["prior"] <= 0.2, w
    assert kendall_tau(y, q.score(archs)) > 0.5 > abs(kendall_tau(y, noise)) + 0.4


def test_blend_scores_unseen_archs_and_survives_pickle_and_save(tmp_path, data):
    archs, y, good, _ = data
    pre = RankPredictor(SPACE, FAST.updated({"seed": 0})).pretrain(archs[:600], {"good": good[:600]})
    q = pre.clone().fit(*_labels(archs[:600], y[:600], 20, seed=5))
    unseen = archs[600:]  # not in the pretraining set: prior and tree inputs come from the pretrained net
    s = q.score(unseen)
    assert np.isfinite(s).all() and kendall_tau(y[600:], s) > 0.3
    mean, std = q.score_std(unseen)
    np.testing.assert_allclose(mean, s)
    assert (std >= 0).all()
    np.testing.assert_allclose(q.score(archs[590:610], cache=False), q.score(archs[590:610]), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(pickle.loads(pickle.dumps(q)).score(unseen), s, rtol=1e-6, atol=1e-9)
    q.save(tmp_path / "p.pt")
    back = RankPredictor.load(tmp_path / "p.pt")
    assert back.blend_weights == q.blend_weights
    np.testing.assert_allclose(back.score(unseen), s, rtol=1e-6, atol=1e-9)


def test_shortlist_is_the_fine_tuned_networks_top_scaled_by_its_weight(data):
    archs, y, good, _ = data
    share = 0.2
    # prior_top above 1: the shortlist whatever the prior's top (that rule has its own test below)
    pre = RankPredictor(SPACE, FAST.updated({"seed": 0, "blend": {"shortlist": share, "prior_top": 2.0,
                                                                  "shortlist_from": "network", "shortlist_rows": 0}})
                        ).pretrain(archs, {"good": good})
    q = pre.clone().fit(*_labels(archs, y, 20, seed=6))
    assert q.blend.top_ranker() == "network"
    w = q.blend_weights["tuned"]
    assert 0.05 < w < 0.9, q.blend_weights  # neither extreme, so a fixed share would give another size
    s = q.score(archs)
    tuned = q.ensemble.member_scores(q.ensemble.rows(archs)).mean(axis=0)
    k = int((s > np.pi / 2).sum())  # shortlisted scores sit above the arctan of every other one
    # the pretraining archs (all 800) are the reference the share is measured on
    assert k >= 5 and abs(k - share * w * len(archs)) <= 1.5, (k, share * w * len(archs))
    top = np.argsort(-s)[:k]
    assert (np.diff(tuned[top]) <= 1e-9).all()  # in the tuned order
    assert set(top.tolist()) == set(np.argsort(-tuned)[:k].tolist())  # the tuned network's own top, whatever the blend says
    flat = pre.clone()
    flat.config.blend.shortlist = 0.0
    flat = flat.fit(*_labels(archs, y, 20, seed=6))
    assert flat.blend_weights == q.blend_weights
    assert not (np.diff(tuned[np.argsort(-flat.score(archs))[:k]]) <= 1e-9).all()  # the plain blend's order differs


def test_shortlist_of_the_learned_rankers_holds_at_least_its_rows_in_their_order(data):
    archs, y, good, _ = data
    # a share far below the floor: the floor decides the size; the network and the stacked trees order it
    pre = RankPredictor(SPACE, FAST.updated({"seed": 0, "blend": {"shortlist": 0.001, "shortlist_rows": 12,
                                                                  "prior_top": 2.0}})).pretrain(archs, {"good": good})
    q = pre.clone().fit(*_labels(archs, y, 30, seed=6))
    w = q.blend_weights
    assert w["tree"] > 0.02 and w["tuned"] > 0.02, w  # both learned rankers take part
    assert q.blend.top_ranker() == "learned"
    s = q.score(archs)
    k = int((s > np.pi / 2).sum())
    assert abs(k - 12) <= 1, k  # the floor, measured on the 800 pretraining archs
    ens, b = q.ensemble, q.blend
    rows = ens.rows(archs)
    tuned = (ens.member_scores(rows).mean(axis=0) - b.scale[0, 0]) / b.scale[0, 1]
    _, weak = ens.prior_inputs(rows)
    tree = (b.tree.predict(np.concatenate([ens.store.flat[rows], weak], axis=1)) - b.scale[2, 0]) / b.scale[2, 1]
    learned = (w["tuned"] * tuned + w["tree"] * tree) / (w["tuned"] + w["tree"])
    top = np.argsort(-s)[:k]
    assert set(top.tolist()) == set(np.argsort(-learned)[:k].tolist())
    assert (np.diff(learned[top]) <= 1e-9).all()
    # the network alone would have picked other candidates: the trees have a say in the top
    assert set(top.tolist()) != set(np.argsort(-tuned)[:k].tolist())


def test_a_prior_that_holds_at_its_top_places_it_and_one_blind_there_leaves_it_to_the_learned_rankers(data):
    archs, y, good, _ = data
    # as good as `good` below the median, noise above it: the order of the top is lost
    rng = np.random.default_rng(9)
    upper = y >= np.median(y)
    blind = np.where(upper, np.quantile(good, 0.75) + rng.normal(0, 0.3 * y.std(), y.size), good)
    assert kendall_tau(y[upper], blind[upper]) < 0.1 < 0.5 < kendall_tau(y[upper], good[upper])
    labels = _labels(archs, y, 12, seed=2)
    # 800 candidates: a shortlist of a few rows, below the default prior_top_rows (10): kept as it is
    small = RankPredictor(SPACE, FAST.updated({"seed": 0})).pretrain(archs, {"good": good}).fit(*labels)
    assert small.blend.top_ranker() != "blend"  # the learned rankers' shortlist
    for weak, prior_top in (({"good": good}, True), ({"blind": blind}, False)):
        pre = RankPredictor(SPACE, FAST.updated({"seed": 0, "blend": {"prior_top_rows": 0}})).pretrain(archs, weak)
        q = pre.clone().fit(*labels)
        assert (q.blend.top_ranker() == "blend") == prior_top, weak.keys()
        s = q.score(archs)
        assert ((s > np.pi / 2).sum() == 0) == prior_top  # no shortlisted score where the blend places the top
        if prior_top:  # from prior_top_labels (20) labels on the network's shortlist places the top again
            assert pre.clone().fit(*_labels(archs, y, 20, seed=2)).blend.top_ranker() != "blend"
    # the decision itself: the prior's top-weighted tau must pass the bar and the network's
    y = np.arange(10.0)
    top_swapped, bottom_swapped = y[[*range(8), 9, 8]], y[[1, 0, *range(2, 10)]]
    assert top_weighted_tau(y, top_swapped) < top_weighted_tau(y, bottom_swapped) < 1.0
    assert prior_places_top(y, y, top_swapped, least=0.6)
    assert not prior_places_top(y, top_swapped, y, least=0.6)  # the network orders the top better
    assert not prior_places_top(y, y, top_swapped, least=1.0)  # above the bar only by more than 1: never
    assert not prior_places_top(y, np.zeros(10), np.zeros(10), least=-0.5)  # undefined: 0, not above the network's


def test_boosted_trees_start_from_the_prior_and_move_with_the_labels():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 4))
    prior = x[:, 0]
    y = x[:, 0] + 1.5 * x[:, 1]  # the prior is a third of the story
    few, many = np.arange(6), np.arange(200)
    s_few = boost_score(fit_boost(x[few], y[few], prior[few], seed=0), x, prior)
    s_many = boost_score(fit_boost(x[many], y[many], prior[many], seed=0), x, prior)
    # six labels: the order stays mostly the prior's; 200: the trees learn what the prior misses
    assert kendall_tau(prior, s_few) > 0.6 > kendall_tau(prior, s_many)
    assert kendall_tau(y, s_many) > kendall_tau(y, s_few) > kendall_tau(y, prior)
    assert kendall_tau(y, s_many) > 0.9


def test_boost_is_a_ranker_of_the_blend_saved_as_data_and_can_be_left_out(tmp_path, data):
    archs, y, good, _ = data
    pre = RankPredictor(SPACE, FAST.updated({"seed": 0})).pretrain(archs, {"good": good})
    labels = _labels(archs, y, 40, seed=8)
    q = pre.clone().fit(*labels)
    assert set(q.blend_weights) == {"tuned", "prior", "tree", "boost"} and q.blend_weights["boost"] > 0
    s = q.score(archs)
    q.save(tmp_path / "p.pt")
    np.testing.assert_allclose(RankPredictor.load(tmp_path / "p.pt").score(archs), s, rtol=1e-6, atol=1e-9)
    # a batch's scores do not depend on what else is in it (the shortlist's mapping is per candidate)
    np.testing.assert_allclose(q.score(archs[:7]), s[:7], rtol=1e-6, atol=1e-9)
    without = pre.clone()
    without.config.blend.boost = False
    without = without.fit(*labels)
    assert without.blend_weights["boost"] == 0 and without.blend.boost is None
    assert not np.allclose(without.score(archs), s)


def test_few_labels_and_no_pretraining_use_the_network_alone(data):
    archs, y, good, _ = data
    pre = RankPredictor(SPACE, FAST.updated({"seed": 0})).pretrain(archs, {"good": good})
    assert pre.clone().fit(*_labels(archs, y, 3, seed=0)).blend_weights is None  # fewer than 2 folds of 2
    fresh = RankPredictor(SPACE, FAST.updated({"seed": 0})).fit(*_labels(archs, y, 20, seed=0))
    assert fresh.blend_weights is None


def test_held_out_isomorphs_do_not_leak_into_training_folds():
    space = NB201Space()
    a = ("nor_conv_3x3", "none", "none", "none", "none", "nor_conv_3x3")  # node 2 is dead: many isomorphs
    p = RankPredictor(space, PredictorConfig(ensemble=1, finetune=FineTuneConfig(iso_per_label=100_000)))  # every isomorph is added
    iso = [b for b in space.enumerate() if space.iso_key(b) == space.iso_key(a) and b != a]
    assert iso, "the test needs an arch with isomorphs"
    held_out = p.ensemble.rows(iso[:1])[0]
    rows, _ = p.ensemble.iso_expand([a], p.ensemble.rows([a]), np.array([1.0]))
    assert held_out in set(rows.tolist())
    rows, _ = p.ensemble.iso_expand([a], p.ensemble.rows([a]), np.array([1.0]), exclude=iso[:1])
    assert held_out not in set(rows.tolist()) and rows.size == len(iso)


def test_trust_helpers():
    ids = fold_ids(10, 3, seed=0)
    assert sorted(np.bincount(ids).tolist()) == [3, 3, 4]
    with pytest.raises(ValueError, match="folds"):
        fold_ids(3, 5, seed=0)
    g = simplex_grid(3, 0.5)
    assert g.shape == (6, 3) and np.allclose(g.sum(axis=1), 1)
    y = np.arange(6.0)
    assert validation_score(y, y) == pytest.approx(1.0)
    assert validation_score(y, -y) < 0
    oof = np.stack([-y, np.zeros(6), y])
    assert choose_weights(oof, y, step=0.5, sharpness=float("inf")).tolist() == [0.0, 0.0, 1.0]
    soft = choose_weights(oof, y, step=0.5)  # near-best blends share the weight, more so with fewer labels
    assert soft.sum() == pytest.approx(1) and soft[2] == soft.max() < 1
    sharper = choose_weights(np.tile(oof, 10), np.tile(y, 10) + np.repeat(np.arange(10) * 0.01, 6), step=0.5)
    assert sharper[2] > soft[2]
    with pytest.raises(ValueError, match="oof"):
        choose_weights(oof[:, :4], y)
    # shrinkage toward a default blend fades as labels accumulate
    w, default = np.array([1.0, 0.0]), np.array([0.25, 0.75])
    assert shrink(w, default, n=10, prior_labels=0).tolist() == [1.0, 0.0]
    assert shrink(w, default, n=5, prior_labels=5).tolist() == [0.625, 0.375]
    assert shrink(w, default, n=100, prior_labels=5)[0] > shrink(w, default, n=10, prior_labels=5)[0]
    with pytest.raises(ValueError, match="prior_labels"):
        shrink(w, default, n=5, prior_labels=-1)
    # the shortlist cut: the top share of the scores, none at share 0
    scores = np.arange(200.0)
    assert (scores >= shortlist_cut(scores, 0.05)).sum() == 10
    assert shortlist_cut(scores, 0.0) == np.inf
    with pytest.raises(ValueError, match="shortlist"):
        shortlist_cut(scores, 1.0)
    # the grid coarsens so that many rankers still give a small grid
    for k in (2, 3, 5, 7):
        assert len(simplex_grid(k, grid_step(k, 0.1))) <= 500
    assert grid_step(7, 0.1) > 0.1 and grid_step(3, 0.1) == 0.1


def test_several_weak_labels_blend_into_the_prior(tmp_path, data):
    archs, y, good, noise = data
    pre = RankPredictor(SPACE, FAST.updated({"seed": 0})).pretrain(archs, {"noise": noise, "good": good})
    q = pre.clone().fit(*_labels(archs, y, 30, seed=7))
    cols = q.blend_columns
    assert cols is not None and set(cols) == {"noise", "good"} and sum(cols.values()) == pytest.approx(1)
    assert cols["good"] > 0.75 > 0.25 > cols["noise"], cols  # the labels point to the informative column
    s = q.score(archs)
    assert kendall_tau(y, s) > kendall_tau(y, q.ensemble.pre_fill[0]) + 0.1  # beats the equal average of the two
    q.save(tmp_path / "p.pt")
    back = RankPredictor.load(tmp_path / "p.pt")
    assert back.blend_columns == cols
    np.testing.assert_allclose(back.score(archs), s, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(q.score(archs[:50], cache=False), s[:50], rtol=1e-6, atol=1e-9)
    one = RankPredictor(SPACE, FAST.updated({"seed": 0})).pretrain(archs, {"good": good})
    assert one.clone().fit(*_labels(archs, y, 30, seed=7)).blend_columns is None  # one weak label: it is the prior


def test_config_checks():
    with pytest.raises(ValueError, match="blend mode"):
        PredictorConfig(blend=BlendConfig(mode="sometimes"))
    with pytest.raises(ValueError, match="blend folds"):
        PredictorConfig(blend=BlendConfig(folds=1))
    with pytest.raises(ValueError, match="blend step"):
        PredictorConfig(blend=BlendConfig(step=0.0))
    with pytest.raises(ValueError, match="blend sharpness"):
        PredictorConfig(blend=BlendConfig(sharpness=0.0))
    with pytest.raises(ValueError, match="blend prior_labels"):
        PredictorConfig(blend=BlendConfig(prior_labels=-1.0))
    with pytest.raises(ValueError, match="blend prior_top"):
        PredictorConfig(blend=BlendConfig(prior_top=-2.0))
    with pytest.raises(ValueError, match="blend prior_top_labels"):
        PredictorConfig(blend=BlendConfig(prior_top_labels=-1))
    with pytest.raises(ValueError, match="blend prior_top_rows"):
        PredictorConfig(blend=BlendConfig(prior_top_rows=-1.0))


def test_fold_correction_scales_the_learned_rankers_by_folds_over_folds_minus_one(data):
    archs, y, good, _ = data
    pre = RankPredictor(SPACE, FAST.updated({"seed": 0, "blend": {"fold_correction": False}})).pretrain(
        archs, {"good": good})
    labels = _labels(archs, y, 30, seed=4)
    off = pre.clone().fit(*labels).blend_weights
    on_pre = pre.clone()
    on_pre.config.blend.fold_correction = True
    on = on_pre.fit(*labels).blend_weights
    assert 0.05 < off["prior"] < 0.95, off  # both sides weighted, so the scaling shows
    # 3 folds: each learned ranker's weight relative to the prior's grows by 3/2, nothing else moves
    for name in ("tuned", "tree", "boost"):
        assert on[name] / on["prior"] == pytest.approx(1.5 * off[name] / off["prior"], rel=1e-6)
    assert sum(on.values()) == pytest.approx(1.0)


def test_nested_prior_scores_the_weak_columns_blend_on_labels_it_was_not_chosen_on(data):
    archs, y, _, _ = data
    rng = np.random.default_rng(7)
    # five columns of noise: chosen on all labels their blend fits them by chance and looks like a
    # prior worth following; chosen inside each fold it scores what it is worth on the held-out ones
    weak = {f"n{i}": rng.normal(size=y.size) for i in range(5)}
    cfg = FAST.updated({"seed": 0, "blend": {"tree": False, "boost": False, "fold_correction": False,
                                             "nested_prior": False}})
    pre = RankPredictor(SPACE, cfg).pretrain(archs, weak)
    priors = {}
    for nested in (False, True):
        q = pre.clone()
        q.config.blend.nested_prior = nested
        priors[nested] = np.mean([q.clone().fit(*_labels(archs, y, 15, seed=s)).blend_weights["prior"]
                                  for s in range(4)])
    assert priors[True] < priors[False] - 0.03, priors  # measured: 0.29 against 0.35
