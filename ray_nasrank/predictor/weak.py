"""Weak labels: validation and normalisation before pretraining.

Weak labels come in any unit (accuracy in %, FLOPs, milliseconds, proxy scores spanning
decades), so each column is turned into comparable numbers first: ``rank`` maps the values to
normal scores (robust to outliers and monotone transforms), ``zscore`` standardises them.
Missing values (NaN) stay NaN and are masked out of the loss.

>>> import numpy as np
>>> names, w = as_weak_matrix({"acc": [1.0, 3.0, np.nan, 2.0]}, 4)
>>> names, np.round(normalise_weak(w, "rank")[:, 0], 2).tolist()
(['acc'], [-0.97, 0.97, nan, 0.0])
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
from scipy import stats

WeakInput = Mapping[str, np.ndarray] | np.ndarray


def as_weak_matrix(weak: WeakInput, n: int) -> tuple[list[str], np.ndarray]:
    """``(names, matrix[n, m])`` from a dict of columns or a 1-D/2-D array, checked."""
    if isinstance(weak, Mapping):
        if not weak:
            raise ValueError("weak labels: the dict is empty; pass at least one column")
        names = [str(k) for k in weak]
        cols = [np.asarray(v, dtype=np.float64).ravel() for v in weak.values()]
    else:
        arr = np.asarray(weak, dtype=np.float64)
        if arr.ndim == 1:
            names, cols = ["weak"], [arr]
        elif arr.ndim == 2:
            names = [f"weak{j}" for j in range(arr.shape[1])]
            cols = [arr[:, j] for j in range(arr.shape[1])]
        else:
            raise ValueError(f"weak labels must be a dict, a 1-D or a 2-D array, got shape {arr.shape}")
    for name, col in zip(names, cols):
        if col.size != n:
            raise ValueError(f"weak label {name!r} has {col.size} values for {n} architectures")
        if np.isinf(col).any():
            raise ValueError(f"weak label {name!r} holds inf at row {int(np.flatnonzero(np.isinf(col))[0])}")
        if np.isnan(col).all():
            raise ValueError(f"weak label {name!r} is missing (NaN) for every architecture")
    return names, np.stack(cols, axis=1)


def normalise_weak(matrix: np.ndarray, how: str = "rank") -> np.ndarray:
    """Each column to normal scores (``rank``) or z-scores (``zscore``); NaN stays NaN."""
    if how not in ("rank", "zscore"):
        raise ValueError(f"weak_transform must be 'rank' or 'zscore', got {how!r}")
    out = np.full(matrix.shape, np.nan, dtype=np.float64)
    for j in range(matrix.shape[1]):
        col = matrix[:, j]
        ok = ~np.isnan(col)
        v = col[ok]
        if how == "rank":
            r = stats.rankdata(v, method="average")
            out[ok, j] = stats.norm.ppf((r - 0.5) / v.size)
        else:
            sd = v.std()
            out[ok, j] = (v - v.mean()) / sd if sd > 0 else 0.0
    return out


def combined_target(normalised: np.ndarray) -> np.ndarray:
    """Row means over the available (non-NaN) columns; NaN where a row has none."""
    ok = ~np.isnan(normalised)
    counts = ok.sum(axis=1)
    total = np.where(ok, normalised, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, total / np.maximum(counts, 1), np.nan)


__all__ = ["WeakInput", "as_weak_matrix", "normalise_weak", "combined_target"]
