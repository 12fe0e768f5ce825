"""Weak labels for strategies: one standardized score per pool arch (higher is better)."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np
from scipy.stats import rankdata

from ray_nasrank.spaces import EDGES, OPS, Arch, NB201Space, SearchSpace

#: what ``weak=`` accepts: nothing, one array or several named arrays aligned to the pool, or a
#: callable computing either from the pool's archs
WeakSpec = None | Sequence[float] | np.ndarray | Mapping[str, Sequence[float]] | Callable[[list[Arch]], Any]


def resolve_weak(weak: WeakSpec, pool: Sequence[Arch]) -> dict[str, np.ndarray] | None:
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


#: intrinsic labels :func:`intrinsic_weak` computes: the full-size network's params and FLOPs,
#: and SynFlow at initialisation (:func:`ray_nasrank.proxies.shared_synflow`)
INTRINSIC = ("params", "flops", "synflow")
_COST_LABELS = ("params", "flops")
_PER_OP_CACHE: dict[tuple, dict[str, np.ndarray]] = {}
_SYNFLOW_CACHE: dict[tuple, dict[Any, float]] = {}


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


def _synflow(space: NB201Space, archs: list[Arch], proxy_kwargs: dict[str, Any]) -> np.ndarray:
    """Shared-supernet SynFlow per arch, computed once per isomorphism class (and cached per
    process: a benchmark builds one strategy per seed on the same pool); NaN where the output
    does not depend on any weight."""
    from ray_nasrank.proxies import SHARED_SYNFLOW_NET, shared_synflow

    kwargs = {**SHARED_SYNFLOW_NET, **{k: v for k, v in proxy_kwargs.items() if k != "batch_size"}}
    kwargs["input_shape"] = tuple(kwargs["input_shape"])
    cache = _SYNFLOW_CACHE.setdefault(tuple(sorted(kwargs.items())), {})
    keys = [space.iso_key(a) for a in archs]
    todo: dict[Any, Arch] = {}
    for k, a in zip(keys, archs):
        if k not in cache:
            todo.setdefault(k, a)
    if todo:
        values = shared_synflow(list(todo.values()), **kwargs)
        cache.update(zip(todo, values.tolist()))
    out = np.array([cache[k] for k in keys], dtype=np.float64)
    return np.where(np.isfinite(out), out, np.nan)


def intrinsic_weak(space: Any, archs: Sequence[Arch], names: Sequence[str] = INTRINSIC,
                   **proxy_kwargs: Any) -> dict[str, np.ndarray]:
    """Intrinsic weak-label columns of NB201 cells: no training, no data.

    ``params`` and ``flops`` (millions) are the full-size network's cost, which AceNAS pretrains
    on next to the supernet accuracy; only five networks are built whatever the number of archs.
    ``synflow`` is SynFlow at initialisation of each cell as a path of one small weight-sharing
    supernet (:func:`ray_nasrank.proxies.shared_synflow`, about 4 ms per isomorphism class; NaN
    for cells whose output does not depend on their input). Unlike params and FLOPs it tells
    apart cells with the same ops wired differently, e.g. where a skip connection goes.
    ``proxy_kwargs`` (channels, cells_per_stage, input_shape, num_classes) set the network; for
    ``synflow`` they override :data:`~ray_nasrank.proxies.SHARED_SYNFLOW_NET`. Values are cached
    per process.

    Args:
        space: an :class:`~ray_nasrank.spaces.NB201Space`.
        archs: the cells to label.
        names: a subset of :data:`INTRINSIC`.
        **proxy_kwargs: the network's ``channels``, ``cells_per_stage``, ``input_shape``, ``num_classes``.

    Returns:
        One float array per name, aligned to ``archs``.

    Raises:
        ValueError: an unknown name, or a space other than NB201.

    Examples:
        >>> from ray_nasrank.spaces import NB201Space
        >>> space = NB201Space()
        >>> w = intrinsic_weak(space, [("nor_conv_3x3",) * 6, ("none",) * 6], channels=4,
        ...                    cells_per_stage=1, input_shape=(3, 8, 8))
        >>> sorted(w), bool(w["params"][0] > w["params"][1]), bool(np.isnan(w["synflow"][1]))
        (['flops', 'params', 'synflow'], True, True)
    """
    if not isinstance(space, NB201Space):
        raise ValueError(f"intrinsic weak labels {INTRINSIC} are computed for NB201 cells only, not {space!r}")
    if isinstance(names, str):
        names = (names,)
    names = tuple(names)
    unknown = [n for n in names if n not in INTRINSIC]
    if unknown or not names:
        raise ValueError(f"intrinsic weak labels must be a non-empty subset of {INTRINSIC}, got {names!r}")
    archs = [space.validate(a) for a in archs]
    out: dict[str, np.ndarray] = {}
    cost_names = tuple(n for n in names if n in _COST_LABELS)
    if cost_names:
        costs = _per_op_costs(space, cost_names, proxy_kwargs)
        op_id = {op: i for i, op in enumerate(OPS)}
        ids = np.array([[op_id[o] for o in a] for a in archs], dtype=np.int64).reshape(len(archs), len(EDGES))
        out.update({n: costs[n][ids].sum(axis=1) for n in cost_names})
    if "synflow" in names:
        out["synflow"] = _synflow(space, archs, proxy_kwargs)
    return {n: out[n] for n in names}


def model_weak(space: SearchSpace, weak: WeakSpec = None, *, model_fn: Callable[[dict], Any] | None = None,
               input_shape: Sequence[int] | None = None, inputs: Any = None,
               proxies: Sequence[str] | str | None = None, supernet: Any = None,
               config_of: Callable[[Arch], dict] | None = None) -> WeakSpec:
    """``weak`` joined by the weak labels of the user's own model family, as one ``weak=`` value.

    ``model_fn(config) -> nn.Module`` with ``input_shape`` (or ``inputs``) adds the zero-cost
    ``proxies`` (default params, FLOPs, SynFlow) of every candidate's model, computed by
    :class:`~ray_nasrank.proxies.ModelProxies` (a model that fails gets NaN for that candidate,
    recorded in ``.failures`` of the callable's ``proxies`` attribute); ``supernet`` adds a
    trained supernet's labels: a callable ``configs -> dict of arrays`` (or one array, named
    ``supernet``), e.g. :class:`~ray_nasrank.supernet.SupernetWeakLabels`. Candidates reach both
    as configs, ``config_of(arch)`` (default ``space.to_config``). A label of ``weak`` keeps
    its value over a model label of the same name. With neither, ``weak`` is returned as it is.

    >>> import torch
    >>> from ray_nasrank.spaces import CategoricalSpace
    >>> space = CategoricalSpace({"width": [8, 32]})
    >>> fn = model_weak(space, model_fn=lambda c: torch.nn.Linear(4, c["width"]), input_shape=(4,))
    >>> fn([(8,), (32,)])["params"].tolist()
    [4e-05, 0.00016]
    """
    if model_fn is None and supernet is None:
        if input_shape is not None or inputs is not None or proxies is not None:
            raise ValueError("input_shape, inputs and proxies describe the inputs of model_fn; pass model_fn too")
        return weak
    if supernet is not None and not callable(supernet):
        raise TypeError(f"supernet must be a callable configs -> dict of arrays (e.g. SupernetWeakLabels, "
                        f"which evaluates a trained ChoiceSupernet on your data), got {type(supernet).__name__}")
    model = None
    if model_fn is not None:
        from ray_nasrank.proxies import MODEL_PROXIES, ModelProxies

        model = ModelProxies(model_fn, input_shape=input_shape, inputs=inputs,
                             names=MODEL_PROXIES if proxies is None else proxies)
    return _ModelWeak(space, weak, model, supernet, config_of or space.to_config)


class _ModelWeak:
    """The callable :func:`model_weak` returns (pool archs -> dict of arrays)."""

    def __init__(self, space: SearchSpace, weak: WeakSpec, proxies: Any, supernet: Any,
                 config_of: Callable[[Arch], dict]) -> None:
        self.space, self.weak, self.proxies, self.supernet, self.config_of = space, weak, proxies, supernet, config_of

    def __call__(self, archs: Sequence[Arch]) -> dict[str, np.ndarray]:
        archs = list(archs)
        configs = [self.config_of(a) for a in archs]
        out: dict[str, np.ndarray] = {}
        if self.proxies is not None:
            out.update(self.proxies(configs))
        if self.supernet is not None:
            labels = self.supernet(configs)
            out.update(labels if isinstance(labels, Mapping) else {"supernet": labels})
        own = resolve_weak(self.weak, archs)
        return {**out, **(own or {})}


def pretraining_labels(space: Any, pool: Sequence[Arch], weak: WeakSpec,
                       intrinsic: Sequence[str] | None = ()) -> dict[str, np.ndarray] | None:
    """The weak-label columns a predictor is pretrained on: ``weak`` plus the ``intrinsic`` ones.

    A name given in both is taken from ``weak`` (the caller's values win).

    Args:
        space: the search space.
        pool: the candidates the columns are aligned to.
        weak: the caller's weak labels (see :class:`~ray_nasrank.search.NASRankStrategy`).
        intrinsic: names of intrinsic labels (see :func:`intrinsic_weak`); empty for none.

    Returns:
        The columns, or ``None`` when there are none.
    """
    cols = resolve_weak(weak, pool)
    if intrinsic:
        extra = {n: v for n, v in intrinsic_weak(space, pool, tuple(intrinsic)).items()
                 if cols is None or n not in cols}
        cols = {**(cols or {}), **extra}
    return cols
