"""The ask/tell core (:class:`Strategy`) and :class:`RandomStrategy`."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from ray_nasrank.search import RandomStrategy, Strategy, make_strategy
from ray_nasrank.spaces import CategoricalSpace, NB201Space


@pytest.fixture()
def space():
    return NB201Space()


def _value(arch) -> float:
    # a deterministic objective: convolutions are good, 'none' is bad
    return float(sum({"nor_conv_3x3": 3, "nor_conv_1x1": 2, "skip_connect": 1}.get(op, 0) for op in arch))


def test_random_never_repeats_an_iso_class_and_exhausts_small_pool(space):
    pool = [space.arch_at(i) for i in range(0, 15625, 50)]  # 313 archs
    keys = {space.iso_key(a) for a in pool}
    s = RandomStrategy(space, seed=3, candidates=pool)
    got = []
    while True:
        batch = s.ask(40)
        if not batch:
            break
        assert len(batch) <= 40
        got += batch
        for a in batch:
            s.tell(a, _value(a))
    assert all(a in pool for a in got)
    assert len({space.iso_key(a) for a in got}) == len(got) == len(keys)
    assert s.exhausted()
    assert s.ask(3) == []


def test_ask_is_pending_until_told_and_best_follows_mode(space):
    for mode, pick in (("max", max), ("min", min)):
        s = RandomStrategy(space, seed=0, mode=mode)
        archs = s.ask(6)
        assert s.pending == set(archs)
        for a in archs:
            s.tell(a, _value(a))
        assert s.pending == set()
        best_value = pick(_value(a) for a in archs)
        assert s.best[1] == best_value
        _, scores = s.observations()
        assert scores.max() == (best_value if mode == "max" else -best_value)


def test_failed_tells_are_recorded_and_never_reproposed(space):
    pool = [space.arch_at(i) for i in range(0, 15625, 400)]
    s = RandomStrategy(space, seed=1, candidates=pool)
    first = s.ask(3)
    s.tell(first[0], None)
    s.tell(first[1], float("nan"))
    s.tell(first[2], -math.inf)
    assert [h["status"] for h in s.history] == ["failed"] * 3
    assert s.best is None
    rest = []
    while batch := s.ask(7):
        rest += batch
    failed_keys = {space.iso_key(a) for a in first}
    assert not failed_keys & {space.iso_key(a) for a in rest}
    assert s.status(first[0]) == "failed"


def test_tell_unknown_arch_and_iso_twin_is_not_proposed(space):
    s = RandomStrategy(space, seed=0)
    user = ("nor_conv_3x3", "nor_conv_3x3", "nor_conv_3x3", "skip_connect", "nor_conv_3x3", "nor_conv_1x1")
    s.tell(user, 93.0)
    assert s.history[0]["source"] == "external"
    assert not s.is_new(user)
    with pytest.raises(ValueError, match="already told"):
        s.tell(user, 92.0)
    # an isomorphic twin: (1,0) carries nothing when node 1 only feeds a 'none' edge
    a = ("avg_pool_3x3", "none", "none", "skip_connect", "none", "none")
    b = ("nor_conv_1x1", "none", "none", "skip_connect", "none", "none")
    assert space.iso_key(a) == space.iso_key(b)
    s.tell(a, 10.0)
    assert not s.is_new(b)


def test_enqueue_and_add_evaluated(space):
    s = RandomStrategy(space, seed=0)
    p1 = ("nor_conv_3x3",) * 6
    p2 = ("skip_connect",) * 6
    warm = ("nor_conv_1x1",) * 6
    assert s.enqueue(p1) and s.enqueue(space.to_string(p2))
    assert not s.enqueue(p1)  # already queued
    s.add_evaluated(warm, 80.0)
    assert not s.enqueue(warm)  # already evaluated
    assert s.status(p1) == "queued"
    batch = s.ask(3)
    assert batch[:2] == [p1, p2]
    assert warm not in batch
    assert s.history[0]["source"] == "warm"
    # a queued point told before being asked leaves the queue
    p3 = ("avg_pool_3x3",) * 6
    s.enqueue(p3)
    s.tell(p3, 1.0)
    assert p3 not in s.ask(5)


def test_bad_input_errors(space):
    with pytest.raises(TypeError, match="SearchSpace"):
        RandomStrategy("nb201")
    with pytest.raises(ValueError, match="mode"):
        RandomStrategy(space, mode="maximize")
    with pytest.raises(TypeError, match="seed"):
        RandomStrategy(space, seed=1.5)
    with pytest.raises(ValueError, match="empty"):
        RandomStrategy(space, candidates=[])
    s = RandomStrategy(space, seed=0)
    with pytest.raises(ValueError, match=">= 1"):
        s.ask(0)
    with pytest.raises(TypeError, match="int"):
        s.ask(2.0)
    [a] = s.ask()
    with pytest.raises(TypeError, match="value"):
        s.tell(a, "91.2")
    with pytest.raises(TypeError, match="value"):
        s.tell(a, True)
    with pytest.raises(ValueError, match="bogus_op"):
        s.tell(("bogus_op",) * 6, 1.0)
    with pytest.raises(ValueError, match="unknown strategy 'gridsearch'"):
        make_strategy("gridsearch", space)
    with pytest.raises(ValueError, match="not a strategy state"):
        s.load_state_dict({"x": 1})


def _run(s: Strategy, rounds: int, n: int = 3, fail_every: int = 0) -> list:
    asked = []
    for r in range(rounds):
        batch = s.ask(n)
        asked += batch
        for i, a in enumerate(batch):
            s.tell(a, None if fail_every and (len(asked) - len(batch) + i) % fail_every == 0 else _value(a))
    return asked


def test_state_round_trip_resumes_identically(space, tmp_path):
    ref = RandomStrategy(space, seed=7)
    _run(ref, 4)
    pending = ref.ask(2)  # in flight at the checkpoint
    ref.save(tmp_path / "s.pkl")
    ref_more = ref.ask(5)

    for resumed in (RandomStrategy(space, seed=123), Strategy.from_file(tmp_path / "s.pkl")):
        if resumed.seed == 123:
            resumed.load(tmp_path / "s.pkl")
        assert resumed.pending == set(pending)
        assert len(resumed.history) == 12
        assert resumed.ask(5) == ref_more
    # the state dict is a deep, picklable copy: later asks do not change it
    d = ref.state_dict()
    pickle.loads(pickle.dumps(d))
    ref.ask(3)
    assert len(d["state"]["_pending"]) == 7


def test_load_state_rejects_other_class_or_space(space):
    d = RandomStrategy(space, seed=0).state_dict()
    other = RandomStrategy(CategoricalSpace({"a": [1, 2], "b": [3, 4]}), seed=0)
    with pytest.raises(ValueError, match="space"):
        other.load_state_dict(d)
    d2 = dict(d, **{"class": "ray_nasrank.search._random:Nope"})
    with pytest.raises(ValueError, match="cannot be loaded"):
        RandomStrategy(space).load_state_dict(d2)


def test_categorical_space_without_pool():
    space = CategoricalSpace({"k": [3, 5, 7], "w": [16, 32]})
    s = make_strategy("random", space, seed=0, mode="min")
    got = s.ask(10)
    assert len(got) == 6 and len(set(got)) == 6  # exhausted: fewer than asked
    assert s.ask() == []
    for a in got:
        s.tell(a, a[0] * a[1])
    assert s.best == ((3, 16), 48.0)


def test_seeded_runs_are_reproducible(space):
    a = _run(RandomStrategy(space, seed=5), 3)
    b = _run(RandomStrategy(space, seed=5), 3)
    c = _run(RandomStrategy(space, seed=6), 3)
    assert a == b and a != c
    assert np.all([space.contains(x) for x in a])
