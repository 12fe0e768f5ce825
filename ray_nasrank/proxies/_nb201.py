"""NB201's intrinsic weak labels, fast and exact: the ``NB201Space.intrinsic_weak`` hook.

Every NB201 edge has the same channels and resolution, so a cell's params/FLOPs are a fixed base
plus one term per edge that depends on that edge's op alone: five networks give every cell's
exact value. SynFlow is each cell's path through one small shared supernet
(:func:`~ray_nasrank.proxies.shared_synflow`), computed once per isomorphism class. Both are
cached per process (a benchmark builds one strategy per seed on the same pool).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ._compute import compute_proxies_many
from ._shared import SHARED_SYNFLOW_NET, shared_synflow

#: the labels :func:`nb201_intrinsic` computes
NB201_INTRINSIC: tuple[str, ...] = ("params", "flops", "synflow")
_COST_LABELS = ("params", "flops")
_PER_OP_CACHE: dict[tuple, dict[str, np.ndarray]] = {}
_SYNFLOW_CACHE: dict[tuple, dict[Any, float]] = {}


def _per_op_costs(ops: Sequence[str], n_edges: int, names: tuple[str, ...],
                  proxy_kwargs: dict[str, Any]) -> dict[str, np.ndarray]:
    """Per-edge cost of each op (in ``ops`` order) for every name in ``names``: a sixth of the
    value of the cell with that op on all edges (the base cost split evenly over the edges)."""
    key = (names, tuple(sorted(proxy_kwargs.items())))
    cached = _PER_OP_CACHE.get(key)
    if cached is None:
        df = compute_proxies_many([(op,) * n_edges for op in ops], names, **{"progress": False, **proxy_kwargs})
        cached = {n: df[n].to_numpy(dtype=np.float64) / n_edges for n in names}
        _PER_OP_CACHE[key] = cached
    return cached


def _synflow(space: Any, archs: list, proxy_kwargs: dict[str, Any]) -> np.ndarray:
    kwargs = {**SHARED_SYNFLOW_NET, **{k: v for k, v in proxy_kwargs.items() if k != "batch_size"}}
    kwargs["input_shape"] = tuple(kwargs["input_shape"])
    cache = _SYNFLOW_CACHE.setdefault(tuple(sorted(kwargs.items())), {})
    keys = [space.iso_key(a) for a in archs]
    todo: dict[Any, Any] = {}
    for k, a in zip(keys, archs):
        if k not in cache:
            todo.setdefault(k, a)
    if todo:
        values = shared_synflow(list(todo.values()), **kwargs)
        cache.update(zip(todo, values.tolist()))
    out = np.array([cache[k] for k in keys], dtype=np.float64)
    return np.where(np.isfinite(out), out, np.nan)


def nb201_intrinsic(space: Any, archs: Sequence[Any], names: Sequence[str] = NB201_INTRINSIC,
                    **proxy_kwargs: Any) -> dict[str, np.ndarray]:
    """Intrinsic weak-label columns of NB201 cells (see the module docstring); NaN SynFlow for
    cells whose output does not depend on their input. ``proxy_kwargs`` (channels,
    cells_per_stage, input_shape, num_classes) set the network; for ``synflow`` they override
    :data:`~ray_nasrank.proxies.SHARED_SYNFLOW_NET`.

    Args:
        space: the NB201 space the archs belong to.
        archs: the archs (anything ``space.validate`` accepts).
        names: any of ``"params"``, ``"flops"`` and ``"synflow"``.
        **proxy_kwargs: ``channels``, ``cells_per_stage``, ``input_shape``, ``num_classes``.

    Returns:
        One float array per name, aligned to ``archs``.

    Raises:
        ValueError: an arch that is not a valid NB201 cell.
        KeyError: a name other than ``params``, ``flops`` and ``synflow``.
    """
    from ray_nasrank.spaces import EDGES, OPS

    names = (names,) if isinstance(names, str) else tuple(names)
    archs = [space.validate(a) for a in archs]
    out: dict[str, np.ndarray] = {}
    cost_names = tuple(n for n in names if n in _COST_LABELS)
    if cost_names:
        costs = _per_op_costs(OPS, len(EDGES), cost_names, proxy_kwargs)
        op_id = {op: i for i, op in enumerate(OPS)}
        ids = np.array([[op_id[o] for o in a] for a in archs], dtype=np.int64).reshape(len(archs), len(EDGES))
        out.update({n: costs[n][ids].sum(axis=1) for n in cost_names})
    if "synflow" in names:
        out["synflow"] = _synflow(space, archs, proxy_kwargs)
    return {n: out[n] for n in names}
