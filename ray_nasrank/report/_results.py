"""The results table every report is built from, and checks on it.

One row per evaluated architecture (a from-scratch training):

=================  ==========================================================================
column             meaning
=================  ==========================================================================
``arch``           the architecture as ``space.to_string`` (NB201: ``|op~0|+|...|``)
``order``          1-based position in the order trainings finished (x axis of best-so-far)
``round``          search round that proposed it (the ranker is fine-tuned between rounds)
``predicted``      the ranker's score when it was proposed (NaN when not ranked, e.g. a user point)
``weak_<name>``    weak label(s) of the architecture (e.g. ``weak_supernet``), NaN if unknown
metric column      the true metric the search optimised (``valid_acc`` by default)
others             optional: ``test_acc``, ``trial_id``, ``train_seconds``, ...
=================  ==========================================================================

>>> import pandas as pd
>>> df = pd.DataFrame({"arch": ["a", "b"], "order": [1, 2], "round": [0, 0],
...                    "predicted": [0.3, 0.1], "valid_acc": [80.0, 85.0]})
>>> check_results(df, "valid_acc").shape
(2, 5)
>>> best_row(df, "valid_acc", "max")["arch"]
'b'
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ray_nasrank._checks import check_mode

__all__ = ["REQUIRED_COLUMNS", "WEAK_PREFIX", "check_results", "best_row", "weak_columns"]

REQUIRED_COLUMNS: tuple[str, ...] = ("arch", "order", "round", "predicted")
WEAK_PREFIX = "weak_"


def check_results(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Validate a results table and return it sorted by ``order`` (a copy).

    Args:
        df: one row per training with the ``REQUIRED_COLUMNS`` (``arch``, ``order``, ``round``,
            ``predicted``) and ``metric``.
        metric: the column trainings are scored by.

    Returns:
        A copy of ``df`` sorted by ``order``, with a fresh index.

    Raises:
        TypeError: ``df`` is not a DataFrame.
        ValueError: ``metric`` is not a column name, a required column is missing, the table is
            empty, ``order``/``round``/``predicted``/``metric`` is not numeric, or ``order`` repeats.
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"results must be a pandas DataFrame, got {type(df).__name__}")
    if not isinstance(metric, str) or not metric:
        raise ValueError(f"metric must be a column name, got {metric!r}")
    missing = [c for c in (*REQUIRED_COLUMNS, metric) if c not in df.columns]
    if missing:
        raise ValueError(f"results table has no column(s) {missing}; it has {list(df.columns)}")
    if df.empty:
        raise ValueError("results table is empty: no architecture was evaluated")
    for col in ("order", "round", "predicted", metric):
        if not pd.api.types.is_numeric_dtype(df[col]):
            raise ValueError(f"results column {col!r} must be numeric, got dtype {df[col].dtype}")
    if df["order"].duplicated().any():
        dup = df.loc[df["order"].duplicated(), "order"].iloc[0]
        raise ValueError(f"results column 'order' repeats the value {dup!r}; each training has one position")
    return df.sort_values("order", kind="stable").reset_index(drop=True)


def weak_columns(df: pd.DataFrame) -> list[str]:
    """The ``weak_*`` columns of a results table.

    Args:
        df: a results table.

    Returns:
        The names of its columns that start with ``weak_``, in table order.
    """
    return [c for c in df.columns if isinstance(c, str) and c.startswith(WEAK_PREFIX)]


def best_row(df: pd.DataFrame, metric: str, mode: str = "max") -> pd.Series:
    """The row with the best finite ``metric`` (first one on ties).

    Args:
        df: a results table.
        metric: the column to rank by.
        mode: ``"max"`` or ``"min"``: which direction is better.

    Returns:
        That row.

    Raises:
        ValueError: no row has a finite ``metric``, or an unknown ``mode``.
    """
    check_mode(mode)
    values = pd.to_numeric(df[metric], errors="coerce").to_numpy(dtype=np.float64)
    ok = np.isfinite(values)
    if not ok.any():
        raise ValueError(f"no evaluated architecture has a finite {metric!r}: every training failed")
    signed = np.where(ok, values if mode == "max" else -values, -np.inf)
    return df.iloc[int(np.argmax(signed))]


def weak_taus(df: pd.DataFrame, metric: str = "valid_acc") -> dict[str, float | None]:
    """Kendall's tau (:func:`scipy.stats.kendalltau`, tau-b) of each ``weak_*`` column against
    ``metric`` over the rows where both are finite; ``None`` with fewer than 3 such rows or a
    constant column. 1: the weak label orders the trained cells as their true accuracy does;
    0: no better than a random order; -1: reversed.

    Args:
        df: a results table.
        metric: the true metric the weak labels are compared with.

    Returns:
        Tau rounded to 3 decimals (or ``None``) by ``weak_*`` column.

    >>> weak_taus(pd.DataFrame({"weak_a": [1, 2, 3, 4], "weak_b": [4, 3, 2, 1], "valid_acc": [10, 20, 30, 40]}))
    {'weak_a': 1.0, 'weak_b': -1.0}
    """
    from scipy.stats import kendalltau

    out: dict[str, float | None] = {}
    y = pd.to_numeric(df[metric], errors="coerce").to_numpy(dtype=np.float64)
    for col in weak_columns(df):
        w = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=np.float64)
        ok = np.isfinite(w) & np.isfinite(y)
        if ok.sum() < 3 or np.ptp(w[ok]) == 0 or np.ptp(y[ok]) == 0:
            out[col] = None
            continue
        out[col] = round(float(kendalltau(w[ok], y[ok]).statistic), 3)
    return out
