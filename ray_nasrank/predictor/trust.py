"""How far to trust the pretrained order: a blend of rankers chosen by cross-validation on the labels.

After fine-tuning, three rankers of every candidate exist: the fine-tuned network (``tuned``),
the weak labels the network was pretrained on (``prior``: their combined normal scores, read from
the pretraining data where the candidate was in it, predicted by the pretrained network
otherwise) and, optionally, gradient-boosted trees fitted on the labels with the encoding and the
weak labels as inputs (``tree``: a stacked model that can learn which weak label to believe where).
Which one ranks best depends on the number of labels and on the weak labels' quality, so the
predictor scores each on the labels out of fold (K-fold: every label is predicted by a model that
did not see it; the prior needs no folds, it never sees a label) and keeps the convex blend of
their standardised scores that ranks the held-out labels best (averaged over the near-best blends,
see :func:`choose_weights`). With 10 labels and a good weak label that blend leans on the prior;
with 100 labels on the fine-tuned network.

With several weak labels the prior is itself a blend: their equal average by default, moved
toward the columns that order the labels best (a weak label never sees a label, so no folds are
needed). With few labels both choices are noisy, so each is shrunk toward a fixed default (equal
columns; a quarter fine-tuned network, three quarters prior) as if that default had been seen on
``prior_labels`` extra labels (:func:`shrink`): estimated combination weights lose to simple
averages when the sample is small, and win when it is not.

>>> import numpy as np
>>> y = np.arange(8.0)
>>> oof = np.stack([np.arange(8.0)[::-1], np.arange(8.0)])  # the first ranker is backwards
>>> choose_weights(oof, y, step=0.5, sharpness=float("inf")).tolist()
[0.0, 1.0]
>>> w = choose_weights(oof, y, step=0.5)  # the near-best blends share the weight
>>> bool(w[1] > 0.9), round(float(w.sum()), 6)
(True, 1.0)
"""

from __future__ import annotations

import itertools
from math import comb

import numpy as np
from scipy import stats

from ray_nasrank.metrics import acenas_relevance, dcg_at_k, ranking_order

#: names of the blended rankers, in the order of the weight vector
COMPONENTS = ("tuned", "prior", "tree")


def fold_ids(n: int, folds: int, seed: int) -> np.ndarray:
    """A fold number in ``[0, folds)`` per item, sizes as equal as possible, seeded shuffle."""
    if folds < 2 or folds > n:
        raise ValueError(f"need 2 <= folds <= items, got folds={folds} for {n} items")
    ids = np.arange(n) % folds
    return np.random.default_rng(seed).permutation(ids)


def validation_score(y: np.ndarray, s: np.ndarray) -> float:
    """How well ``s`` orders ``y`` (higher is better): the mean of Kendall tau and NDCG over all items.

    Both halves match what the ranking benchmark reports: tau for the global order, NDCG with
    AceNAS relevance (the labelled subset's top 80 %, graded) for the top.
    """
    tau = stats.kendalltau(y, s).statistic
    tau = 0.0 if np.isnan(tau) else float(tau)
    rel = acenas_relevance(y)
    ideal = dcg_at_k(rel, ranking_order(rel), rel.size)
    ndcg = dcg_at_k(rel, ranking_order(s), rel.size) / ideal if ideal > 0 else 0.0
    return 0.5 * (tau + ndcg)


def simplex_grid(k: int, step: float) -> np.ndarray:
    """All weight vectors of ``k`` non-negative multiples of ``step`` summing to 1, ``[combos, k]``."""
    if not 0.0 < step <= 1.0:
        raise ValueError(f"trust_step must be in (0, 1], got {step}")
    m = int(round(1.0 / step))
    combos = [c for c in itertools.product(range(m + 1), repeat=k) if sum(c) == m]
    return np.asarray(combos, dtype=np.float64) / m


def grid_step(k: int, step: float, most: int = 500) -> float:
    """The finest grid step, ``step`` or coarser, whose :func:`simplex_grid` over ``k`` rankers has at most ``most`` blends.

    >>> grid_step(4, 0.1), grid_step(5, 0.1)
    (0.1, 0.125)
    """
    m = int(round(1.0 / step))
    while m > 1 and comb(m + k - 1, k - 1) > most:
        m -= 1
    return 1.0 / m


def shrink(w: np.ndarray, default: np.ndarray, n: int, prior_labels: float) -> np.ndarray:
    """``w`` chosen on ``n`` labels, pulled toward ``default`` as if it had been chosen on ``prior_labels`` more.

    >>> shrink(np.array([1.0, 0.0]), np.array([0.5, 0.5]), n=10, prior_labels=10).tolist()
    [0.75, 0.25]
    """
    if prior_labels < 0:
        raise ValueError(f"prior_labels must be >= 0, got {prior_labels}")
    lam = n / (n + prior_labels) if n + prior_labels > 0 else 1.0
    return lam * np.asarray(w, dtype=np.float64) + (1.0 - lam) * np.asarray(default, dtype=np.float64)


def shortlist_cut(scores: np.ndarray, share: float) -> float:
    """The score above which the top ``share`` of ``scores`` lies (``inf``: no shortlist when ``share <= 0``).

    >>> shortlist_cut(np.arange(100.0), 0.05) > 94.0, shortlist_cut(np.arange(100.0), 0.0)
    (True, inf)
    """
    if share >= 1.0:
        raise ValueError(f"the shortlist share must be < 1, got {share}")
    return float(np.quantile(scores, 1.0 - share)) if share > 0 else float("inf")


def choose_weights(oof: np.ndarray, y: np.ndarray, step: float = 0.1, sharpness: float = 5.0) -> np.ndarray:
    """Blend weights (one per row of ``oof``, summing to 1) from how well each blend ranks ``y`` out of fold.

    ``oof[c, i]``: ranker c's standardised out-of-fold score of labelled item i. Every blend of
    :func:`simplex_grid` gets its :func:`validation_score` ``v``; the result is the average of the
    blends weighted by ``exp(sharpness * sqrt(n) * (v - max v))``, a posterior-like average rather
    than the single best blend: with 10 labels the validation score is noisy (its spread shrinks
    like ``1/sqrt(n)``), so near-best blends share the weight; with 100 labels the best one
    dominates. ``sharpness=inf`` takes the best blend alone.
    """
    oof = np.asarray(oof, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if oof.ndim != 2 or oof.shape[1] != y.size:
        raise ValueError(f"oof must be [rankers, {y.size}], got shape {oof.shape}")
    if not sharpness > 0:
        raise ValueError(f"sharpness must be > 0, got {sharpness}")
    grid = simplex_grid(oof.shape[0], step)
    scores = np.array([validation_score(y, b) for b in grid @ oof])
    if np.isinf(sharpness):
        return grid[int(np.argmax(scores))]
    odds = np.exp(sharpness * np.sqrt(y.size) * (scores - scores.max()))
    return odds @ grid / odds.sum()


def fit_tree(x: np.ndarray, y: np.ndarray, seed: int):
    """Gradient-boosted depth-3 trees on ``x`` regressing z-scored ``y`` (scikit-learn).

    100 trees at learning rate 0.1: as good as the ranking benchmark's GBDT baseline (200 at 0.05)
    on the zero-cost table at 10 and 50 labels, in half the time, so it can be refitted per fold.
    (scikit-learn's histogram GBDT is faster but ranks far worse from 10-50 labels.)
    """
    from sklearn.ensemble import GradientBoostingRegressor

    z = (y - y.mean()) / (y.std() if y.std() > 0 else 1.0)
    model = GradientBoostingRegressor(n_estimators=100, max_depth=3, learning_rate=0.1, subsample=0.8,
                                      random_state=seed)
    return model.fit(x, z)


__all__ = ["COMPONENTS", "choose_weights", "fit_tree", "fold_ids", "grid_step", "shortlist_cut", "shrink",
           "simplex_grid", "validation_score"]
