"""Every registered strategy: no iso repeats, budget, failures, warm start, exact resume."""

from __future__ import annotations

import numpy as np
import pytest

from ray_nasrank.benchmarks import TabularBenchmark
from ray_nasrank.benchmarks._search_table import queries_to_reach, run_on_table, summarise_curves
from ray_nasrank.metrics import best_so_far
from ray_nasrank.search import (
    OpDistModel,
    OpDistStrategy,
    REAStrategy,
    Strategy,
    TPEStrategy,
    make_strategy,
)
from ray_nasrank.search._weak import resolve_weak, weak_rank_score
from ray_nasrank.spaces import CategoricalSpace, NB201Space

SIMPLE = ["random", "rea", "opdist", "optuna-tpe"]


def _value(arch) -> float:
    return float(sum({"nor_conv_3x3": 3, "nor_conv_1x1": 2, "skip_connect": 1}.get(op, 0) for op in arch))


@pytest.fixture(scope="module")
def space():
    return NB201Space()


@pytest.fixture(scope="module")
def pool(space):
    # every 7th cell: a pool of 2,233 cells with many isomorphic pairs inside
    return [space.arch_at(i) for i in range(0, space.size, 7)]


def _kwargs(name):
    if name == "rea":
        return {"population": 8, "sample_size": 3}
    if name == "optuna-tpe":
        return {"n_startup_trials": 5}
    return {}


def _loop(s: Strategy, budget: int, batch: int = 2, fail=lambda i: False):
    asked = []
    while len(asked) < budget:
        got = s.ask(min(batch, budget - len(asked)))
        if not got:
            break
        for a in got:
            s.tell(a, None if fail(len(asked)) else _value(a))
            asked.append(a)
    return asked


@pytest.mark.parametrize("name", SIMPLE)
def test_no_iso_repeats_in_pool_and_budget(name, space, pool):
    s = make_strategy(name, space, seed=0, candidates=pool, **_kwargs(name))
    asked = _loop(s, 60, batch=3, fail=lambda i: i % 9 == 4)
    assert len(asked) == 60
    assert len({space.iso_key(a) for a in asked}) == 60
    pool_set = set(pool)
    assert all(a in pool_set for a in asked)
    assert sum(h["status"] == "failed" for h in s.history) == 7
    assert s.best[1] == max(_value(a) for i, a in enumerate(asked) if i % 9 != 4)
    assert s.pending == set()


@pytest.mark.parametrize("name", SIMPLE)
def test_tiny_space_is_exhausted_without_repeats(name):
    space = CategoricalSpace({"k": [3, 5, 7], "w": [16, 32, 64]})
    s = make_strategy(name, space, seed=1, **_kwargs(name))
    seen = []
    while batch := s.ask(4):
        seen += batch
        for a in batch:
            s.tell(a, float(a[0] * a[1]))
    assert sorted(seen) == sorted(space.enumerate())


@pytest.mark.parametrize("name", SIMPLE)
def test_resume_asks_the_same_as_uninterrupted(name, space, pool, tmp_path):
    ref = make_strategy(name, space, seed=4, candidates=pool, **_kwargs(name))
    _loop(ref, 14, batch=2)
    inflight = ref.ask(2)
    ref.save(tmp_path / f"{name}.pkl")
    later_ref = []
    for a in inflight:
        ref.tell(a, _value(a))
    later_ref = _loop(ref, 10, batch=2)

    resumed = Strategy.from_file(tmp_path / f"{name}.pkl")
    assert type(resumed) is type(ref) and resumed.pending == set(inflight)
    for a in inflight:
        resumed.tell(a, _value(a))
    assert _loop(resumed, 10, batch=2) == later_ref


@pytest.mark.parametrize("name", SIMPLE)
def test_enqueue_warm_start_and_external(name, space):
    s = make_strategy(name, space, seed=0, **_kwargs(name))
    first = ("nor_conv_3x3",) * 6
    s.add_evaluated(("nor_conv_1x1",) * 6, 88.0)
    s.add_evaluated(("none",) * 6, None)
    assert s.enqueue(first)
    got = s.ask(3)
    assert got[0] == first and len(got) == 3
    assert ("nor_conv_1x1",) * 6 not in got
    s.tell(("skip_connect",) * 6, 70.0)  # never asked
    for a in got:
        s.tell(a, _value(a))
    assert [h["source"] for h in s.history] == ["warm", "warm", "external", "asked", "asked", "asked"]
    assert s.best == (("nor_conv_1x1",) * 6, 88.0)
    more = _loop(s, 10)
    assert len({space.iso_key(a) for a in more + got}) == 13


def test_rea_evolves_from_the_population(space):
    s = REAStrategy(space, seed=0, population=10, sample_size=10)
    first = _loop(s, 10, batch=10)
    later = _loop(s, 30, batch=1)
    # with the tournament covering the whole population, children are one mutation away from
    # a member: most of them improve on the random start
    assert np.mean([_value(a) for a in later]) > np.mean([_value(a) for a in first]) + 2
    with pytest.raises(ValueError, match="sample_size"):
        REAStrategy(space, population=3, sample_size=5)


def test_opdist_model_learns_the_best_vector(space):
    pool = list(space.enumerate())
    m = OpDistModel(space, pool)
    assert len(m.vectors) == 210
    rng = np.random.default_rng(0)
    seen = set()
    for a in pool[::5]:  # every vector gets observations, so draws exploit
        m.update(a, _value(a))
    mean, std = m.posterior()
    best_vec = m.vectors[int(np.argmax(mean))]
    # columns are none, skip, conv1x1, conv3x3, pool: the observed best vectors are conv3x3-heavy
    assert best_vec[3] >= 4
    drawn = m.draw(5, rng, lambda a: space.iso_key(a) not in seen)
    assert len(drawn) == 5 and np.mean([a.count("nor_conv_3x3") for a in drawn]) >= 4
    with pytest.raises(ValueError, match="noise_std"):
        OpDistModel(space, pool, noise_std=0)
    with pytest.raises(ValueError, match="shape"):
        OpDistModel(space, pool, weak=np.zeros(3))


def test_opdist_uses_weak_prior(space):
    pool = list(space.enumerate())
    weak = np.array([a.count("avg_pool_3x3") for a in pool], dtype=float)
    s = OpDistStrategy(space, seed=0, candidates=pool, weak={"pools": weak}, prior_std=0.3)
    first = s.ask(5)
    assert np.mean([a.count("avg_pool_3x3") for a in first]) >= 4
    with pytest.raises(ValueError, match="aligned"):
        OpDistStrategy(space, candidates=pool, weak={"w": weak[:10]})
    with pytest.raises(TypeError, match="weak"):
        OpDistStrategy(space, candidates=pool, weak=3.0)


def test_weak_rank_score_combines_ranks():
    cols = resolve_weak({"a": [1.0, 2.0, 3.0, np.nan], "b": [10.0, 30.0, 20.0, 40.0]}, [(0,), (1,), (2,), (3,)])
    w = weak_rank_score(cols)
    assert w.shape == (4,) and abs(w.mean()) < 1e-12
    assert np.argmax(w) in (2, 3)
    assert resolve_weak(lambda archs: {"n": [len(a) for a in archs]}, [(0,), (1,)])["n"].tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="inf"):
        resolve_weak({"x": [1.0, np.inf]}, [(0,), (1,)])


def test_tpe_answers_repeats_inside_the_study(space):
    s = TPEStrategy(space, seed=0, n_startup_trials=3)
    _loop(s, 25, batch=1)
    from optuna.trial import TrialState

    complete = [t for t in s.study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) >= 25
    assert len({space.iso_key(h["arch"]) for h in s.history}) == 25


def test_bench_helpers():
    assert best_so_far([1.0, None, 3.0, 2.0]).tolist() == [1.0, 1.0, 3.0, 3.0]
    assert best_so_far([5.0, 3.0, 4.0], mode="min").tolist() == [5.0, 3.0, 3.0]
    assert queries_to_reach([1.0, 2.0, 3.0], 2.0) == 2
    assert queries_to_reach([1.0, 2.0], 3.0) is None
    s = summarise_curves([[1.0, 3.0], [2.0, 2.0]], optimum=3.0, budget=2, checkpoints=(1, 2))
    assert s["best_at"] == {"1": 1.5, "2": 2.5}
    assert s["median_queries_to_optimum"] == 2.5 and s["hit_rate"] == 0.5
    with pytest.raises(ValueError, match="at least one"):
        summarise_curves([], 1.0, 2)


def test_run_on_table_counts_queries_and_overhead():
    import pandas as pd

    df = pd.DataFrame({"k": [3, 5, 3, 5, 7, 7], "w": [8, 8, 16, 16, 8, 16], "acc": [0.5, 0.6, 0.7, 0.9, 0.4, 0.8]})
    bench = TabularBenchmark.from_frame(df, space="columns", arch_cols=["k", "w"], target="acc")
    run = run_on_table(make_strategy("rea", bench.space, seed=0, candidates=bench.archs, population=2,
                                     sample_size=2), bench, budget=10)
    assert len(run["values"]) == 6 == bench.queries  # the pool ran out before the budget
    assert run["queries_to_optimum"] == run["values"].index(0.9) + 1
    assert run["overhead_s_per_trial"] >= 0


def test_opdist_draw_filter_skips_cells_for_this_draw_only(space):
    """A filter (cells predicted infeasible now) skips cells in one draw; they stay available to
    later draws, unlike seen cells."""
    pool = list(space.enumerate())
    m = OpDistModel(space, pool)
    rng = np.random.default_rng(0)
    assert m.draw(3, rng, lambda a: True, allowed=lambda a: False) == []
    drawn = m.draw(3, rng, lambda a: True)
    assert len(drawn) == 3
