"""Turn a weak-label source (a supernet actor, a callable or a dict) into what a strategy takes.

Strategies of :mod:`ray_nasrank.search` accept ``weak`` as ``dict[name, array aligned to the
candidates]`` or as a callable ``archs -> dict``. A :class:`SupernetActor` handle becomes such a
callable: it asks the actor when the actor says it is ready and otherwise uses a zero-cost
fallback, so a search never waits for a supernet that is still training.

Example::

    weak = resolve_weak_source(actor, space)          # callable archs -> {"supernet": array}
    labels = weak(space.sample_many(10, rng=0))
"""

from __future__ import annotations

import logging
import math
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ray_nasrank.spaces import Arch, SearchSpace

logger = logging.getLogger(__name__)

WeakFn = Callable[[Sequence[Arch]], dict]

#: zero-cost proxy used when a supernet actor is not ready and no fallback is given
DEFAULT_PROXY = "params"


def is_actor_handle(obj: Any) -> bool:
    try:
        from ray.actor import ActorHandle
    except ImportError:  # pragma: no cover - this subpackage needs Ray anyway
        return False
    return isinstance(obj, ActorHandle)


def _as_label_dict(value: Any, n: int, default_name: str) -> dict[str, np.ndarray]:
    """Check and normalise what a weak-label callable returned."""
    if isinstance(value, Mapping):
        items = dict(value)
    else:
        items = {default_name: value}
    if not items:
        raise ValueError("a weak-label source returned no labels")
    out = {}
    for name, arr in items.items():
        a = np.asarray(arr, dtype=np.float64).reshape(-1)
        if a.shape[0] != n:
            raise ValueError(f"weak label {name!r} has {a.shape[0]} values for {n} architectures")
        out[str(name)] = a
    return out


#: proxies that depend only on how many edges use each op (every NB201 edge has the same channels
#: and resolution), so one representative per op-count vector (210 of them) gives every arch's value
OPCOUNT_PROXIES = frozenset({"params", "flops"})


def proxy_weak_fn(space: SearchSpace, names: Sequence[str] = (DEFAULT_PROXY,), model_fn: Any = None,
                  input_shape: Sequence[int] | None = None, **proxy_kwargs: Any) -> WeakFn:
    """Zero-cost proxies of :mod:`ray_nasrank.proxies` as a weak-label callable (columns ``zc_<name>``).

    The models are ``model_fn(space.to_config(arch))`` scored on a batch of ``input_shape``
    (:class:`~ray_nasrank.proxies.ModelProxies`); without ``model_fn`` the space's own model
    family (``space.model_fn(**proxy_kwargs)``, NB201's network; ``input_shape`` defaults to
    ``(3, 32, 32)`` there). Names the space computes itself (``space.intrinsic_names``: NB201's
    params and FLOPs from five networks, since each edge adds a fixed cost) come from its
    ``intrinsic_weak`` hook, in the same units as the proxies.
    """
    names = tuple(names)
    own_model = model_fn is None
    if own_model:
        input_shape = tuple(input_shape or proxy_kwargs.get("input_shape", (3, 32, 32)))
        net = {k: v for k, v in proxy_kwargs.items() if k not in ("input_shape", "batch_size", "seed")}
        model_fn = space.model_fn(in_channels=input_shape[0], **net)
        if model_fn is None:
            raise ValueError(f"zero-cost proxies need a model: {space!r} has no model family of its own; pass "
                             "model_fn= (config -> nn.Module) and input_shape=, or weak_fallback= a callable "
                             "archs -> dict of arrays")
    elif input_shape is None:
        raise ValueError("proxies of model_fn need input_shape= (one input without the batch dimension)")
    intrinsic = tuple(n for n in names if own_model and n in OPCOUNT_PROXIES and n in space.intrinsic_names)
    rest = tuple(n for n in names if n not in intrinsic)
    model_proxies = None
    if rest:
        from ray_nasrank.proxies import ModelProxies

        # the batch compute_proxies draws by default (64 seeded normal images), so values match it
        batch = {"batch_size": 64, **{k: proxy_kwargs[k] for k in ("batch_size", "seed") if k in proxy_kwargs}}
        model_proxies = ModelProxies(model_fn, input_shape=tuple(input_shape), names=rest, **batch)

    def weak(archs: Sequence[Arch]) -> dict[str, np.ndarray]:
        archs = [space.validate(a) for a in archs]
        values: dict[str, np.ndarray] = {}
        if intrinsic:
            from ray_nasrank.search import intrinsic_weak

            values.update(intrinsic_weak(space, archs, intrinsic,
                                         **{k: v for k, v in proxy_kwargs.items() if k != "batch_size"}))
        if model_proxies is not None:
            values.update(model_proxies([space.to_config(a) for a in archs]))
        return {f"zc_{n}": values[model_proxies.names[rest.index(n)] if n in rest else n] for n in names}

    weak.__name__ = f"proxies_{'_'.join(names)}"
    return weak


class ActorWeakFn:
    """Callable weak labels from a :class:`SupernetActor`, with a fallback while it is not ready.

    ``used`` records which source answered the last call (``"actor"`` or ``"fallback"``), so a
    search can report where its prior came from.
    """

    def __init__(self, actor: Any, fallback: WeakFn | None, timeout_s: float = 600.0) -> None:
        self.actor = actor
        self.fallback = fallback
        self.timeout_s = timeout_s
        self.used: str | None = None

    def actor_ready(self) -> bool:
        import ray

        try:
            return bool(ray.get(self.actor.ready.remote(), timeout=30))
        except Exception as e:  # a dead or unreachable actor counts as not ready
            logger.warning("supernet actor unreachable (%s: %s); using the fallback", type(e).__name__, e)
            return False

    def __call__(self, archs: Sequence[Arch]) -> dict[str, np.ndarray]:
        import ray

        archs = list(archs)
        if self.actor_ready():
            try:
                labels = ray.get(self.actor.weak_labels.remote(archs), timeout=self.timeout_s)
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as e:
                # the actor died (or hung) after saying it was ready: same as not ready
                logger.warning("supernet actor failed while labelling (%s: %s); using the fallback",
                               type(e).__name__, e)
            else:
                self.used = "actor"
                return _as_label_dict(labels, len(archs), "supernet")
        if self.fallback is None:
            raise RuntimeError(
                "the supernet actor is not ready and no zero-cost fallback is available; pass "
                "weak_fallback= (a callable archs -> dict of arrays) or wait for the actor"
            )
        logger.info("supernet actor not ready: weak labels from the fallback %s",
                    getattr(self.fallback, "__name__", self.fallback))
        self.used = "fallback"
        return _as_label_dict(self.fallback(archs), len(archs), "fallback")


class CallableWeakFn:
    """Wrap a user callable so what it returns is checked (lengths, finiteness named)."""

    def __init__(self, fn: Callable[[Sequence[Arch]], Any]) -> None:
        self.fn = fn

    def __call__(self, archs: Sequence[Arch]) -> dict[str, np.ndarray]:
        archs = list(archs)
        labels = _as_label_dict(self.fn(archs), len(archs), getattr(self.fn, "__name__", "weak"))
        for name, a in labels.items():
            if not np.all(np.isfinite(a)):
                bad = int(np.sum(~np.isfinite(a)))
                raise ValueError(f"weak label {name!r} from {self.fn!r} has {bad} NaN/inf value(s)")
        return labels


def resolve_weak_source(source: Any, space: SearchSpace, fallback: WeakFn | None = None) -> Any:
    """``None`` | dict of arrays | callable | SupernetActor handle -> what a strategy's ``weak`` takes.

    A dict is returned as it is (the strategy checks its alignment with the candidates).
    """
    if source is None or isinstance(source, Mapping):
        return source
    if is_actor_handle(source):
        if fallback is None and space.model_fn() is not None:
            fallback = proxy_weak_fn(space)
        return ActorWeakFn(source, fallback)
    if callable(source):
        return CallableWeakFn(source)
    raise TypeError(
        f"weak_source must be None, a dict of arrays, a callable archs -> dict, or a SupernetActor "
        f"handle; got {type(source).__name__}"
    )


def finite_or_none(value: Any) -> float | None:
    """``float(value)`` when it is a finite number, else ``None`` (a failed measurement)."""
    if isinstance(value, bool):
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None
