"""Weak labels for strategies: one standardized score per pool arch (higher is better)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from scipy.stats import rankdata

from ray_nasrank.spaces import Arch, SearchSpace

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


def weak_rank_score(cols: Mapping[str, np.ndarray] | None) -> np.ndarray | None:
    """Mean of the columns' standardized ranks (NaN counts as the median): one z-like score.

    >>> weak_rank_score({"a": np.array([1.0, 2.0, 3.0]), "b": np.array([3.0, 2.0, 1.0])}).tolist()
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


#: the intrinsic labels NB201 offers (the default of :func:`intrinsic_weak`): the full-size
#: network's params and FLOPs, and SynFlow at initialisation
INTRINSIC = ("params", "flops", "synflow")


def intrinsic_weak(space: SearchSpace, archs: Sequence[Arch], names: Sequence[str] | None = None,
                   **proxy_kwargs: Any) -> dict[str, np.ndarray]:
    """Intrinsic weak-label columns: labels a space computes by itself, no training, no data
    (its ``intrinsic_weak`` hook; the names it offers are ``space.intrinsic_names``).

    On NB201 (:func:`ray_nasrank.proxies.nb201_intrinsic`): ``params`` and ``flops`` (millions)
    are the full-size network's cost, which AceNAS pretrains on next to the supernet accuracy;
    only five networks are built whatever the number of archs. ``synflow`` is SynFlow at
    initialisation of each cell as a path of one small weight-sharing supernet (about 4 ms per
    isomorphism class; NaN for cells whose output does not depend on their input). Unlike params
    and FLOPs it tells apart cells with the same ops wired differently, e.g. where a skip
    connection goes. ``proxy_kwargs`` (channels, cells_per_stage, input_shape, num_classes) set
    the network; values are cached per process. A space without intrinsic labels (your own
    model family) gets its weak labels from ``model_fn=`` instead (:func:`model_weak`).

    Args:
        space: a space with intrinsic labels (``space.intrinsic_names``), e.g. an
            :class:`~ray_nasrank.spaces.NB201Space`.
        archs: the archs to label.
        names: a subset of ``space.intrinsic_names`` (default: all of them; NB201's are
            :data:`INTRINSIC`).
        **proxy_kwargs: options of the space's hook (NB201: the network's ``channels``,
            ``cells_per_stage``, ``input_shape``, ``num_classes``).

    Returns:
        One float array per name, aligned to ``archs``.

    Raises:
        ValueError: an unknown name, or a space that computes no intrinsic labels.

    Examples:
        >>> from ray_nasrank.spaces import NB201Space
        >>> space = NB201Space()
        >>> w = intrinsic_weak(space, [("nor_conv_3x3",) * 6, ("none",) * 6], channels=4,
        ...                    cells_per_stage=1, input_shape=(3, 8, 8))
        >>> sorted(w), bool(w["params"][0] > w["params"][1]), bool(np.isnan(w["synflow"][1]))
        (['flops', 'params', 'synflow'], True, True)
    """
    offered = tuple(space.intrinsic_names)
    if not offered:
        raise ValueError(f"{space!r} computes no intrinsic weak labels (NB201 cells do: {INTRINSIC}); "
                         "give your model family as weak=WeakLabels(model_fn=...) for zero-cost labels of any "
                         "space")
    names = offered if names is None else (names,) if isinstance(names, str) else tuple(names)
    unknown = [n for n in names if n not in offered]
    if unknown or not names:
        raise ValueError(f"intrinsic weak labels of {space!r} must be a non-empty subset of {offered}, got {names!r}")
    out = space.intrinsic_weak([space.validate(a) for a in archs], names, **proxy_kwargs)
    if out is None:
        raise ValueError(f"{space!r} names intrinsic labels {offered} but its intrinsic_weak hook computed none")
    return {n: np.asarray(out[n], dtype=np.float64) for n in names}


def _check_model_inputs(model_fn: Any, input_shape: Any, inputs: Any, proxies: Any, supernet: Any) -> None:
    if model_fn is None and (input_shape is not None or inputs is not None or proxies is not None):
        raise ValueError("input_shape, inputs and proxies describe the inputs of model_fn; pass model_fn too")
    if supernet is not None and not callable(supernet):
        raise TypeError(f"supernet must be a callable configs -> dict of arrays (e.g. SupernetWeakLabels, "
                        f"which evaluates a trained ChoiceSupernet on your data), got {type(supernet).__name__}")


@dataclass(frozen=True, eq=False)
class WeakLabels:
    """Where a search's weak labels come from, as the one ``weak=`` value of NASRank's strategy,
    Tune searcher and Optuna sampler.

    Labels you already have (``given``), the zero-cost proxies of your own model family
    (``model_fn``, scored on ``input_shape`` or ``inputs``) and a trained supernet's labels
    (``supernet``) are joined into one set of pretraining labels (:func:`model_weak`); a label
    of ``given`` keeps its value over a computed one of the same name. A plain dict, array or
    callable passed as ``weak=`` means ``WeakLabels(given=...)``.

    Args:
        given: labels you already have: a dict of arrays or one array aligned to the candidates,
            or a callable ``archs -> dict of arrays``.
        model_fn: ``config -> nn.Module``, your model family; each candidate's model is scored
            with the zero-cost ``proxies``.
        input_shape: one model input's shape without the batch dimension.
        inputs: a real batch instead of ``input_shape`` (a tensor or an ``(x, y)`` pair).
        proxies: the zero-cost proxies of ``model_fn`` (default
            :data:`~ray_nasrank.proxies.MODEL_PROXIES`).
        supernet: a callable ``configs -> dict of arrays`` (or one array), e.g.
            :class:`~ray_nasrank.supernet.SupernetWeakLabels`.

    Raises:
        ValueError: ``input_shape``, ``inputs`` or ``proxies`` without ``model_fn``.
        TypeError: a ``supernet`` that is not callable.

    >>> import torch
    >>> from ray_nasrank.spaces import CategoricalSpace
    >>> weak = WeakLabels(model_fn=lambda c: torch.nn.Linear(4, c["width"]), input_shape=(4,))
    >>> weak.resolve(CategoricalSpace({"width": [8, 32]}))([(8,), (32,)])["params"].tolist()
    [4e-05, 0.00016]
    """

    given: WeakSpec = None
    model_fn: Callable[[dict], Any] | None = None
    input_shape: Sequence[int] | None = None
    inputs: Any = None
    proxies: Sequence[str] | None = None
    supernet: Any = None

    def __post_init__(self) -> None:
        if isinstance(self.given, WeakLabels):
            raise TypeError("given must be labels (a dict, an array or a callable), not another WeakLabels")
        _check_model_inputs(self.model_fn, self.input_shape, self.inputs, self.proxies, self.supernet)

    @classmethod
    def of(cls, weak: "WeakSpec | WeakLabels") -> "WeakLabels":
        """``weak`` itself when it is a ``WeakLabels``, else ``WeakLabels(given=weak)``."""
        return weak if isinstance(weak, WeakLabels) else cls(given=weak)

    @property
    def computed(self) -> bool:
        """Whether labels are computed here (a ``model_fn`` or a ``supernet``), not only given."""
        return self.model_fn is not None or self.supernet is not None

    def resolve(self, space: SearchSpace, config_of: Callable[[Arch], dict] | None = None) -> WeakSpec:
        """The labels as one value the strategies resolve on their candidates (see :func:`model_weak`).

        Args:
            space: the space of the candidates.
            config_of: ``arch -> config`` handed to ``model_fn`` and ``supernet`` (default ``space.to_config``).

        Returns:
            ``given`` when nothing is computed, else a callable ``archs -> dict of arrays``.
        """
        return model_weak(space, self.given, model_fn=self.model_fn, input_shape=self.input_shape,
                          inputs=self.inputs, proxies=self.proxies, supernet=self.supernet, config_of=config_of)


def model_weak(space: SearchSpace, weak: WeakSpec = None, *, model_fn: Callable[[dict], Any] | None = None,
               input_shape: Sequence[int] | None = None, inputs: Any = None,
               proxies: Sequence[str] | str | None = None, supernet: Any = None,
               config_of: Callable[[Arch], dict] | None = None) -> WeakSpec:
    """``weak`` joined by the weak labels of the user's own model family, as one ``weak=`` value.

    ``model_fn(config) -> nn.Module`` with ``input_shape`` (or ``inputs``) adds the zero-cost
    ``proxies`` (default params and SNIP, :data:`~ray_nasrank.proxies.MODEL_PROXIES`) of every candidate's model, computed by
    :class:`~ray_nasrank.proxies.ModelProxies` (a model that fails gets NaN for that candidate,
    recorded in ``.failures`` of the callable's ``proxies`` attribute); ``supernet`` adds a
    trained supernet's labels: a callable ``configs -> dict of arrays`` (or one array, named
    ``supernet``), e.g. :class:`~ray_nasrank.supernet.SupernetWeakLabels`. Candidates reach both
    as configs, ``config_of(arch)`` (default ``space.to_config``). A label of ``weak`` keeps
    its value over a model label of the same name. With neither, ``weak`` is returned as it is.

    Args:
        space: the space of the candidates.
        weak: the caller's own weak labels (any form the strategies take).
        model_fn: ``config -> nn.Module``, the model family.
        input_shape: one model input's shape without the batch dimension.
        inputs: a real batch instead (a tensor or an ``(x, y)`` pair).
        proxies: the zero-cost proxies of ``model_fn`` (default :data:`~ray_nasrank.proxies.MODEL_PROXIES`).
        supernet: a callable ``configs -> dict of arrays`` (or one array).
        config_of: ``arch -> config`` handed to ``model_fn`` and ``supernet``.

    Returns:
        ``weak`` itself when neither ``model_fn`` nor ``supernet`` is given, else a callable
        ``archs -> dict of arrays`` (its ``proxies`` attribute holds the
        :class:`~ray_nasrank.proxies.ModelProxies` and their failures).

    Raises:
        ValueError: ``input_shape``/``inputs``/``proxies`` without ``model_fn``.
        TypeError: a ``supernet`` that is not callable.

    >>> import torch
    >>> from ray_nasrank.spaces import CategoricalSpace
    >>> space = CategoricalSpace({"width": [8, 32]})
    >>> fn = model_weak(space, model_fn=lambda c: torch.nn.Linear(4, c["width"]), input_shape=(4,))
    >>> fn([(8,), (32,)])["params"].tolist()
    [4e-05, 0.00016]
    """
    _check_model_inputs(model_fn, input_shape, inputs, proxies, supernet)
    if model_fn is None and supernet is None:
        return weak
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
            from ray_nasrank.proxies import drop_missing_columns

            out.update(drop_missing_columns(self.proxies(configs)))
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
