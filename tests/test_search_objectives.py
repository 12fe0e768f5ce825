"""Several objectives and constraints in the ask/tell core: told values, fronts, known and learned
constraints, known objectives, saved state, bad input."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest

from ray_nasrank.predictor import FineTuneConfig, PredictorConfig, PretrainConfig
from ray_nasrank.search import make_strategy
from ray_nasrank.search._objectives import hypervolume
from ray_nasrank.spaces import NB201Space

SPACE = NB201Space()
POOL = SPACE.sample_many(400, rng=0, unique=True)
FAST = PredictorConfig(ensemble=1, hidden=16, pretrain=PretrainConfig(epochs=2), finetune=FineTuneConfig(epochs=15, patience=5))


def convs(a) -> int:
    return a.count("nor_conv_3x3")


def accuracy(a) -> float:
    # more 3x3 convolutions and fewer "none" edges are better, with a little arch-specific noise
    rng = np.random.default_rng(zlib.crc32(repr(SPACE.iso_key(a)).encode()))
    return 2.0 * convs(a) + a.count("nor_conv_1x1") - a.count("none") + 0.3 * rng.random()


def latency(a) -> float:
    return 1.0 + 3.0 * convs(a) + 1.0 * a.count("nor_conv_1x1")


def nasrank(**kw):
    kw.setdefault("seed", 0)
    kw.setdefault("batch_size", 4)
    # a cheap weak label instead of the intrinsic ones (SynFlow of 400 cells takes a while)
    weak = np.array([a.count("nor_conv_3x3") + a.count("nor_conv_1x1") for a in POOL], dtype=float)
    return make_strategy("nasrank", SPACE, candidates=POOL, predictor=FAST, intrinsic_weak=(),
                         weak={"convs": weak}, **kw)


def test_multi_objective_values_front_and_failures():
    s = make_strategy("random", SPACE, seed=0, mode=["max", "min"], candidates=POOL)
    a, b, c = s.ask(3)
    s.tell(a, [accuracy(a), latency(a)])
    s.tell(b, (accuracy(b), float("nan")))  # NaN in one objective fails that trial only
    s.tell(c, np.array([accuracy(c), latency(c)]))
    hist = s.history
    assert hist[0]["value"] == (accuracy(a), latency(a)) and hist[1]["status"] == "failed"
    front = dict(s.pareto_front)
    assert a in front or c in front
    with pytest.raises(ValueError, match="pareto_front"):
        s.best
    [d] = s.ask(1)
    with pytest.raises(ValueError, match="2 objectives"):
        s.tell(d, [1.0])
    with pytest.raises(TypeError, match="sequence of 2 numbers"):
        s.tell(d, 1.0)
    with pytest.raises(ValueError, match="searches one objective.*nasrank"):
        make_strategy("rea", SPACE, seed=0, mode=["max", "min"])


def test_constraints_are_checked_and_best_is_feasible():
    s = make_strategy("random", SPACE, seed=0, candidates=POOL)
    a, b, c = s.ask(3)
    s.tell(a, 10.0, constraints=[1.0])   # infeasible: the best value, but not the best
    s.tell(b, 5.0, constraints=[-1.0])
    assert s.best == (b, 5.0) and s.n_constraints == 1
    assert [h["feasible"] for h in s.history] == [False, True]
    with pytest.raises(ValueError, match="1 values but earlier trials told 2|2 values but earlier trials told 1"):
        s.tell(c, 1.0, constraints=[0.0, 0.0])
    with pytest.raises(ValueError, match="NaN"):
        s.tell(c, 1.0, constraints=[float("nan")])
    with pytest.raises(TypeError, match="constraint 0"):
        s.tell(c, 1.0, constraints=["low"])
    s.tell(c, 1.0, constraints=[0.0])  # zero is feasible, as in Optuna
    assert s.history[-1]["feasible"]


@pytest.mark.parametrize("name", ["random", "nasrank"])
def test_known_constraints_rule_candidates_out_before_training(name):
    cap = 1  # at most one 3x3 convolution
    kw = {"known_constraints": [lambda archs: [convs(a) - cap for a in archs]]}
    s = nasrank(**kw) if name == "nasrank" else make_strategy(name, SPACE, seed=0, candidates=POOL, **kw)
    for _ in range(6):
        for a in s.ask(4):
            s.tell(a, accuracy(a))  # no constraint told: the known one is computed
    asked = [h["arch"] for h in s.history]
    assert len(asked) == 24 and all(convs(a) <= cap for a in asked)
    assert all(h["constraints"] == (convs(h["arch"]) - cap,) for h in s.history)
    # without the constraint the search goes straight for the convolutions
    free = nasrank() if name == "nasrank" else make_strategy(name, SPACE, seed=0, candidates=POOL)
    for _ in range(6):
        for a in free.ask(4):
            free.tell(a, accuracy(a))
    assert any(convs(h["arch"]) > cap for h in free.history)


def test_learned_constraints_steer_proposals_to_feasible_configs():
    """The objective rewards exactly what the constraint forbids: NASRank learns the boundary from
    the told constraint values and proposes feasible configs far more often than random search."""
    cap = 6.0

    def share(s) -> float:
        for _ in range(10):
            for a in s.ask(4):
                s.tell(a, accuracy(a), constraints=[latency(a) - cap])
        later = s.history[12:]
        return sum(h["feasible"] for h in later) / len(later)

    learned = share(nasrank())
    rand = share(make_strategy("random", SPACE, seed=0, candidates=POOL))
    assert learned > rand + 0.2, (learned, rand)


def _front_hv(s, ref) -> float:
    pts = np.array([[v[0], -v[1]] for _, v in s.pareto_front])
    return hypervolume(pts, ref)


def test_known_objective_is_exact_and_the_front_beats_random():
    lat = np.array([latency(a) for a in POOL])
    ref = np.array([min(accuracy(a) for a in POOL), -lat.max()])
    hv = {}
    for name in ("nasrank", "random"):
        kw = {"mode": ["max", "min"]}
        if name == "nasrank":
            s = nasrank(known_objectives={1: lat}, **kw)
        else:
            s = make_strategy("random", SPACE, seed=0, candidates=POOL, **kw)
        for _ in range(6):
            for a in s.ask(4):
                s.tell(a, [accuracy(a), latency(a)])
        hv[name] = _front_hv(s, ref)
    best = hypervolume(np.array([[accuracy(a), -latency(a)] for a in POOL]), ref)
    assert hv["nasrank"] > hv["random"] and hv["nasrank"] > 0.9 * best, (hv, best)
    ys, prob = nasrank(mode=["max", "min"], known_objectives={1: lat})._predict(POOL, cache=True)
    assert np.array_equal(ys[:, 1], -lat) and (prob == 1).all()  # the known objective exactly, as a score


def test_multi_objective_state_round_trip(tmp_path):
    lat = np.array([latency(a) for a in POOL])
    s = nasrank(mode=["max", "min"], known_objectives={1: lat})
    for a in s.ask(4):
        s.tell(a, [accuracy(a), latency(a)], constraints=[convs(a) - 3.0])
    s.save(tmp_path / "s.pkl")
    t = type(s).from_file(tmp_path / "s.pkl")
    assert t.modes == ("max", "min") and t.n_constraints == 1 and t.history == s.history
    assert set(t._models) == set(s._models) and t.ask(4) == s.ask(4)


def test_bad_known_quantities_are_named():
    with pytest.raises(ValueError, match="known_objectives key 2"):
        nasrank(mode=["max", "min"], known_objectives={2: "params"})
    s = nasrank(mode=["max", "min"], known_objectives={1: "latency"})
    with pytest.raises(ValueError, match="known objective 1 'latency' is not computed.*params"):
        s.ask(4)
    with pytest.raises(ValueError, match="known_constraints key -1"):
        make_strategy("random", SPACE, known_constraints={-1: "params"})
    with pytest.raises(ValueError, match="feasible_temperature"):
        nasrank(feasible_temperature=0.0)
    assert math.isfinite(hypervolume(np.zeros((0, 2)), [0, 0]))


def test_a_round_planned_before_the_constraint_values_is_planned_again():
    """The first round is planned before any constraint value exists (its exploited cells are the
    pretrained ranking's best: the costliest). Once two values predict those cells infeasible,
    the rest of the round is planned again from the cells predicted feasible."""
    cap = 4.0
    s = nasrank(batch_size=8, first_explore=0.0)
    first = s.ask(1)[0]
    planned = [first] + list(s._plan)
    assert sum(latency(a) > cap for a in planned) >= 3  # what the round would have tried
    told = []
    for _ in range(8):
        a = s.ask(1)[0] if told else first
        s.tell(a, accuracy(a), constraints=[latency(a) - cap])
        told.append(a)
    assert s._constraint_models and sum(latency(a) <= cap for a in told[2:]) >= 5, [latency(a) for a in told]


def test_learned_constraint_reads_the_costs_known_without_training():
    """On NB201 the cell's params and FLOPs come first in the constraint's features: a cost that
    follows them is fitted on them alone from a handful of values."""
    from ray_nasrank.search import intrinsic_weak

    s = nasrank()
    x, sizes = s._constraint_features(POOL[:5], sizes=True)
    params = intrinsic_weak(SPACE, POOL[:5], ("params",))["params"]
    assert sizes[0] == 2 and np.allclose(x[:, 0], params) and sizes[-1] == x.shape[1]
    cost = intrinsic_weak(SPACE, POOL, ("flops",))["flops"]
    for a, c in zip(POOL[:6], cost[:6]):
        s.tell(a, accuracy(a), constraints=[c - np.median(cost)])
    model = s._constraint_models[0]
    assert model.weights.size == 2  # params and FLOPs only
    prob = s._feasibility(POOL, cache=True)
    assert np.mean((prob >= 0.5) == (cost <= np.median(cost))) > 0.95


@pytest.mark.parametrize("name", ["random", "nasrank"])
def test_a_limit_no_candidate_meets_is_refused_up_front(name):
    kw = {"known_constraints": [lambda archs: [latency(a) - 0.5 for a in archs]]}
    s = nasrank(**kw) if name == "nasrank" else make_strategy(name, SPACE, seed=0, candidates=POOL, **kw)
    with pytest.raises(ValueError, match=r"no one of the 400 candidates.*known constraint 0: smallest value 0\.5"):
        s.ask(1)
    assert not s.history


def test_multi_objective_partial_results_are_curves_not_front_points():
    """Several objectives at a partial fidelity (a scheduler stopped the trial at a rung): each is
    a point of the trial's curve, ranked per fidelity for every learned objective; only
    full-fidelity results make the front, and constraints told with a partial result count."""
    lat = np.array([latency(a) for a in POOL])
    s = nasrank(mode=["max", "max", "min"], known_objectives={2: lat}, max_fidelity=4)
    batch = s.ask(8)
    for a in batch:
        s.tell(a, [accuracy(a) / 2, -float(a.count("none")), latency(a)], fidelity=1,
               constraints=[convs(a) - 3.0])
    full = batch[:3]
    for a in full:
        s.tell(a, [accuracy(a), -float(a.count("none")), latency(a)], fidelity=4)
    assert [s.status(a) for a in batch] == ["ok"] * 3 + ["partial"] * 5
    assert {a for a, _ in s.pareto_front} <= set(full)
    assert s.history[3]["curve"] == [[1.0, [accuracy(batch[3]) / 2, -float(batch[3].count("none")), latency(batch[3])]]]
    assert s.history[3]["feasible"] == (convs(batch[3]) <= 3)
    targets = s._targets()
    assert set(targets) == {"objective:0", "objective:1"}  # the known one is computed, not learned
    for name, (archs, y, groups, weights) in targets.items():
        assert len(archs) == 11 and sorted(set(groups)) == [0, 1] and weights[1] == 1.0 and weights[0] == 0.25
    assert y.ndim == 1 and len(s.ask(4)) == 4  # the refit runs on both groups, then proposes
    with pytest.raises(ValueError, match="finite number"):
        s.tell(s.ask(1)[0], [1.0, float("nan"), 1.0], fidelity=1)
