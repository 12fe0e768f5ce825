"""A model family: what the pipeline, the report and the benchmarks search and score.

A :class:`ModelFamily` bundles a search space with what the package can do with it, and every
consumer chooses by what a family *provides*, never by its name or type: a network builder
(``model_fn``, always), a weight-sharing supernet (``has_supernet``), intrinsic weak labels it
computes itself with no training (``intrinsic_names``; by default its space's), zero-cost
proxies of its models (``proxies``) and its own candidate pool (``pool``).

A family is named either by a built-in name (:data:`~ray_nasrank.families.FAMILIES`, e.g.
``nb201``) or by ``MODULE:FUNCTION``: an importable function (``my_models:family``) or a
function in a Python file (``examples/cnn_family.py:family``). The function is called once per
process, with the keyword arguments ``in_channels`` and ``num_classes`` of the data, and the
network size ``channels`` and ``cells_per_stage``, each when its signature takes it, and returns
a :class:`ModelFamily` or one of:

- a :class:`~ray_nasrank.nn.ChoiceSupernet` (a model written with the package's choice
  modules): the space is its choices, each candidate is ``supernet.extract(config,
  reset=True)`` trained from scratch, and the supernet itself is trained in the pipeline's
  supernet actor for the ``weak_supernet`` label;
- a pair ``(param_space, model_fn)``: ``param_space`` a Tune-style dict (``tune.choice``,
  ``tune.loguniform``... and constants) or a :class:`~ray_nasrank.spaces.SearchSpace`, and
  ``model_fn(config) -> torch.nn.Module`` the freshly initialised model of one config (the
  whole trial config: the constants and every decision).

For those two the weak labels include the zero-cost proxies of each candidate's model
(:class:`~ray_nasrank.proxies.ModelProxies`); a :class:`ModelFamily` says which (``proxies``). A decision or constant at the top level of the
config named after a field of the training recipe (:data:`RECIPE_KEYS`: ``lr``,
``weight_decay``, ``momentum``, ``batch_size``...) sets that field for the candidate's training;
the epochs and image sizes come from the pipeline's fidelities, never from the config.

>>> from torch import nn
>>> def mlp_family(in_channels=1, num_classes=10):
...     space = {"width": [16, 64], "lr": [0.05, 0.1]}
...     def model_fn(config):
...         return nn.Sequential(nn.Flatten(), nn.LazyLinear(config["width"]), nn.ReLU(),
...                              nn.Linear(config["width"], num_classes))
...     return space, model_fn
>>> fam = family_from(mlp_family(), "doc:mlp_family")
>>> fam.space.size, fam.recipe({"width": 16, "lr": 0.05})
(4, {'lr': 0.05})
>>> fam.train_config({"epochs": 2, "lr": 0.1}, {"width": 16, "lr": 0.05}).lr
0.05
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ray_nasrank.spaces import Arch, SearchSpace

__all__ = ["ModelFamily", "SpaceError", "RECIPE_KEYS", "load_family", "family_from", "is_family_spec",
           "sampled_pool"]

#: fields of :class:`~ray_nasrank.training.TrainConfig` a top-level config entry may set
RECIPE_KEYS: tuple[str, ...] = ("lr", "momentum", "weight_decay", "batch_size", "optimizer", "nesterov",
                                "schedule", "warmup_epochs", "label_smoothing", "grad_clip")


class SpaceError(ValueError):
    """``--space MODULE:FUNCTION`` names no usable model family; the message says what is wrong.

    Args:
        message: the spec and the problem.
    """


def is_family_spec(space: str) -> bool:
    """Whether ``space`` names a user's model family (``MODULE:FUNCTION``) rather than a built-in one."""
    return isinstance(space, str) and ":" in space


#: the most configs a "every candidate" pool (``size=0``) enumerates
MAX_ENUMERATED = 2**20


def sampled_pool(space: SearchSpace, size: int, seed: int) -> list[Arch]:
    """A family's default candidate pool: ``size`` distinct configs drawn from the space's prior
    with ``seed``, or all of them when the space holds no more (never enumerating a larger space).
    ``size=0`` asks for every config, which a finite space of at most :data:`MAX_ENUMERATED`
    configs gives; any other raises ``ValueError``.

    >>> from ray_nasrank.spaces import SearchSpace
    >>> len(sampled_pool(SearchSpace({"w": [8, 16, 32], "k": [3, 5]}), 4, seed=0))
    4
    """
    if size == 0:
        if not space.finite or space.size > MAX_ENUMERATED:
            raise ValueError(f"a pool of every candidate (pool_size=0) needs a finite space of at most "
                             f"{MAX_ENUMERATED} configs, not {space!r}: give pool_size >= budget")
        return list(space.enumerate())
    if space.finite and space.size <= size:
        return list(space.enumerate())
    return space.sample_many(size, rng=seed, unique=True)


@dataclass(frozen=True)
class ModelFamily:
    """A searchable model family: a space, the model of each of its configs, and what else it
    offers for weak labels (a supernet, intrinsic labels, zero-cost proxies) and its pool.

    Args:
        space: the search space.
        model_fn: ``config -> nn.Module``, a freshly initialised model.
        spec: its name: a built-in name or the ``MODULE:FUNCTION`` it came from (for messages).
        constants: entries every trial config carries besides the decisions.
        supernet: a built weight-sharing supernet over the space (a
            :class:`~ray_nasrank.nn.ChoiceSupernet`), or ``None``.
        supernet_config: instead of a built one, the shape (keyword arguments) of the package's
            NB201 supernet, built where it trains (the supernet actor), so its initial weights
            come from that process; ``None`` when the family has no such supernet.
        module: the name of the module that defines the family (shipped to Ray workers by value).
        proxies: the zero-cost proxies of its models the pipeline computes as weak labels
            (``None``: :data:`~ray_nasrank.proxies.MODEL_PROXIES`; ``()``: none, e.g. when the
            space's intrinsic labels stand in for them).
        pool: ``pool(size, seed) -> archs``, the family's own candidate pool (``size=0``: every
            candidate); ``None``: :func:`sampled_pool`.
        intrinsic_names: the weak labels the family computes itself, with no training and no
            data (``None``: its space's ``intrinsic_names``, e.g. NB201's params, FLOPs, SynFlow).
        intrinsic: ``intrinsic(archs, names) -> {name: values}`` computing them (``None``: the
            space's ``intrinsic_weak`` hook).

    Raises:
        ValueError: ``intrinsic`` without ``intrinsic_names``.
    """

    space: SearchSpace
    model_fn: Callable[[dict], Any]
    spec: str
    constants: dict = field(default_factory=dict)
    supernet: Any = None
    supernet_config: Mapping[str, Any] | None = None
    module: str | None = None
    proxies: tuple[str, ...] | None = None
    pool: Callable[[int, int], list] | None = None
    intrinsic_names: tuple[str, ...] | None = None
    intrinsic: Callable[[Sequence[Arch], tuple[str, ...]], Mapping[str, Any]] | None = None

    def __post_init__(self) -> None:
        if self.intrinsic is not None and not self.intrinsic_names:
            raise ValueError(f"model family {self.spec!r}: intrinsic= computes labels, name them in intrinsic_names=")
        if self.intrinsic_names is None:  # the space's own (frozen: set once, here)
            object.__setattr__(self, "intrinsic_names", tuple(self.space.intrinsic_names))
        else:
            object.__setattr__(self, "intrinsic_names", tuple(self.intrinsic_names))

    # ------------------------------------------------------------------ what it provides
    @property
    def has_supernet(self) -> bool:
        """Whether the family offers a weight-sharing supernet (built, or a shape to build)."""
        return self.supernet is not None or self.supernet_config is not None

    @property
    def has_proxies(self) -> bool:
        """Whether the pipeline scores its models' zero-cost proxies as weak labels."""
        return self.proxies is None or len(self.proxies) > 0

    def intrinsic_weak(self, archs: Sequence[Arch], names: Sequence[str] | None = None,
                       **options: Any) -> dict[str, np.ndarray]:
        """The intrinsic labels ``names`` (default: all of :attr:`intrinsic_names`) of ``archs``;
        ``{}`` when the family has none. ``options`` go to the space's hook (NB201: the network
        size its params and FLOPs are counted at).

        Raises:
            ValueError: a name the family does not compute.
        """
        names = self.intrinsic_names if names is None else ((names,) if isinstance(names, str) else tuple(names))
        if not names:
            return {}
        if self.intrinsic is None:
            from ray_nasrank.search import intrinsic_weak

            return intrinsic_weak(self.space, archs, names, **options)
        unknown = [n for n in names if n not in self.intrinsic_names]
        if unknown:
            raise ValueError(f"model family {self.spec!r} computes the intrinsic labels {list(self.intrinsic_names)}, "
                             f"not {unknown}")
        archs = [self.space.validate(a) for a in archs]
        out = self.intrinsic(archs, names)
        return {n: np.asarray(out[n], dtype=np.float64) for n in names}

    def candidate_pool(self, size: int, seed: int) -> list[Arch]:
        """``size`` distinct candidates drawn with ``seed`` (``0``: every candidate): the
        family's own ``pool`` or :func:`sampled_pool`."""
        return self.pool(size, seed) if self.pool is not None else sampled_pool(self.space, size, seed)

    def config(self, arch: Arch) -> dict:
        """The trial config of ``arch``: the constants plus every active decision."""
        return {**copy.deepcopy(self.constants), **self.space.to_config(arch)}

    def arch_of(self, config: Mapping) -> Arch:
        """The arch a trial config holds (extra keys ignored)."""
        return self.space.from_config(config)

    def recipe(self, config: Mapping) -> dict:
        """The training-recipe fields the config sets (top-level entries named in :data:`RECIPE_KEYS`)."""
        return {k: _plain(config[k]) for k in RECIPE_KEYS if k in config}

    def train_config(self, base: Mapping, config: Mapping) -> Any:
        """The :class:`~ray_nasrank.training.TrainConfig` a candidate trains with: ``base`` (the
        pipeline's recipe at one fidelity) with the fields ``config`` sets; a bad value raises
        ``ValueError`` naming the field."""
        from ray_nasrank.training import TrainConfig

        recipe = self.recipe(config)
        try:
            return TrainConfig.from_dict({**base, **recipe})
        except (TypeError, ValueError) as e:
            raise SpaceError(f"config {dict(config)!r} of --space {self.spec!r} sets the training recipe "
                             f"{recipe!r}: {e}") from None

    def build(self, config: Mapping) -> Any:
        """``model_fn(config)``, checked: an exception or a result that is not an ``nn.Module``
        raises :class:`SpaceError` naming the config."""
        from torch import nn

        try:
            net = self.model_fn(copy.deepcopy(dict(config)))
        except Exception as e:  # noqa: BLE001 -- reported with the config
            raise SpaceError(f"the model_fn of --space {self.spec!r} raised for config {dict(config)!r}: "
                             f"{type(e).__name__}: {e}") from e
        if not isinstance(net, nn.Module):
            raise SpaceError(f"the model_fn of --space {self.spec!r} returned {type(net).__name__}, not a "
                             f"torch.nn.Module, for config {dict(config)!r}")
        return net

    def check_input(self, config: Mapping, x: Any, where: str = "the inputs") -> Any:
        """Build the model of ``config`` and run the batch ``x`` through it once (which also
        materialises lazy layers such as ``nn.LazyLinear``); returns the model, in training mode.
        An exception or an output that is not one row of logits per input raises
        :class:`SpaceError` naming the config, the input shape and ``where`` they come from."""
        import torch

        net = self.build(config)
        try:
            with torch.no_grad():
                out = net.eval()(x)
            net.train()
        except Exception as e:  # noqa: BLE001 -- reported with the config and shape
            raise SpaceError(f"the model of config {dict(config)!r} (--space {self.spec!r}) does not run on "
                             f"{where} of shape {tuple(x.shape[1:])}: {type(e).__name__}: {e}. "
                             "A family searched at a lower image size must accept both sizes (e.g. global "
                             "pooling before the head), or pass --image-size 0") from e
        if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != x.shape[0]:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise SpaceError(f"the model of config {dict(config)!r} (--space {self.spec!r}) must return logits of "
                             f"shape (batch, classes), got {got} for {where} of shape "
                             f"{tuple(x.shape[1:])}")
        return net

    def without_supernet(self) -> "ModelFamily":
        """The family without its supernet object (what trials need; ``model_fn`` may still use it)."""
        from dataclasses import replace

        return replace(self, supernet=None)


def load_family(spec: str, in_channels: int | None = None, num_classes: int | None = None,
                **options: Any) -> ModelFamily:
    """The family ``spec`` names: a built-in one (:data:`~ray_nasrank.families.FAMILIES`) or the
    function ``MODULE:FUNCTION`` names, called, and what it returns read (see the module docstring).

    Args:
        spec: a built-in name, ``MODULE:FUNCTION`` or ``path/to/file.py:FUNCTION``.
        in_channels: image channels of the data (passed when the function takes ``in_channels``;
            ``None``: not passed, the function's default holds).
        num_classes: classes of the data (likewise).
        **options: further keyword arguments (``channels``, ``cells_per_stage``), each passed when
            the function takes it and it is not ``None``.

    Returns:
        The :class:`ModelFamily`.

    Raises:
        SpaceError: an unknown name, a module that cannot be imported or has no such callable, the
            call raises, or it returns something else than a ModelFamily, a ChoiceSupernet or a
            ``(param_space, model_fn)`` pair (or a malformed one).

    >>> fam = load_family("nb201", in_channels=1, num_classes=10, channels=8, cells_per_stage=1)
    >>> fam.space.size, fam.has_supernet, fam.intrinsic_names
    (15625, True, ('params', 'flops', 'synflow'))
    """
    from ray_nasrank._checks import ConfigError
    from ray_nasrank._user_code import load_callable

    from ._registry import FAMILIES

    if isinstance(spec, str) and spec in FAMILIES:
        fn = FAMILIES[spec]
    elif not is_family_spec(spec) or not all(spec.rsplit(":", 1)):
        raise SpaceError(f"--space {spec!r}: give a built-in model family {sorted(FAMILIES)} or your own as "
                         "MODULE:FUNCTION or path/to/file.py:FUNCTION")
    else:
        try:
            fn = load_callable(spec, what="space")
        except ConfigError as e:
            raise SpaceError(str(e).replace("`space`", "--space")) from None
    module = getattr(fn, "__module__", None)
    offered = {k: v for k, v in {"in_channels": in_channels, "num_classes": num_classes, **options}.items()
               if v is not None}
    kwargs = _accepted(fn, offered)
    try:
        got = fn(**kwargs)
    except Exception as e:  # noqa: BLE001 -- reported with the spec
        raise SpaceError(f"--space {spec!r}: calling it{' with ' + str(kwargs) if kwargs else ''} raised "
                         f"{type(e).__name__}: {e}") from e
    return family_from(got, spec, module=module)


def family_from(got: Any, spec: str, module: str | None = None) -> ModelFamily:
    """Read what a ``--space`` function returned into a :class:`ModelFamily` (see the module docstring).

    Args:
        got: a :class:`ModelFamily` (returned as is, with ``module`` when it names none), a
            :class:`~ray_nasrank.nn.ChoiceSupernet` or a ``(param_space, model_fn)`` pair.
        spec: where it came from (for messages).
        module: the name of the module that defines it.

    Returns:
        The :class:`ModelFamily`.

    Raises:
        SpaceError: ``got`` is neither, or ``param_space`` is malformed, or ``model_fn`` is not callable.
    """
    from ray_nasrank.nn import ChoiceSupernet
    from ray_nasrank.spaces import holds_tune_domain, space_from_tune

    if isinstance(got, ModelFamily):
        from dataclasses import replace

        return got if got.module is not None or module is None else replace(got, module=module)
    if isinstance(got, ChoiceSupernet):
        return ModelFamily(space=got.space, model_fn=got.model_fn(reset=True), spec=spec, supernet=got,
                           module=module)
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        what = f"a {type(got).__name__}" if not isinstance(got, (tuple, list)) else f"{len(got)} items"
        raise SpaceError(f"--space {spec!r} returned {what}; return a ModelFamily, a ChoiceSupernet (a model "
                         "written with ray_nasrank.nn's choice modules) or a pair (param_space, model_fn)")
    param_space, model_fn = got
    if not callable(model_fn):
        raise SpaceError(f"--space {spec!r}: the second item must be model_fn(config) -> nn.Module, got "
                         f"{type(model_fn).__name__}")
    if isinstance(param_space, SearchSpace):
        return ModelFamily(space=param_space, model_fn=model_fn, spec=spec, module=module)
    if not isinstance(param_space, Mapping):
        raise SpaceError(f"--space {spec!r}: the first item must be a param_space (a dict of Tune domains or "
                         f"lists of choices) or a SearchSpace, got {type(param_space).__name__}")
    try:
        if holds_tune_domain(param_space):
            space, constants = space_from_tune(param_space)
        else:
            space, constants = SearchSpace(param_space), {}
    except (TypeError, ValueError) as e:
        raise SpaceError(f"--space {spec!r}: malformed param_space: {e}") from None
    return ModelFamily(space=space, model_fn=model_fn, spec=spec, constants=constants, module=module)


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers (a sampled ``batch_size`` may be ``np.int64``)."""
    return value.item() if hasattr(value, "item") and getattr(value, "shape", None) == () else value


def _accepted(fn: Callable, offered: dict) -> dict:
    """The entries of ``offered`` that ``fn``'s signature takes by keyword."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(offered)
    return {k: v for k, v in offered.items()
            if k in params and params[k].kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                  inspect.Parameter.KEYWORD_ONLY)}
