import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ray_nasrank import metrics as M


def test_ndcg_hand_computed():
    # 5 items; q20 = 20th percentile of [1,2,3,4,5] = 1.8, max = 5
    y = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    rel = M.acenas_relevance(y)
    expected_rel = np.clip((y - 1.8) / (5 - 1.8), 0, 1) * 20
    assert np.allclose(rel, expected_rel)
    # predicted order: items 3, 4, 2 (0-based) for k = 3
    score = np.array([0.0, 0.1, 0.5, 0.9, 0.8])
    gains = 2 ** expected_rel - 1
    dcg = gains[3] / math.log2(2) + gains[4] / math.log2(3) + gains[2] / math.log2(4)
    idcg = gains[4] / math.log2(2) + gains[3] / math.log2(3) + gains[2] / math.log2(4)
    assert M.ndcg_at_k(y, score, 3) == pytest.approx(dcg / idcg)
    assert M.ndcg_at_k(y, y, 3) == pytest.approx(1.0)


def test_mode_min_flips_everything():
    y = np.array([5.0, 1.0, 3.0, 2.0])
    s = np.array([0.1, 0.9, 0.2, 0.5])  # predicts 1 best, matches a 'min' target
    assert M.kendall_tau(y, s, mode="min") == pytest.approx(M.kendall_tau(y, s))
    assert M.kendall_tau(y, -s) == pytest.approx(-M.kendall_tau(y, s))
    assert M.ndcg_at_k(y, -s, 2, mode="min") == pytest.approx(M.ndcg_at_k(-y, s, 2))
    assert M.best_in_top_k(y, -s, 1, mode="min") == 1.0
    assert M.regret(y, 2.0, mode="min") == 1.0
    assert M.regret(y, 3.0, mode="max") == 2.0


def test_correlations_and_precision():
    y = np.arange(10.0)
    assert M.kendall_tau(y, y) == pytest.approx(1.0)
    assert M.spearman(y, -y) == pytest.approx(-1.0)
    assert M.kendall_tau(y, np.ones(10)) == 0.0
    assert M.precision_at_k(y, y, 3) == 1.0
    assert M.precision_at_k(y, -y, 3) == 0.0
    assert M.best_in_top_k(y, -y, 2) == 1.0


def test_report_keys():
    rng = np.random.default_rng(0)
    y, s = rng.random(100), rng.random(100)
    r = M.ranking_report(y, s)
    assert set(r) == {"kendall_tau", "spearman", "ndcg@10", "ndcg@50", "best_in_top10", "best_in_top50"}


@pytest.mark.parametrize(
    "y, s, needle",
    [([1, 2], [1], "2 values but y_score has 1"), ([], [], "empty"), ([1, float("nan")], [1, 2], "NaN"),
     ([1, 2], [1, float("inf")], "y_score holds 1")],
)
def test_bad_inputs(y, s, needle):
    with pytest.raises(ValueError, match=needle):
        M.kendall_tau(y, s)
    with pytest.raises(ValueError, match="k must be"):
        M.ndcg_at_k([1, 2], [1, 2], 0)
    with pytest.raises(ValueError, match="mode"):
        M.kendall_tau([1, 2], [1, 2], mode="up")


@given(st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=40), st.integers(0, 2**31 - 1))
def test_ndcg_bounded_and_perfect_is_one(values, seed):
    y = np.array(values)
    s = np.random.default_rng(seed).random(y.size)
    n = M.ndcg_at_k(y, s, 10)
    assert 0.0 <= n <= 1.0 + 1e-12
    if np.ptp(y) > 0:
        assert M.ndcg_at_k(y, y, 10) == pytest.approx(1.0)


def test_reference_figures_on_nb201(nb201_bench):
    b = nb201_bench
    assert M.kendall_tau(b.targets, b.weak["supernet_oneshot_acc"]) == pytest.approx(0.484, abs=1e-3)
    assert M.ndcg_at_k(b.targets, b.weak["supernet_oneshot_acc"], 50) == pytest.approx(0.008, abs=1e-3)
    assert M.ndcg_at_k(b.targets, b.weak["supernet_fewshot_acc"], 50) == pytest.approx(0.106, abs=1e-3)
