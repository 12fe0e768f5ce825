"""The run folder's reliability scenarios (issue 22): payloads never run, corrupt artefacts are
recomputed or named, concurrent runs are refused, bad input is refused before any training.

The searches on a Ray cluster are ``slow``: ``python -m pytest -m slow tests/test_reliability_rundir.py``.
"""

from __future__ import annotations

import pytest

from reliability import (
    concurrent_runs,
    optuna_non_finite,
    prechecks,
    run_dir_payloads,
    run_dir_truncation,
    state_payloads,
)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """Where the reference search is kept: the cases of every test start from one."""
    return tmp_path_factory.mktemp("rundir")


def _ok(result):
    assert result.cases > 0 and result.failures == 0, result.summary() + "\n" + "\n".join(result.examples)


def test_bad_input_is_refused_before_any_training():
    r = prechecks()
    _ok(r)
    assert r.cases == 5


def test_optuna_inf_is_recorded_as_failed_with_a_warning():
    pytest.importorskip("optuna")
    _ok(optuna_non_finite(trials=9))


def test_planted_state_payloads_never_run():
    pytest.importorskip("ray")
    _ok(state_payloads())


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.parametrize("state", ["final", "tune"])
def test_payloads_and_truncation_in_a_stopped_run_folder(ray_session, workdir, state):
    """A finished folder (``final``) and one stopped while the Tune steps were unfinished (``tune``)."""
    r = run_dir_payloads(ray_session.address, states=(state,), workdir=workdir)
    _ok(r)
    assert r.details["payloads_run"] == 0
    r = run_dir_truncation(ray_session.address, states=(state,), workdir=workdir)
    _ok(r)
    if state == "tune":
        assert r.details["refused"] >= 1  # Tune's own records cannot be recomputed: named, not read


@pytest.mark.slow
@pytest.mark.ray
def test_two_searches_on_one_out_folder(ray_session):
    _ok(concurrent_runs(ray_session.address, delays=(0.0,)))
