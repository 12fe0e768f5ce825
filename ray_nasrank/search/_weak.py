"""Weak labels for strategies: one standardized score per pool arch (higher is better)."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np
from scipy.stats import rankdata

from ray_nasrank.spaces import Arch

#: what ``weak=`` accepts: nothing, one array or several named arrays aligned to the pool, or a
#: callable computing either from the pool's archs
WeakSpec = None | Sequence[float] | np.ndarray | Mapping[str, Sequence[float]] | Callable[[list[Arch]], Any]


def weak_columns(weak: WeakSpec, pool: Sequence[Arch]) -> dict[str, np.ndarray] | None:
    """Resolve ``weak`` into named float arrays aligned to ``pool`` (NaN allowed, not inf)."""
    if weak is None:
        return None
    if callable(weak):
        weak = weak(list(pool))
    if isinstance(weak, Mapping):
        cols = dict(weak)
    elif isinstance(weak, (np.ndarray, list, tuple)):
        cols = {"weak": weak}
    else:
        raise TypeError(f"weak must be None, an array, a dict of arrays or a callable, got {type(weak).__name__}")
    if not cols:
        raise ValueError("weak is an empty dict; pass None for no weak labels")
    out = {}
    for name, values in cols.items():
        try:
            arr = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"weak label {name!r} is not numeric") from None
        if arr.shape != (len(pool),):
            raise ValueError(f"weak label {name!r} has shape {arr.shape}, expected ({len(pool)},) aligned to the candidates")
        if np.isinf(arr).any():
            raise ValueError(f"weak label {name!r} holds inf values")
        if np.isnan(arr).all():
            raise ValueError(f"weak label {name!r} is all NaN")
        out[str(name)] = arr
    return out


def weak_score(cols: Mapping[str, np.ndarray] | None) -> np.ndarray | None:
    """Mean of the columns' standardized ranks (NaN counts as the median): one z-like score.

    >>> weak_score({"a": np.array([1.0, 2.0, 3.0]), "b": np.array([3.0, 2.0, 1.0])}).tolist()
    [0.0, 0.0, 0.0]
    """
    if cols is None:
        return None
    zs = []
    for arr in cols.values():
        filled = np.where(np.isnan(arr), np.nanmedian(arr), arr)
        r = rankdata(filled)
        sd = r.std()
        zs.append((r - r.mean()) / sd if sd > 0 else np.zeros_like(r))
    return np.mean(zs, axis=0)
