"""Weak labels for the user's own model family: zero-cost proxies of ``model_fn(config)``.

A model family is a function from a config (a plain nested dict, e.g. ``space.to_config(arch)``
or a Tune config) to a ``torch.nn.Module``. :class:`ModelProxies` builds each config's model
at a fixed seed and scores it with the measures of :mod:`ray_nasrank.proxies`; the result is
one float array per proxy, aligned to the configs, which is the ``weak=`` form the strategies
take. A config whose model cannot be built or scored gets NaN and a :class:`ProxyFailure`
naming it; nothing else is affected.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ._compute import random_batch, resolve_names
from ._measures import PROXIES, ProxyContext

logger = logging.getLogger(__name__)

#: the labels every model family gets unless told otherwise: data-free and cheap. SNIP joins
#: params because it ranks whole models best on both families trained here (Kendall tau 0.57 on
#: the mixed 320-config table, 0.59 on the 200-config CNN family) and, unlike params, sees the
#: activation; FLOPs repeats params and SynFlow's ranking is far weaker on the mixed table (0.34),
#: so they dilute the combined target (docs/benchmarks/own_model.md).
MODEL_PROXIES: tuple[str, ...] = ("params", "snip")


def drop_missing_columns(labels: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``labels`` without the columns that are NaN for every config, while another column remains.

    A proxy that cannot be computed for any model of a family (e.g. SNIP's cross-entropy on a
    model with one output) then leaves the others to pretrain on instead of stopping the run; a
    warning names it. With no column left the labels are returned as they are, so the caller's
    own error names the column.

    Args:
        labels: weak-label columns by proxy name, one value per config (NaN where it failed).

    Returns:
        The columns as float arrays, without those that are NaN for every config.

    >>> out = drop_missing_columns({"params": np.array([1.0, 2.0]), "snip": np.array([np.nan, np.nan])})
    >>> sorted(out)
    ['params']
    """
    cols = {k: np.asarray(v, dtype=np.float64) for k, v in labels.items()}
    missing = [k for k, v in cols.items() if v.size and np.isnan(v).all()]
    if not missing or len(missing) == len(cols):
        return cols
    logger.warning(f"model proxies: {missing} failed for every config and are left out of the weak labels")
    return {k: v for k, v in cols.items() if k not in missing}


class ModelProxyError(ValueError):
    """A config's model could not be built or run; the message names the config.

    Args:
        message: the config and what went wrong.
    """


@dataclass(frozen=True)
class ProxyFailure:
    """One proxy of one config that gave no value (``name`` is ``"model"`` when the model itself
    could not be built or run, then every proxy of that config is NaN).

    Args:
        config: the config whose proxy failed.
        name: the proxy's name, or ``"model"``.
        error: what went wrong (the exception, or the non-finite value).
    """

    config: dict
    name: str
    error: str

    def __str__(self) -> str:
        return f"{self.name} of config {self.config!r}: {self.error}"


def canonical_config(config: Any) -> Hashable:
    """A hashable key equal for configs that describe the same candidate: nested mappings in key
    order, numpy scalars as Python numbers, tuples and lists alike, and values a space marks
    inactive left out.

    Args:
        config: a (nested) config.

    Returns:
        The hashable key (unhashable leaves are keyed by their ``repr``).
    """
    inactive = _inactive_sentinel()
    if isinstance(config, Mapping):
        return ("{}", tuple(sorted((str(k), canonical_config(v)) for k, v in config.items()
                                   if inactive is None or v is not inactive)))
    if isinstance(config, (list, tuple)):
        return ("[]", tuple(canonical_config(v) for v in config))
    if isinstance(config, np.generic):
        return config.item()
    if isinstance(config, float) and config.is_integer():
        return int(config)  # 2.0 and 2 build the same layer sizes
    try:
        hash(config)
    except TypeError:
        return repr(config)
    return config


def _inactive_sentinel() -> Any:
    # spaces with conditional decisions mark the values of inactive decisions with one sentinel
    from ray_nasrank import spaces

    return getattr(spaces, "INACTIVE", None)


def _plain(config: Any) -> Any:
    """A copy of ``config`` a model builder cannot alter and a failure record can print."""
    return copy.deepcopy(dict(config)) if isinstance(config, Mapping) else copy.deepcopy(config)


class ModelProxies:
    """Zero-cost weak labels for any config of a model family ``model_fn(config) -> nn.Module``.

    Args:
        model_fn: builds the (untrained) model of one config; called once per distinct config,
            with the global RNG seeded by ``seed`` (so weights depend on the config and ``seed``).
        input_shape: shape of one input without the batch dimension, e.g. ``(3, 32, 32)``; a
            seeded standard-normal batch of ``batch_size`` is drawn (labels uniform over the
            model's outputs). Give either this or ``inputs``.
        inputs: a real batch: a tensor ``x`` of at least 2 examples, or an ``(x, y)`` pair.
        names: proxies to compute (see :data:`~ray_nasrank.proxies.PROXIES`; aliases such as
            ``nwot`` allowed); the result uses the canonical names.
        batch_size, seed, device: the random batch's size, the seed of batch and weights, and
            where models run.
        loss_fn: the loss of ``snip``, ``grad_norm`` and ``plain`` (default: cross-entropy).
        on_error: ``"record"`` (NaN plus a :class:`ProxyFailure` in :attr:`failures`) or
            ``"raise"`` (:class:`ModelProxyError` naming the config).

    Calling ``proxies(configs)`` returns ``{name: float array aligned to configs}``. Values are
    cached per canonical config (:func:`canonical_config`): a config is built and scored once.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> def mlp(config):
        ...     return nn.Sequential(nn.Flatten(), nn.Linear(64, config["width"]), nn.ReLU(),
        ...                          nn.Linear(config["width"], 10))
        >>> proxies = ModelProxies(mlp, input_shape=(1, 8, 8), names=("params", "flops", "naswot"))
        >>> labels = proxies([{"width": 16}, {"width": 64}, {"width": 16}])
        >>> sorted(labels), bool(labels["params"][1] > labels["params"][0]), proxies.num_built
        (['flops', 'naswot', 'params'], True, 2)
    """

    def __init__(self, model_fn: Callable[[dict], nn.Module], input_shape: Sequence[int] | None = None,
                 inputs: torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None = None,
                 names: Iterable[str] | str = MODEL_PROXIES, *, batch_size: int = 32, seed: int = 0,
                 device: str | torch.device = "cpu",
                 loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                 on_error: str = "record") -> None:
        if not callable(model_fn):
            raise TypeError(f"model_fn must be callable (config dict -> nn.Module), got {type(model_fn).__name__}")
        if on_error not in ("record", "raise"):
            raise ValueError(f"on_error must be 'record' or 'raise', got {on_error!r}")
        self.model_fn = model_fn
        self.names = resolve_names(names)
        self.seed = int(seed)
        self.on_error = on_error
        self.loss_fn = loss_fn
        from ray_nasrank.data import resolve_device

        self.device = resolve_device(device)
        self.x, self.y = _resolve_inputs(input_shape, inputs, batch_size, self.seed)
        self.x, self.y = self.x.to(self.device), None if self.y is None else self.y.to(self.device)
        self._labels: dict[int, torch.Tensor] = {}
        self._cache: dict[Hashable, dict[str, float]] = {}
        #: every proxy that gave no value, in the order met (one per config and proxy)
        self.failures: list[ProxyFailure] = []
        #: how many models were built (cache misses)
        self.num_built = 0

    # ------------------------------------------------------------------ public
    def __call__(self, configs: Sequence[Mapping]) -> dict[str, np.ndarray]:
        """Weak labels of ``configs``: ``{name: float64 array}``, NaN where a config failed."""
        configs = list(configs)
        for config, (values, failures) in zip(*self._todo(configs)):
            self.store(config, values, failures)
        rows = [self._cache[canonical_config(c)] for c in configs]
        return {n: np.array([r[n] for r in rows], dtype=np.float64) for n in self.names}

    def missing(self, configs: Sequence[Mapping]) -> list[dict]:
        """The distinct configs of ``configs`` not scored yet (one per canonical config)."""
        return self._todo(configs, compute=False)[0]

    def spawn(self) -> "ModelProxies":
        """A copy with the same model family, batch and settings and an empty cache (for workers)."""
        other = copy.copy(self)
        other._cache, other._labels, other.failures, other.num_built = {}, dict(self._labels), [], 0
        return other

    def compute(self, config: Mapping) -> tuple[dict[str, float], list[ProxyFailure]]:
        """Build and score one config, uncached: its values (NaN on failure) and failures."""
        config = _plain(config)
        values = {n: math.nan for n in self.names}
        try:
            net, outputs = self._build(config)
        except ModelProxyError as e:
            if self.on_error == "raise":
                raise
            return values, [ProxyFailure(config, "model", str(e))]
        y = self.y if self.y is not None else self._labels.get(outputs)
        ctx = ProxyContext(net, self.x, y, **({} if self.loss_fn is None else {"loss_fn": self.loss_fn}))
        failures: list[ProxyFailure] = []
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            for name in self.names:
                try:
                    v = float(PROXIES[name].fn(ctx))
                    error = None if math.isfinite(v) else (
                        f"value {v} (the output depends on no weight)" if v == -math.inf else f"value {v}")
                except Exception as e:  # noqa: BLE001 -- one failing proxy never stops the others
                    v, error = math.nan, f"{type(e).__name__}: {e}"
                if error is None:
                    values[name] = v
                    continue
                if self.on_error == "raise":
                    raise ModelProxyError(f"proxy {name!r} of config {config!r} failed: {error}")
                failures.append(ProxyFailure(config, name, error))
        return values, failures

    def store(self, config: Mapping, values: Mapping[str, float], failures: Sequence[ProxyFailure] = ()) -> None:
        """Put one config's computed values (and failures) into the cache."""
        key = canonical_config(config)
        if key in self._cache:
            return
        self._cache[key] = {n: float(values[n]) for n in self.names}
        self.num_built += 1
        for f in failures:
            logger.warning("model proxies: %s", f)
        self.failures.extend(failures)

    # ------------------------------------------------------------------ internals
    def _todo(self, configs: Sequence[Mapping], compute: bool = True):
        seen: set = set()
        todo = []
        for c in configs:
            if not isinstance(c, Mapping):
                raise TypeError(f"configs must be dicts (e.g. space.to_config(arch)), got {type(c).__name__}: {c!r}")
            key = canonical_config(c)
            if key not in self._cache and key not in seen:
                seen.add(key)
                todo.append(_plain(c))
        return todo, ([self.compute(c) for c in todo] if compute else None)

    def _build(self, config: dict) -> tuple[nn.Module, int]:
        # the weights depend only on the config and the seed, never on the caller's RNG state
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            try:
                net = self.model_fn(copy.deepcopy(config))
            except Exception as e:  # noqa: BLE001 -- reported for this config only
                raise ModelProxyError(f"model_fn raised for config {config!r}: {type(e).__name__}: {e}") from e
            if not isinstance(net, nn.Module):
                raise ModelProxyError(f"model_fn returned {type(net).__module__}.{type(net).__qualname__}, "
                                      f"not a torch.nn.Module, for config {config!r}")
            net = net.to(self.device)
            try:
                net.eval()
                with torch.no_grad():
                    out = net(self.x)  # also materialises lazy modules, inside the seeded block
            except Exception as e:  # noqa: BLE001
                raise ModelProxyError(f"the model of config {config!r} does not accept inputs of shape "
                                      f"{tuple(self.x.shape)} (batch of {self.x.shape[0]}, input shape "
                                      f"{tuple(self.x.shape[1:])}): {type(e).__name__}: {e}") from e
            finally:
                net.train()
        if not isinstance(out, torch.Tensor) or out.dim() < 1 or out.shape[0] != self.x.shape[0]:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ModelProxyError(f"the model of config {config!r} must return one tensor with the batch "
                                  f"dimension first ({self.x.shape[0]}), got {shape}")
        outputs = int(out.shape[-1]) if out.dim() >= 2 else 1
        if self.y is None and outputs not in self._labels and outputs >= 2:
            # the labels :func:`random_batch` draws for this many classes (its images do not depend on it)
            self._labels[outputs] = random_batch(self.x.shape[0], tuple(self.x.shape[1:]), outputs,
                                                 self.seed)[1].to(self.device)
        return net, outputs


def _resolve_inputs(input_shape: Sequence[int] | None, inputs: Any, batch_size: int,
                    seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    if (input_shape is None) == (inputs is None):
        raise ValueError("give exactly one of input_shape (one input without the batch dimension, "
                         "e.g. (3, 32, 32)) and inputs (a batch tensor or an (x, y) pair)")
    if inputs is not None:
        x, y = (inputs if isinstance(inputs, (tuple, list)) and len(inputs) == 2 else (inputs, None))
        if not isinstance(x, torch.Tensor) or x.dim() < 2 or x.shape[0] < 2:
            raise ValueError("inputs must be a tensor [N >= 2, ...] or an (x, y) pair of tensors, got "
                             f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
        if y is not None and (not isinstance(y, torch.Tensor) or y.shape[:1] != x.shape[:1]):
            raise ValueError(f"inputs y must be a tensor with {x.shape[0]} rows like x, got "
                             f"{tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__}")
        return (x.float() if not torch.is_floating_point(x) and x.dtype != torch.long else x), y
    shape = tuple(input_shape)
    if not shape or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in shape):
        raise ValueError(f"input_shape must be positive integers (one input without the batch dimension), "
                         f"got {input_shape!r}")
    # the same images as :func:`random_batch` (so NB201 values match :func:`compute_proxies`)
    x, _ = random_batch(batch_size, tuple(int(s) for s in shape), 2, seed)
    return x, None
