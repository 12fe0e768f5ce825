"""Weak labels for strategies: one standardized score per pool arch (higher is better)."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np
from scipy.stats import rankdata

from ray_nasrank.spaces import EDGES, OPS, Arch, NB201Space

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


#: intrinsic labels :func:`intrinsic_weak` computes (cost of the full-size network)
INTRINSIC = ("params", "flops")
_PER_OP_CACHE: dict[tuple, dict[str, np.ndarray]] = {}


def _per_op_costs(space: Any, names: tuple[str, ...], proxy_kwargs: dict[str, Any]) -> dict[str, np.ndarray]:
    """Per-edge cost of each op (in ``space.ops`` order) for every name in ``names``.

    Every NB201 edge has the same channels and resolution, so a cell's params/FLOPs are a fixed
    base plus one term per edge that depends on that edge's op alone. Writing the base as a sixth
    of it per edge, a cell's value is ``sum over edges of value(cell of 6 x op) / 6``: five networks
    give every cell's exact value (checked against the direct computation in the tests).
    """
    key = (names, tuple(sorted(proxy_kwargs.items())))
    cached = _PER_OP_CACHE.get(key)
    if cached is None:
        from ray_nasrank.proxies import compute_proxies_many

        n_edges = len(EDGES)
        df = compute_proxies_many([(op,) * n_edges for op in OPS], names,
                                  **{"progress": False, **proxy_kwargs})
        cached = {n: df[n].to_numpy(dtype=np.float64) / n_edges for n in names}
        _PER_OP_CACHE[key] = cached
    return cached


def intrinsic_weak(space: Any, archs: Sequence[Arch], names: Sequence[str] = INTRINSIC,
                   **proxy_kwargs: Any) -> dict[str, np.ndarray]:
    """Params and/or FLOPs (millions) of every arch's full-size network, as weak-label columns.

    They are intrinsic to the architecture (no training, no data), and AceNAS pretrains on them
    next to the supernet accuracy. NB201 cells only; ``proxy_kwargs`` (channels,
    cells_per_stage, input_shape, num_classes) go to :func:`ray_nasrank.proxies.compute_proxies`.
    Only five networks are built, whatever the number of archs, and the per-op costs are cached
    per process.

    Examples:
        >>> from ray_nasrank.spaces import NB201Space
        >>> space = NB201Space()
        >>> w = intrinsic_weak(space, [("nor_conv_3x3",) * 6, ("none",) * 6], channels=4,
        ...                    cells_per_stage=1, input_shape=(3, 8, 8))
        >>> sorted(w), bool(w["params"][0] > w["params"][1])
        (['flops', 'params'], True)
    """
    if not isinstance(space, NB201Space):
        raise ValueError(f"intrinsic weak labels (params, flops) are computed for NB201 cells only, not {space!r}")
    if isinstance(names, str):
        names = (names,)
    names = tuple(names)
    unknown = [n for n in names if n not in INTRINSIC]
    if unknown or not names:
        raise ValueError(f"intrinsic weak labels must be a non-empty subset of {INTRINSIC}, got {names!r}")
    archs = [space.validate(a) for a in archs]
    costs = _per_op_costs(space, names, proxy_kwargs)
    op_id = {op: i for i, op in enumerate(OPS)}
    ids = np.array([[op_id[o] for o in a] for a in archs], dtype=np.int64).reshape(len(archs), len(EDGES))
    return {n: costs[n][ids].sum(axis=1) for n in names}


def pretraining_labels(space: Any, pool: Sequence[Arch], weak: WeakSpec,
                       intrinsic: Sequence[str] | None = ()) -> dict[str, np.ndarray] | None:
    """The weak-label columns a predictor is pretrained on: ``weak`` plus the ``intrinsic`` ones.

    A name given in both is taken from ``weak`` (the caller's values win).
    """
    cols = weak_columns(weak, pool)
    if intrinsic:
        extra = {n: v for n, v in intrinsic_weak(space, pool, tuple(intrinsic)).items()
                 if cols is None or n not in cols}
        cols = {**(cols or {}), **extra}
    return cols
