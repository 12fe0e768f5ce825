"""Gradient-boosted trees that start from the prior: the blend's fourth ranker (LightGBM).

The stacked trees of the trust blend (:func:`ray_nasrank.predictor.trust.fit_tree`) learn the
labels from scratch, with the weak labels among their inputs; with 10 labels they learn little.
These trees instead start from the prior's own order (LightGBM's ``init_score``: the standardised
prior, the combined weak labels) and only learn the labels' corrections to it, with the prior also
among the inputs so a split can say where to believe it. With few labels the trees can only
correct the prior in a few places, so the order stays largely the prior's; with many they move
as far as the labels take them.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(60, 3))
>>> prior = x[:, 0]
>>> y = x[:, 0] + 0.5 * x[:, 1]          # the prior is half the story
>>> model = fit_boost(x, y, prior, seed=0)
>>> s = boost_score(model, x, prior)
>>> bool(np.corrcoef(s, y)[0, 1] > np.corrcoef(prior, y)[0, 1])
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: LightGBM settings: small trees that can split on a handful of labels (``min_data_in_leaf`` 2,
#: one bin per distinct value), one thread, deterministic
BOOST_PARAMS: dict[str, Any] = {
    "objective": "l2", "learning_rate": 0.05, "num_leaves": 7, "min_data_in_leaf": 2,
    "min_sum_hessian_in_leaf": 1e-3, "min_data_in_bin": 1, "feature_fraction": 0.8, "bagging_fraction": 0.8,
    "bagging_freq": 1, "lambda_l2": 1.0, "num_threads": 1, "deterministic": True, "force_col_wise": True,
    "verbose": -1,
}
#: boosting rounds
BOOST_ROUNDS = 100


def fit_boost(x: np.ndarray, y: np.ndarray, init: np.ndarray, *, seed: int) -> Any:
    """LightGBM trees on ``x`` regressing z-scored ``y`` (higher is better), boosted from ``init``.

    Args:
        x: inputs of the labelled items, ``[n, features]`` (the prior among them).
        y: their labels, higher is better.
        init: the prior's standardised score of each item, where boosting starts.
        seed: LightGBM's seed (bagging and feature sampling).

    Returns:
        The ``lightgbm.Booster``; :func:`boost_score` scores items with it.
    """
    import lightgbm as lgb

    y = np.asarray(y, dtype=np.float64)
    z = (y - y.mean()) / (y.std() if y.std() > 0 else 1.0)
    # a copy: LightGBM warns about (and doubles the memory of) views into larger arrays
    data = lgb.Dataset(np.array(x, dtype=np.float64, copy=True), z, init_score=np.array(init, dtype=np.float64),
                       free_raw_data=False)
    return lgb.train({**BOOST_PARAMS, "seed": int(seed)}, data, num_boost_round=BOOST_ROUNDS)


def boost_score(model: Any, x: np.ndarray, init: np.ndarray) -> np.ndarray:
    """The boosted trees' score of items with inputs ``x`` and prior ``init`` (the start plus the trees)."""
    return np.asarray(init, dtype=np.float64) + model.predict(np.asarray(x, dtype=np.float64))


__all__ = ["BOOST_PARAMS", "BOOST_ROUNDS", "boost_score", "fit_boost"]
