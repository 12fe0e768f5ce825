"""Strategies over mixed, conditional and large spaces: no repeats, clean exhaustion, resume, bounded cost."""

from __future__ import annotations

import math
import tracemalloc

import pytest
import torch

from ray_nasrank.predictor import PredictorConfig
from ray_nasrank.search import NASRankStrategy, Strategy, make_strategy
from ray_nasrank.search._nasrank import limit_torch_threads
from ray_nasrank.spaces import INACTIVE, CategoricalSpace, Condition, Decision, Float, Integer, Normal, SearchSpace

TINY = PredictorConfig(ensemble=1, hidden=16, fit_epochs=20, patience=5)
MIXED = SearchSpace([
    Decision(("op",), ["conv3", "conv5", "skip"]),
    Decision(("opt",), ["sgd", "adam"]),
    Decision(("momentum",), Float(0.0, 0.99), Condition("opt", ("sgd",))),
    Decision(("beta",), Integer(1, 3), Condition("opt", ("adam",))),
    Decision(("lr",), Float(1e-4, 1e-1, log=True)),
    Decision(("width",), Integer(8, 256, log=True)),
    Decision(("drop",), Float(0.0, 0.5, step=0.1)),
    Decision(("noise",), Normal(0.0, 1.0, step=0.25)),
])
NAMES = ["random", "rea", "opdist", "nasrank", "optuna-tpe"]


def _value(a) -> float:
    op, opt, m, beta, lr, width, drop, noise = a
    v = {"conv3": 1.0, "conv5": 0.7, "skip": 0.2}[op] - (math.log10(lr) + 2.5) ** 2 + 0.1 * math.log2(width)
    v += (0.5 * m if opt == "sgd" else 0.2 * beta) - drop - 0.1 * noise ** 2
    return v


def _kwargs(name):
    return {"predictor": TINY} if name == "nasrank" else {}


@pytest.mark.parametrize("name", NAMES)
def test_mixed_conditional_space_proposals_are_valid_new_and_resumable(name, tmp_path):
    s = make_strategy(name, MIXED, seed=0, **_kwargs(name))
    seen = set()
    for _ in range(8):
        for a in s.ask(3):
            assert MIXED.validate(a) == a
            assert (a[2] is INACTIVE) == (a[1] == "adam") and (a[3] is INACTIVE) == (a[1] == "sgd")
            assert a not in seen
            seen.add(a)
            s.tell(a, _value(a))
    s.save(tmp_path / "s.pkl")
    again = Strategy.from_file(tmp_path / "s.pkl")
    nxt, nxt2 = s.ask(2), again.ask(2)
    assert nxt == nxt2 and not set(nxt) & seen


@pytest.mark.parametrize("name", NAMES)
def test_finite_conditional_space_runs_out_cleanly(name):
    space = SearchSpace([Decision(("opt",), ["sgd", "adam"]),
                         Decision(("m",), Integer(0, 3), Condition("opt", ("sgd",))),
                         Decision(("b",), [1, 2], Condition("opt", ("adam",)))])
    assert space.size == 6
    s = make_strategy(name, space, seed=1, **_kwargs(name))
    got = []
    for _ in range(10):
        batch = s.ask(2)
        for a in batch:
            s.tell(a, float(len(got)))
            got.append(a)
    assert len(got) == len(set(got)) == 6 and set(got) == set(space.enumerate())
    assert s.ask(1) == [] and s.exhausted()


def test_nasrank_on_a_continuous_space_ranks_prior_samples_and_local_moves():
    s = NASRankStrategy(MIXED, seed=0, predictor=TINY, batch_size=4, n_candidates=200, local_moves=20)
    assert s._sampled and s._pool == []
    for _ in range(6):
        for a in s.ask(4):
            s.tell(a, _value(a))
    assert s._model is not None  # refitted on the told values
    best = s.best[0]
    moves = MIXED.local_moves(best, 0, 20)
    assert all(sum(x != y for x, y in zip(best, m)) <= 3 for m in moves)


def test_large_categorical_space_builds_and_proposes_without_enumerating():
    big = CategoricalSpace({f"d{i}": list(range(128)) for i in range(30)})
    for name in NAMES:
        tracemalloc.start()
        s = make_strategy(name, big, seed=0, **_kwargs(name))
        first = s.ask(1)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert len(first) == 1 and big.validate(first[0]) == first[0]
        assert peak < 300e6, (name, peak)


def test_refits_use_the_bounded_thread_count_and_restore_it():
    before = torch.get_num_threads()
    seen = []
    with limit_torch_threads(1):
        seen.append(torch.get_num_threads())
    assert seen == [1] and torch.get_num_threads() == before
    s = NASRankStrategy(MIXED, seed=0, predictor=TINY, torch_threads=1, batch_size=3)
    for _ in range(3):
        for a in s.ask(3):
            s.tell(a, _value(a))
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="torch_threads must be >= 1"):
        NASRankStrategy(MIXED, torch_threads=0)
