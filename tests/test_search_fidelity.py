"""Fidelity in the core Strategy: partial results are curves, never final labels, and the ranker
compares configs observed at the same fidelity only."""

from __future__ import annotations

import numpy as np
import pytest

from ray_nasrank.predictor import FineTuneConfig, PredictorConfig, RankPredictor
from ray_nasrank.search import NASRankStrategy, Strategy, make_strategy
from ray_nasrank.spaces import CategoricalSpace

TINY = PredictorConfig(ensemble=1, hidden=16, finetune=FineTuneConfig(epochs=60, patience=0))


@pytest.fixture(scope="module")
def space():
    return CategoricalSpace({"good": [0, 1], "w": list(range(12)), "d": [1, 2, 3]})


def test_partial_results_are_a_curve_and_the_best_is_full_fidelity_only():
    s = make_strategy("random", CategoricalSpace({"w": list(range(10))}), seed=0, max_fidelity=9)
    a, b, c = s.ask(3)
    s.tell(a, 99.0, fidelity=1)            # a high early value, then stopped: not a result
    s.tell(b, 40.0, fidelity=1)
    s.tell(b, 60.0, fidelity=3)
    s.tell(b, 70.0, fidelity=9)            # at max_fidelity: b's full-fidelity result
    s.tell(c, 50.0)                        # fidelity=None: full
    assert s.best == (b, 70.0)
    assert [s.status(x) for x in (a, b, c)] == ["partial", "ok", "ok"]
    arch, y = s.observations()
    assert arch == [b, c] and y.tolist() == [70.0, 50.0]
    hist = {h["arch"]: h for h in s.history}
    assert hist[b]["curve"] == [[1.0, 40.0], [3.0, 60.0]] and hist[b]["fidelity"] is None
    assert hist[a]["fidelity"] == 1.0 and hist[a]["value"] == 99.0
    levels = s.fidelity_levels()
    assert [(f, sorted(x)) for f, x, _ in levels] == [(1.0, sorted([a, b])), (3.0, [b]), (None, sorted([b, c]))]
    assert s.n_observations == 5
    assert s.ranked_archs() == [b, c, a]  # full results first, then the deepest curve


def test_without_max_fidelity_the_highest_fidelity_told_is_the_full_one():
    s = make_strategy("random", CategoricalSpace({"w": list(range(10))}), seed=0, mode="min")
    a, b = s.ask(2)
    s.tell(a, 0.5, fidelity=1)
    assert s.full_fidelity == 1.0 and s.best == (a, 0.5)  # nothing deeper yet
    s.tell(b, 0.9, fidelity=1)
    s.tell(b, 0.7, fidelity=4)
    assert s.full_fidelity == 4.0 and s.best == (b, 0.7)  # a's epoch-1 value is no longer a result
    assert [f for f, _, _ in s.fidelity_levels()] == [1.0, None]


def test_bad_fidelity_input_is_refused_naming_the_arch():
    s = make_strategy("random", CategoricalSpace({"w": list(range(10))}), seed=0, max_fidelity=9)
    a, b = s.ask(2)
    s.tell(a, 50.0, fidelity=3)
    with pytest.raises(ValueError, match="fidelity 3 before; a later result needs a higher fidelity, got 2"):
        s.tell(a, 55.0, fidelity=2)
    with pytest.raises(ValueError, match="must be a finite number"):
        s.tell(a, float("nan"), fidelity=4)
    with pytest.raises(ValueError, match="positive finite"):
        s.tell(b, 1.0, fidelity=0)
    with pytest.raises(TypeError, match="positive number"):
        s.tell(b, 1.0, fidelity="3")
    with pytest.raises(ValueError, match="max_fidelity"):
        make_strategy("random", CategoricalSpace({"w": [1, 2]}), max_fidelity=-1)
    s.tell(a, None)                        # a failure at full fidelity ends the curve
    assert s.status(a) == "failed" and s.history[0]["curve"] == [[3.0, 50.0]]
    with pytest.raises(ValueError, match="already told"):
        s.tell(a, 60.0, fidelity=5)
    assert s.best is None


def _tell_early_stopped_goods(s, archs):
    """The trap successive halving sets: the good configs (good=1) were stopped after epoch 1,
    the bad ones trained to the end. Their last values say bad > good; at epoch 1 good > bad."""
    goods = [a for a in archs if a[0] == 1][:6]
    bads = [a for a in archs if a[0] == 0][:6]
    rng = np.random.default_rng(0)
    for a in bads:
        s.tell(a, 20.0 + rng.random(), fidelity=1)
    for a in goods:
        s.tell(a, 30.0 + rng.random(), fidelity=1)
    for a in bads:
        s.tell(a, 60.0 + rng.random(), fidelity=9)
    return goods, bads


def test_the_ranker_compares_configs_at_the_same_fidelity_only(space):
    pool = list(space.enumerate())
    s = NASRankStrategy(space, seed=0, candidates=pool, predictor=TINY, batch_size=6, explore=0.0,
                        first_explore=0.0, local=0.0, max_fidelity=9)
    goods, bads = _tell_early_stopped_goods(s, pool)
    proposed = s.ask(6)
    assert sum(a[0] for a in proposed) >= 5  # epoch 1 said good > bad, and that is what it learned
    # the test can fail: ranking each config's last value, as if final, prefers the bad ones
    mixed = RankPredictor(space, TINY).fit(goods + bads, [30.5] * 6 + [60.5] * 6)
    unseen = [a for a in pool if a not in goods + bads]
    top = [unseen[i] for i in np.argsort(-mixed.score(unseen))[:6]]
    assert sum(a[0] for a in top) <= 1


def test_partial_weight_zero_learns_from_full_results_only(space):
    pool = list(space.enumerate())
    s = NASRankStrategy(space, seed=0, candidates=pool, predictor=TINY, batch_size=6, explore=0.0,
                        first_explore=0.0, local=0.0, max_fidelity=9, partial_weight=0.0)
    _tell_early_stopped_goods(s, pool)
    s.ask(6)
    assert s._model is not None  # fitted on the six bad full results alone (nothing to rank between)
    archs, y, groups, _ = s._fit_inputs()
    assert groups is None and len(archs) == 6


def test_saved_state_round_trips_partial_results(space, tmp_path):
    pool = list(space.enumerate())
    s = NASRankStrategy(space, seed=0, candidates=pool, predictor=PredictorConfig(ensemble=1, hidden=8, finetune=FineTuneConfig(epochs=5)),
                        batch_size=4, max_fidelity=9)
    _tell_early_stopped_goods(s, pool)
    s.save(tmp_path / "s.pkl")
    r = Strategy.from_file(tmp_path / "s.pkl")
    assert r.history == s.history and r.max_fidelity == 9.0 and r.n_observations == s.n_observations
    assert r.ask(4) == s.ask(4)
    a = next(h["arch"] for h in r.history if h["status"] == "partial")
    r.tell(a, 80.0, fidelity=9)
    assert r.best == (a, 80.0)


def test_a_state_saved_before_fidelities_loads_as_full_results(space):
    s = make_strategy("random", space, seed=0)
    for a in s.ask(3):
        s.tell(a, float(a[1]))
    d = s.state_dict()
    for key in ("max_fidelity", "_top_fidelity", "_n_points"):
        del d["state"][key]
    for h in d["state"]["_history"]:
        del h["fidelity"], h["curve"]
    r = Strategy.from_state_dict(d)
    assert r.history == s.history and r.n_observations == 3 and r.best == s.best


def test_levels_holding_the_same_configs_as_a_later_one_are_left_out_of_the_fit(space):
    pool = list(space.enumerate())
    s = NASRankStrategy(space, seed=0, candidates=pool, predictor=TINY, max_fidelity=9)
    for i, a in enumerate(pool[:6]):
        s.tell(a, float(i), fidelity=1)  # every config's first epoch
    for i, a in enumerate(pool[:2]):     # two promoted configs report every later epoch
        for e in range(2, 10):
            s.tell(a, float(i * 10 + e), fidelity=e)
    archs, y, groups, weights = s._fit_inputs()
    assert sorted(set(groups)) == [0, 8]  # epoch 1 (six configs) and full fidelity (two); epochs 2-8 repeat it
    assert weights[0] == pytest.approx(1 / 9) and weights[8] == 1.0 and len(archs) == 8
