"""Ranking metrics, all in one place.

Every function takes the true values and the predicted scores of the same items (higher is
better for both; negate a ``min`` target first, or pass ``mode="min"``).

NDCG uses AceNAS relevance: ``rel = clip((y - q20) / (max - q20), 0, 1) * 20`` with ``q20`` the
20th percentile of the true values being ranked, gain ``2**rel - 1``, discount
``log2(rank + 1)``. Ties in the predicted score are broken by item order (a stable sort), so a
constant predictor scores as the table's row order does.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats

from ray_nasrank._checks import check_mode

ArrayLike = Sequence[float] | np.ndarray


def _pair(y_true: ArrayLike, y_score: ArrayLike, mode: str = "max") -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.float64).ravel()
    s = np.asarray(y_score, dtype=np.float64).ravel()
    if t.shape != s.shape:
        raise ValueError(f"y_true has {t.size} values but y_score has {s.size}")
    if t.size == 0:
        raise ValueError("cannot rank an empty set")
    if not np.all(np.isfinite(t)):
        raise ValueError(f"y_true holds {int((~np.isfinite(t)).sum())} NaN/inf value(s)")
    if not np.all(np.isfinite(s)):
        raise ValueError(f"y_score holds {int((~np.isfinite(s)).sum())} NaN/inf value(s)")
    if check_mode(mode) == "min":
        t, s = -t, -s
    return t, s


def kendall_tau(y_true: ArrayLike, y_score: ArrayLike, mode: str = "max") -> float:
    """Kendall's tau-b (scipy) between the true values and the scores.

    Args:
        y_true: the true values.
        y_score: the predicted scores of the same items, in the same order.
        mode: ``max`` when higher true values are better, ``min`` when lower are.

    Returns:
        Tau in ``[-1, 1]``; 0.0 when either side is constant.

    Raises:
        ValueError: different lengths, an empty set, NaN/inf values or an unknown ``mode``.

    >>> kendall_tau([1, 2, 3], [10, 30, 20])
    0.333...
    """
    t, s = _pair(y_true, y_score, mode)
    tau = stats.kendalltau(t, s).statistic
    return 0.0 if math.isnan(tau) else float(tau)


def spearman(y_true: ArrayLike, y_score: ArrayLike, mode: str = "max") -> float:
    """Spearman's rho (scipy) between the true values and the scores.

    Args:
        y_true: the true values.
        y_score: the predicted scores of the same items, in the same order.
        mode: ``max`` when higher true values are better, ``min`` when lower are.

    Returns:
        Rho in ``[-1, 1]``; 0.0 when either side is constant.

    Raises:
        ValueError: different lengths, an empty set, NaN/inf values or an unknown ``mode``.

    >>> spearman([1, 2, 3], [10, 20, 30])
    1.0
    """
    t, s = _pair(y_true, y_score, mode)
    rho = stats.spearmanr(t, s).statistic
    return 0.0 if math.isnan(rho) else float(rho)


def acenas_relevance(y_true: ArrayLike, mode: str = "max", levels: float = 20.0,
                     quantile: float = 0.2) -> np.ndarray:
    """AceNAS graded relevance in ``[0, levels]`` (see the module docstring).

    Args:
        y_true: the true values.
        mode: ``max`` when higher is better, ``min`` when lower is.
        levels: the relevance of the best item.
        quantile: items at or below this quantile get relevance 0.

    Returns:
        One relevance per item (all 0 when the values are constant).
    """
    t = np.asarray(y_true, dtype=np.float64).ravel()
    if mode == "min":
        t = -t
    lo = np.quantile(t, quantile)
    hi = t.max()
    if hi <= lo:
        return np.zeros_like(t)
    return np.clip((t - lo) / (hi - lo), 0.0, 1.0) * levels


def ranking_order(y_score: np.ndarray) -> np.ndarray:
    """Indices of items from best to worst score, stable for ties.

    Args:
        y_score: one score per item, higher is better.

    Returns:
        The item indices, best first.

    >>> ranking_order([0.2, 0.9, 0.2]).tolist()
    [1, 0, 2]
    """
    return np.argsort(-np.asarray(y_score, dtype=np.float64), kind="stable")


def dcg_at_k(relevance: np.ndarray, order: np.ndarray, k: int) -> float:
    """Discounted cumulative gain of the first ``k`` items of ``order``.

    Args:
        relevance: graded relevance of every item (see :func:`acenas_relevance`).
        order: item indices, best-ranked first (see :func:`ranking_order`).
        k: how many top items count.

    Returns:
        ``sum((2**rel - 1) / log2(rank + 1))`` over the top ``k``.
    """
    top = relevance[order[:k]]
    gains = np.power(2.0, top) - 1.0
    discounts = np.log2(np.arange(2, top.size + 2))
    return float(np.sum(gains / discounts))


def ndcg_at_k(y_true: ArrayLike, y_score: ArrayLike, k: int, mode: str = "max",
              relevance: np.ndarray | None = None) -> float:
    """NDCG@k with AceNAS relevance (or a relevance vector you pass).

    Args:
        y_true: the true values.
        y_score: the predicted scores of the same items, in the same order.
        mode: ``max`` when higher true values are better, ``min`` when lower are.
        k: how many top-scored items count.
        relevance: graded relevance per item (default: :func:`acenas_relevance` of ``y_true``).

    Returns:
        DCG of the scores' top ``k`` over the ideal DCG, in ``[0, 1]`` (0.0 when no item is relevant).

    Raises:
        ValueError: ``k < 1``, or inputs as in :func:`kendall_tau`.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    t, s = _pair(y_true, y_score, mode)
    rel = acenas_relevance(t) if relevance is None else np.asarray(relevance, dtype=np.float64)
    ideal = dcg_at_k(rel, ranking_order(rel), k)
    if ideal == 0:
        return 0.0
    return dcg_at_k(rel, ranking_order(s), k) / ideal


def precision_at_k(y_true: ArrayLike, y_score: ArrayLike, k: int, mode: str = "max") -> float:
    """Share of the predicted top-k that is in the true top-k (true ties at the cut count).

    Args:
        y_true: the true values.
        y_score: the predicted scores of the same items, in the same order.
        mode: ``max`` when higher true values are better, ``min`` when lower are.
        k: size of the top (at most the number of items).

    Returns:
        A share in ``[0, 1]``.

    Raises:
        ValueError: different lengths, an empty set, NaN/inf values or an unknown ``mode``.
    """
    t, s = _pair(y_true, y_score, mode)
    k = min(k, t.size)
    threshold = np.sort(t)[::-1][k - 1]
    pred_top = ranking_order(s)[:k]
    return float(np.mean(t[pred_top] >= threshold))


def best_in_top_k(y_true: ArrayLike, y_score: ArrayLike, k: int, mode: str = "max") -> float:
    """The best true value among the ``k`` top-scored items (in the caller's units).

    Args:
        y_true: the true values.
        y_score: the predicted scores of the same items, in the same order.
        mode: ``max`` when higher true values are better, ``min`` when lower are.
        k: how many top-scored items are looked at.

    Returns:
        The largest (``max``) or smallest (``min``) true value among them.

    Raises:
        ValueError: different lengths, an empty set, NaN/inf values or an unknown ``mode``.

    >>> best_in_top_k([90.0, 94.0, 92.0], [0.1, 0.2, 0.9], k=1)
    92.0
    """
    t, s = _pair(y_true, y_score, mode)
    best = float(np.max(t[ranking_order(s)[:k]]))
    return -best if mode == "min" else best


def regret(y_true: ArrayLike, found: float, mode: str = "max") -> float:
    """How far ``found`` is from the optimum of ``y_true`` (>= 0).

    Args:
        y_true: the true values (NaN ignored).
        found: the value a search reached.
        mode: ``max`` when higher is better, ``min`` when lower is.

    Returns:
        ``max(y_true) - found`` (``found - min(y_true)`` for ``min``).

    Raises:
        ValueError: an unknown ``mode``.
    """
    t = np.asarray(y_true, dtype=np.float64)
    if check_mode(mode) == "max":
        return float(np.nanmax(t) - found)
    return float(found - np.nanmin(t))


def best_so_far(values: Sequence[float | None] | np.ndarray, mode: str = "max") -> np.ndarray:
    """Running best of ``values`` in evaluation order; a failed value never improves it.

    Args:
        values: one value per evaluation; ``None``, NaN or +-inf mark a failed one.
        mode: ``max`` (higher is better) or ``min``.

    Returns:
        The best value so far after each evaluation (NaN until the first success).

    Raises:
        ConfigError: an unknown ``mode``.

    >>> best_so_far([1.0, None, 3.0, 2.0]).tolist()
    [1.0, 1.0, 3.0, 3.0]
    >>> best_so_far(np.array([3.0, np.nan, 1.0, 2.0]), "min").tolist()
    [3.0, 3.0, 1.0, 1.0]
    """
    check_mode(mode)
    v = np.array([np.nan if x is None else x for x in values], dtype=np.float64).ravel()
    signed = np.where(np.isfinite(v), v if mode == "max" else -v, -np.inf)
    run = np.maximum.accumulate(signed) if v.size else signed
    out = run if mode == "max" else -run
    return np.where(np.isfinite(out), out, np.nan)


def ranking_report(y_true: ArrayLike, y_score: ArrayLike, mode: str = "max",
                   ks: Sequence[int] = (10, 50)) -> dict[str, float]:
    """The standard set: Kendall tau, Spearman, NDCG@k and best-in-top-k for each k.

    Args:
        y_true: the true values.
        y_score: the predicted scores of the same items, in the same order.
        mode: ``max`` when higher true values are better, ``min`` when lower are.
        ks: the cut-offs of NDCG and best-in-top-k.

    Returns:
        ``{"kendall_tau", "spearman", "ndcg@<k>", "best_in_top<k>"}`` -> value.

    Raises:
        ValueError: different lengths, an empty set, NaN/inf values or an unknown ``mode``.
    """
    out = {"kendall_tau": kendall_tau(y_true, y_score, mode), "spearman": spearman(y_true, y_score, mode)}
    for k in ks:
        out[f"ndcg@{k}"] = ndcg_at_k(y_true, y_score, k, mode)
    for k in ks:
        out[f"best_in_top{k}"] = best_in_top_k(y_true, y_score, k, mode)
    return out


__all__ = [
    "best_so_far",
    "kendall_tau",
    "spearman",
    "acenas_relevance",
    "ranking_order",
    "dcg_at_k",
    "ndcg_at_k",
    "precision_at_k",
    "best_in_top_k",
    "regret",
    "ranking_report",
]
