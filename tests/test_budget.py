"""The main job's budget: fidelities, the adaptive recipe, successive halving and the time planner."""

from __future__ import annotations

import pytest

from ray_nasrank.pipeline import PipelineConfig
from ray_nasrank.pipeline._budget import (
    BudgetTooSmall,
    CostModel,
    Fidelity,
    Plan,
    adapt,
    epochs_for_steps,
    ladder,
    parse_duration,
    plan_fixed,
    plan_for_time,
    rung_sizes,
)

DIGITS = Fidelity(image_size=8, train_images=1294, epochs=2, batch_size=128, valid_images=144, test_images=359)
FASHION_S = Fidelity(image_size=14, train_images=10000, epochs=2, batch_size=128, valid_images=2000, test_images=2000)
FASHION_F = Fidelity(image_size=28, train_images=54000, epochs=2, batch_size=128, valid_images=6000,
                     test_images=10000)
DIGITS_COST = CostModel(step_s=0.022, step_size=8, full_step_s=0.022, full_size=8)
FASHION_COST = CostModel(step_s=0.05, step_size=14, full_step_s=0.18, full_size=28)


@pytest.mark.parametrize("text, seconds", [("300", 300), (300, 300), (12.5, 12.5), ("90s", 90), ("30m", 1800),
                                           ("2h", 7200), ("1h30m", 5400), (" 2 m ", 120), ("0.5h", 1800)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "abc", "5x", "-3", "0", 0, -1, "1h30", True, None, float("nan"), "m"])
def test_bad_durations_name_the_forms(bad):
    with pytest.raises(ValueError, match="30m, 2h"):
        parse_duration(bad)


def test_small_data_gets_enough_steps_and_large_data_is_unchanged():
    s, f = adapt(DIGITS, DIGITS, min_steps=150, halving=3)
    assert (s.epochs, s.steps) == (14, 154)  # 2 epochs were 22 steps: the 43 % digits run
    assert f.steps >= 3 * 150 and f.epochs == epochs_for_steps(1294, 128, 450)
    s2, f2 = adapt(FASHION_S, FASHION_F, min_steps=150, halving=3)
    assert (s2, f2) == (FASHION_S, FASHION_F)  # the default fashion job keeps its recipe
    assert adapt(DIGITS, DIGITS, min_steps=0, halving=3) == (DIGITS, DIGITS)


def test_ladder_interpolates_and_merges_repeated_trainings():
    lad = ladder(FASHION_S, FASHION_F, 3)
    assert [f.image_size for f in lad] == [14, 20, 28] and lad[0] == FASHION_S and lad[-1] == FASHION_F
    assert lad[1].test_images == FASHION_S.test_images  # scored like the search below the top
    assert ladder(FASHION_S, FASHION_F, 1) == [FASHION_F]
    # only the epochs differ, and too few to fill 5 rungs: the repeats are merged
    s, f = DIGITS, Fidelity(image_size=8, train_images=1294, epochs=3, batch_size=128)
    assert [x.epochs for x in ladder(s, f, 5)] == [2, 3]
    assert ladder(DIGITS, DIGITS, 3) == [DIGITS]


def test_rung_sizes_halve_to_the_winner():
    assert rung_sizes(27, 4, 3) == [27, 9, 3, 1]
    assert rung_sizes(2, 4, 3) == [2, 1, 1, 1]
    assert rung_sizes(100, 3, 2) == [100, 50, 1]


def test_the_fixed_plan_of_the_default_job_is_search_then_full():
    p = plan_fixed(FASHION_S, FASHION_F, budget=8, rounds=2, rungs=2, halving=3, arms=2, cost=FASHION_COST)
    assert [(r.configs, r.fidelity) for r in p.rungs] == [(8, FASHION_S), (1, FASHION_F)]
    assert p.retrains and p.round_sizes() == [4, 4] and p.estimated_s > 0
    assert Plan.from_dict(p.to_dict()) == p


def test_a_search_at_the_full_fidelity_is_not_retrained():
    p = plan_fixed(DIGITS, DIGITS, budget=4, rounds=2, rungs=2, halving=3, arms=1)
    assert not p.retrains and len(p.rungs) == 1 and "not retrained" in p.notes[0]


def test_the_time_plan_grows_with_the_budget_and_fits_it():
    s, f = adapt(DIGITS, DIGITS, min_steps=150, halving=3)
    sizes = []
    for seconds in (150, 300, 600):
        p = plan_for_time(seconds, s, f, cost=DIGITS_COST, halving=3, arms=2, overhead_s=45, max_configs=100)
        assert p.estimated_s <= 0.9 * seconds and p.rungs[-1].fidelity == f and p.rungs[-1].configs == 1
        assert p.time_budget_s == seconds and 1 <= p.rounds <= p.budget
        sizes.append(p.budget)
    assert sizes[0] < sizes[1] <= sizes[2] == 100
    assert "capped at 100" in p.notes[-1]


def test_a_large_time_budget_halves_over_several_rungs():
    p = plan_for_time(3600, FASHION_S, FASHION_F, cost=FASHION_COST, halving=3, arms=1, overhead_s=45,
                      max_configs=200)
    assert len(p.rungs) >= 3 and p.rungs[0].fidelity == FASHION_S and p.rungs[-1].fidelity == FASHION_F
    sizes = [r.configs for r in p.rungs]
    assert sizes == sorted(sizes, reverse=True) and sizes[-1] == 1 and sizes[0] >= 9


def test_a_budget_shorter_than_one_training_names_the_minimum():
    s, f = adapt(DIGITS, DIGITS, min_steps=150, halving=3)
    with pytest.raises(BudgetTooSmall, match=r"at least --time-budget \d+ \(or --baseline none") as e:
        plan_for_time(60, s, f, cost=DIGITS_COST, halving=3, arms=2, overhead_s=45, max_configs=100)
    assert e.value.minimum_s > 60
    # the minimum it names is enough
    plan_for_time(e.value.minimum_s + 1, s, f, cost=DIGITS_COST, halving=3, arms=2, overhead_s=45, max_configs=100)


# ------------------------------------------------------------------ the pipeline's use of the plan
def _final(nasrank_test: float, random_test: float, same: bool = False):
    import pandas as pd

    return pd.DataFrame([{"arm": "nasrank", "arch": "a", "test_acc": nasrank_test},
                         {"arm": "random", "arch": "a" if same else "b", "test_acc": random_test}])


def test_the_notes_say_when_the_random_arm_wins_and_when_no_retraining_ran():
    from ray_nasrank.pipeline._halving import arm_notes

    retrained = plan_fixed(FASHION_S, FASHION_F, budget=8, rounds=2, rungs=2, halving=3, arms=2)
    notes = arm_notes(_final(43.73, 61.0), retrained)
    assert notes == ["the random arm's winner beat the searched one: 61.00 % against 43.73 % test accuracy; "
                     "on this run the search did not pay off over picking at random"]
    assert arm_notes(_final(91.3, 90.1), retrained) == []
    assert "tied" in arm_notes(_final(90.0, 90.0, same=True), retrained)[0]
    single = plan_fixed(DIGITS, DIGITS, budget=4, rounds=2, rungs=2, halving=3, arms=2)
    notes = arm_notes(_final(97.0, 96.0), single)
    assert len(notes) == 1 and notes[0].startswith("full-fidelity retraining skipped") and "8x8" in notes[0]


def test_promotion_takes_the_best_finite_first_trained_on_ties():
    import numpy as np
    import pandas as pd

    from ray_nasrank.pipeline._halving import promote

    t = pd.DataFrame({"arch": list("abcde"), "order": [1, 2, 3, 4, 5],
                      "valid_acc": [90.0, np.nan, 95.0, 90.0, 95.0]})
    assert promote(t, 3) == ["c", "e", "a"]
    with pytest.raises(RuntimeError, match="every training of this rung failed"):
        promote(t.assign(valid_acc=np.nan), 1)


def test_a_time_budget_limits_the_stages_and_shrinks_the_top_rung_to_the_time_left():
    import time

    import pandas as pd

    from ray_nasrank.pipeline._halving import REPORT_S, STARTUP_S, Deadline, tail_seconds

    s, f = adapt(DIGITS, DIGITS, min_steps=150, halving=3)
    plan = plan_for_time(300, s, f, cost=DIGITS_COST, halving=3, arms=2, overhead_s=45, max_configs=100)
    assert [r.fidelity.epochs for r in plan.rungs] == [14, 41]
    fast = pd.DataFrame({"train_seconds": [DIGITS_COST.training_s(s) - DIGITS_COST.trial_s] * 4})
    # just started: the search may take its share, the top rung is not limited, its epochs stand
    d = Deadline(PipelineConfig(dataset="digits", time_budget=300), plan, time.perf_counter())
    search_limit = d.limit("search")
    assert 0 < search_limit < 300 and d.limit("rung1") is None
    assert d.limit("random") > search_limit  # asked now, the search is taken as done: a larger share
    assert d.top_epochs(f, fast, s, archs=2, threads=1) == 41
    # 40 s left, and the first rung ran 3x slower than estimated: fewer epochs fit
    late = Deadline(PipelineConfig(dataset="digits", time_budget=300), plan,
                    time.perf_counter() - (300 - STARTUP_S - REPORT_S - 40))
    assert tail_seconds(0.5) == STARTUP_S + REPORT_S and tail_seconds(17) == 17 + REPORT_S
    slow = fast * 3
    epochs = late.top_epochs(f, slow, s, archs=2, threads=1)
    assert 1 <= epochs < 41
    assert late.top_epochs(f, fast, s, archs=2, threads=1) > epochs  # not slowed down: more fit
    # no time budget: nothing is limited
    free = Deadline(PipelineConfig(dataset="digits"), plan, time.perf_counter())
    assert free.limit("search") is None and free.top_epochs(f, slow, s, archs=2, threads=1) == 41


def test_a_time_budgeted_pool_keeps_what_its_plan_can_use():
    from ray_nasrank.pipeline._halving import trim_pool

    plan = plan_fixed(DIGITS, DIGITS, budget=4, rounds=2, rungs=2, halving=3, arms=2)
    pool = [f"c{i}" for i in range(200)]
    kept = trim_pool(PipelineConfig(dataset="digits", time_budget="5m"), plan, pool)
    assert len(kept) == 40 and len(set(kept)) == 40 and kept == [c for c in pool if c in set(kept)]
    assert kept == trim_pool(PipelineConfig(dataset="digits", time_budget="5m"), plan, pool)  # seeded
    assert trim_pool(PipelineConfig(dataset="digits"), plan, pool) == pool  # no time budget: as asked
    assert trim_pool(PipelineConfig(dataset="digits", time_budget="5m"), plan, pool[:30]) == pool[:30]


def test_the_final_plan_scales_the_overheads_by_how_slow_the_start_really_was(tmp_path):
    import json

    from ray_nasrank.pipeline._halving import replan_step

    s, f = adapt(DIGITS, DIGITS, min_steps=150, halving=3)
    cfg = PipelineConfig(dataset="digits", time_budget=300)
    first = plan_for_time(300, s, f, cost=DIGITS_COST, halving=3, arms=2, overhead_s=45, max_configs=100)
    as_estimated = replan_step(cfg, tmp_path, first, s, f, 200, elapsed_s=40, ahead_s=1.0)
    slow = replan_step(cfg, tmp_path, first, s, f, 200, elapsed_s=40, ahead_s=500.0)
    assert slow.cost["experiment_s"] == 5 * DIGITS_COST.experiment_s  # at most 5x
    assert as_estimated.cost["experiment_s"] == DIGITS_COST.experiment_s
    assert slow.budget < as_estimated.budget
    assert json.loads((tmp_path / "plan.json").read_text()) == slow.to_dict()
