"""Faults and load (issue 7): failing trials, killed supernet actor, removed node, unwritable
output, kills mid-write, 1,000-trial load; plus ``python -m reliability`` itself.

Heavy variants are ``slow``: ``python -m pytest -m slow tests/test_reliability*.py``.
"""

from __future__ import annotations

import json
import sys
import threading

import pytest

from reliability import (
    asktell_trial_faults,
    atomic_write_kill,
    cli_search_interrupt,
    main,
    node_removal,
    searcher_load,
    supernet_actor_kill,
    tune_trial_faults,
    unwritable_output,
)


def _ok(result):
    assert result.cases > 0 and result.failures == 0, result.summary() + "\n" + "\n".join(result.examples)


def test_failed_trials_are_recorded_and_never_reproposed_asktell():
    r = asktell_trial_faults(budget=120, batch=8)
    _ok(r)
    assert r.cases == 2 * 120 + 2


def test_unwritable_output_fails_at_once_naming_the_path():
    r = unwritable_output()
    _ok(r)
    assert "disk full (less free space than required)" in r.details["checks"]


def test_kill_mid_write_leaves_the_last_complete_file():
    r = atomic_write_kill(kills=2, kinds=("json", "strategy"), control=True)
    _ok(r)
    truncated, runs = map(int, r.details["naive_writer_truncated"].split("/"))
    assert runs == 2 and truncated >= 1  # the same check sees a naive writer's truncated file


def test_searcher_overhead_and_memory_under_load_small():
    pytest.importorskip("ray.tune")
    r = searcher_load(trials=300, concurrency=8, strategies=("random", "rea"))
    _ok(r)
    for stats in r.details["per_strategy"].values():
        assert stats["suggest"]["calls"] >= 300 and stats["complete"]["calls"] == 300
        assert stats["overhead_per_trial_ms"] < 50


def test_node_removal_callback_pickles_while_the_harness_is_shipped_by_value():
    """``faults_node`` crashed with "cannot pickle '_thread.lock' object" whenever
    ``faults_trials_tune`` had run before it in the same process: that scenario registered the
    harness for pickling by value and never undid it, and Tune pickles the run's callbacks
    (``tuner.pkl``); the callback's module-level event registry then went into the pickle."""
    cloudpickle = pytest.importorskip("ray.cloudpickle")
    pytest.importorskip("ray.tune")
    from reliability._faults import _removal_callback, shipped_by_value

    harness = sys.modules["reliability"]
    event = threading.Event()
    callback = _removal_callback(event, after=2)
    with shipped_by_value(harness):
        assert "reliability" in cloudpickle.list_registry_pickle_by_value()
        copy = cloudpickle.loads(cloudpickle.dumps(callback))  # as Tune writes tuner.pkl
    assert "reliability" not in cloudpickle.list_registry_pickle_by_value()  # nothing leaks
    assert copy.event is None and (copy.after, copy.done) == (2, 0)
    callback.on_trial_complete(0, [], None)
    assert not event.is_set()
    callback.on_trial_complete(1, [], None)
    assert event.is_set()  # the object Tune runs still signals
    copy.on_trial_complete(0, [], None)
    copy.on_trial_complete(1, [], None)  # a restored copy has no event: it signals nothing

    cloudpickle.register_pickle_by_value(harness)  # registered by someone else: kept
    try:
        with shipped_by_value(harness):
            pass
        assert "reliability" in cloudpickle.list_registry_pickle_by_value()
    finally:
        cloudpickle.unregister_pickle_by_value(harness)


@pytest.mark.ray
def test_trials_raising_or_reporting_nan_inf_do_not_stop_tune(ray_session, tmp_path):
    pytest.importorskip("ray.tune")
    from ray import cloudpickle

    r = tune_trial_faults(budget=12, concurrency=2, storage=str(tmp_path))
    _ok(r)
    assert "reliability" not in cloudpickle.list_registry_pickle_by_value()  # later scenarios unaffected
    assert r.details["errored"] >= 1 and r.details["failed"] > r.details["errored"]


def test_bench_reliability_writes_cases_and_failures(tmp_path, capsys):
    out = tmp_path / "rel.json"
    rc = main(["--scenarios", "faults_output,faults_trials_asktell", "--quick",
               "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    data = json.loads(out.read_text())
    assert set(data["scenarios"]) == {"faults_output", "faults_trials_asktell"}
    for entry in data["scenarios"].values():
        assert entry["cases"] > 0 and entry["failures"] == 0 and entry["seconds"] >= 0
    assert data["totals"]["failures"] == 0
    assert data["command"].startswith("python -m reliability --scenarios faults_trials_asktell,faults_output --quick")
    assert main(["--scenarios", "fuzz,nope", "--out", str(out)]) == 2
    assert "nope" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.ray
def test_supernet_actor_killed_mid_search(ray_session, tmp_path):
    r = supernet_actor_kill(pool_size=24, budget=6, kill_races=3, storage=str(tmp_path))
    _ok(r)


@pytest.mark.slow
@pytest.mark.ray
def test_node_removed_mid_search(ray_cluster, ray_session, tmp_path):
    r = node_removal(ray_cluster, budget=8, remove_after=2, storage=str(tmp_path))
    _ok(r)
    assert r.details["trials_finished_after_removal"] > 0


@pytest.mark.slow
def test_searcher_load_1000_trials_concurrency_8():
    r = searcher_load(trials=1000, concurrency=8, strategies=("random", "rea"))
    _ok(r)


@pytest.mark.slow
@pytest.mark.ray
def test_searcher_load_through_tune(ray_session, tmp_path):
    r = searcher_load(trials=100, concurrency=8, strategies=("random",), via="tune", storage=str(tmp_path))
    _ok(r)


@pytest.mark.slow
@pytest.mark.ray
def test_cli_search_interrupted_and_rerun(ray_cluster, ray_session, tmp_path):
    r = cli_search_interrupt(ray_cluster.address, budget=4, fractions=(0.5,), out=str(tmp_path))
    _ok(r)
