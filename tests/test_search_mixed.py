"""Strategies over mixed, conditional and large spaces: no repeats, clean exhaustion, resume, bounded cost."""

from __future__ import annotations

import math
import tracemalloc

import pytest
import torch

from ray_nasrank.predictor import FineTuneConfig, PredictorConfig, PretrainConfig
from ray_nasrank.search import NASRankStrategy, Strategy, make_strategy
from ray_nasrank.search._nasrank import limit_torch_threads
from ray_nasrank.spaces import INACTIVE, CategoricalSpace, Condition, Decision, Float, Integer, Normal, SearchSpace

TINY = PredictorConfig(ensemble=1, hidden=16, finetune=FineTuneConfig(epochs=20, patience=5))
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


def test_tpe_on_a_pool_of_numeric_configs_evaluates_the_nearest_row_not_a_random_one(monkeypatch):
    """A table of configs with floats almost never holds TPE's suggestion: the closest unseen row
    is evaluated (and recorded in the study with its own values), not a random fill-in."""
    from optuna.trial import TrialState

    pool = MIXED.sample_many(80, 1, unique=True)
    s = make_strategy("optuna-tpe", MIXED, seed=0, candidates=pool, n_startup_trials=5)
    monkeypatch.setattr(s, "_random_unseen", lambda *a, **k: pytest.fail("random fill-in used"))
    asked = []
    for _ in range(20):
        [a] = s.ask()
        assert a in pool and a not in asked
        asked.append(a)
        s.tell(a, _value(a))
    done = [t for t in s.study.trials if t.state == TrialState.COMPLETE]
    assert [MIXED.validate(MIXED.from_config(t.params)) for t in done] == asked
    # the snapped row is the unseen one nearest to the suggestion
    x = MIXED.sample(5)
    near = s._nearest_unseen(x, set())
    feats = MIXED.features(pool)
    d = ((feats - MIXED.features([x])[0]) ** 2).sum(axis=1)
    unseen = [i for i, a in enumerate(pool) if a not in asked]
    assert near == pool[min(unseen, key=lambda i: d[i])]


def test_nasrank_on_a_pool_of_numeric_configs_exploits_around_the_nearest_rows_of_the_best():
    """A table of runs holds no config one exact step from the best one: its neighbourhood is
    the ``local_nearest`` unseen pool configs nearest to it."""
    import numpy as np

    from ray_nasrank.search import nearest_first

    pool = MIXED.sample_many(60, 2, unique=True)
    s = NASRankStrategy(MIXED, seed=0, candidates=pool, predictor=TINY, batch_size=2, explore=0.0, first_explore=0.0,
                        local=1.0, local_nearest=4)
    for a in pool[:8]:
        s.tell(a, _value(a))
    best = max(pool[:8], key=_value)
    near = [pool[int(i)] for i in nearest_first(MIXED, MIXED.features(pool), best) if pool[int(i)] not in pool[:8]][:4]
    mask = s._neighbourhood_mask(s._unseen_mask())
    assert [pool[int(i)] for i in np.flatnonzero(mask)] == [a for a in pool if a in near]
    asked = s.ask(2)
    assert set(asked) <= set(near)


def test_nasrank_takes_half_its_exploitation_locally_by_default_only_on_numeric_pools():
    pool = MIXED.sample_many(20, 3, unique=True)
    assert NASRankStrategy(MIXED, seed=0, candidates=pool, predictor=TINY).local == 0.5
    cat = CategoricalSpace({"a": [1, 2, 3], "b": ["x", "y"]})
    assert NASRankStrategy(cat, seed=0, candidates=list(cat.enumerate()), predictor=TINY).local == 1.0
    assert NASRankStrategy(MIXED, seed=0, predictor=TINY).local == 1.0


def test_refits_grow_apart_with_the_labels_so_long_runs_stay_linear(monkeypatch):
    space = CategoricalSpace({f"d{i}": list(range(6)) for i in range(4)})
    s = NASRankStrategy(space, seed=0, predictor=PredictorConfig(ensemble=1, hidden=8, pretrain=PretrainConfig(epochs=1), finetune=FineTuneConfig(epochs=2)))
    fits = []
    real = NASRankStrategy._fit_model
    monkeypatch.setattr(NASRankStrategy, "_fit_model", lambda self, a, y, *rest: fits.append(len(y)) or real(self, a, y, *rest))
    for t in range(200):
        (a,) = s.ask(1)
        s.tell(a, float(sum(a)) + 0.001 * t)
    gaps = [b - a for a, b in zip(fits, fits[1:])]
    assert set(gaps[: fits.index(next(n for n in fits if n >= 60))]) == {3}  # unchanged for short searches
    assert all(g >= int(0.05 * n) for g, n in zip(gaps, fits[1:]))
    assert fits[-1] >= 180 and len(fits) < 0.75 * 200 / 3  # fewer than one refit per 3 labels
    old = NASRankStrategy(space, seed=0, refit_share=0.0, refit_every=7)
    assert old.refit_share == 0.0 and old.refit_every == 7
    with pytest.raises(ValueError, match="refit_share"):
        NASRankStrategy(space, refit_share=2.0)
