"""Interruption and resume (issue 7): ask/tell and Ray Tune runs stopped at every 10 % of the
budget end with exactly the budget, no iso-duplicate and every finished result kept.

Heavy variants are ``slow``: ``python -m pytest -m slow tests/test_reliability*.py``.
"""

from __future__ import annotations

import pytest

from reliability import EVERY_10_PERCENT, asktell_interrupt, checkpoints, tune_interrupt


def _ok(result):
    assert result.cases > 0 and result.failures == 0, result.summary() + "\n" + "\n".join(result.examples)


def test_checkpoints_are_every_10_percent_inside_the_budget():
    assert checkpoints(50) == [5, 10, 15, 20, 25, 30, 35, 40, 45]
    assert checkpoints(7) == [1, 2, 3, 4, 5, 6]  # rounding up, duplicates merged
    assert checkpoints(10, (0.3, 0.7)) == [3, 7]
    assert EVERY_10_PERCENT[0] == 0.1 and len(EVERY_10_PERCENT) == 9


def test_asktell_interrupted_at_every_10_percent_keeps_budget_and_results():
    r = asktell_interrupt(strategies=("random", "rea"), budget=30, batch=4)
    _ok(r)
    assert r.cases == 2 and r.details["interruptions_per_run"] == 9


@pytest.mark.ray
def test_tune_interrupted_by_sigint_and_restored_keeps_budget_and_results(ray_session, tmp_path):
    pytest.importorskip("ray.tune")
    r = tune_interrupt(budget=10, fractions=(0.3, 0.7), concurrency=2, storage=str(tmp_path))
    _ok(r)
    assert r.details["restores"] == 2 and r.details["finished_at_each_interruption"] == [3, 7]


def test_asktell_interrupt_on_a_mixed_conditional_space():
    r = asktell_interrupt(strategies=("random", "rea", "optuna-tpe"), budget=30, batch=4, mixed=True)
    _ok(r)
    assert r.cases == 3 and r.details["table"] == "mixed"


@pytest.mark.slow
def test_asktell_interrupt_full(nb201_path):
    _ok(asktell_interrupt(strategies=("random", "rea"), budget=200, batch=8, use_shared=True))


@pytest.mark.slow
@pytest.mark.ray
def test_tune_interrupted_at_every_10_percent(ray_session, tmp_path):
    pytest.importorskip("ray.tune")
    r = tune_interrupt(budget=20, fractions=EVERY_10_PERCENT, concurrency=2, storage=str(tmp_path))
    _ok(r)
    assert r.details["restores"] == 9


def test_tune_searcher_and_optuna_sampler_restored_at_every_10_percent_on_mixed_and_conditional_spaces():
    from reliability import interrupt_mixed

    r = interrupt_mixed(("random", "rea"), budget=10, concurrency=3)
    _ok(r)
    assert r.cases == 12 and r.details["restores_per_run"] == 9


@pytest.mark.slow
def test_interrupt_mixed_full():
    from reliability import interrupt_mixed

    _ok(interrupt_mixed(("random", "rea", "optuna-tpe", "nasrank"), budget=40))
