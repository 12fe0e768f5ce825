"""Weight-sharing supernets: the interface every supernet meets (:class:`Supernet`) and a user's
model family as one supernet (:class:`ChoiceSupernet`).

The supernet tools of :mod:`ray_nasrank.supernet` (training, few-shot splitting, evaluation with
BN recalibration, weak labels, regularizers' teachers) take any :class:`Supernet` and ask it only
what the interface offers, so NAS-Bench-201's supernet and a user's family go down one path.
"""

from __future__ import annotations

import contextlib
import copy
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

import torch
from torch import nn

from ._choice import SLIM_LAYERS, DepthChoice, OpChoice, ValueChoice, iter_choices, reset_weights

if TYPE_CHECKING:
    from ray_nasrank.spaces import SearchSpace

__all__ = ["Supernet", "ChoiceSupernet"]


class Supernet(nn.Module):
    """A weight-sharing supernet over a categorical :attr:`space`: the interface the supernet
    tools use.

    ``sn(x, config)`` runs the subnet of ``config`` (an arch of :attr:`space` or any form its
    ``validate`` reads: a config dict, flat ``{label: value}`` params, a string) and
    ``sn.extract(config)`` returns it as a stand-alone module holding copies of the shared
    weights. The labels are the space's decision names; :meth:`config_of` gives a config as
    ``{label: value}``. A subclass sets :attr:`space` and implements :meth:`forward` and
    :meth:`extract`; it may offer a faster way to count a subnet's parameters
    (:meth:`subnet_parameters`) or to score many subnets at once (:meth:`batched_evaluator`).
    """

    #: the search space of the subnets (categorical decisions)
    space: "SearchSpace"

    # ------------------------------------------------------------------ the space
    @property
    def labels(self) -> tuple[str, ...]:
        """The decisions' names, in the space's order."""
        return tuple(d.name for d in self.space.decisions)

    def plain_space(self) -> dict[str, list]:
        """``{label: [candidates]}``."""
        return {d.name: list(d.choices) for d in self.space.decisions}

    def config_of(self, config: Any) -> dict[str, Any]:
        """``config`` as ``{label: value}``; a config outside the space is an error naming it."""
        return self.space.to_flat_params(self.space.validate(config))

    def param_space(self, base: Mapping[str, Any] | None = None) -> dict:
        """A Tune ``param_space``: ``base`` (e.g. learning rate, epochs) plus the space's domains.
        A top-level key of both is an error naming it. Imports Ray."""
        base = dict(base or {})
        own = self.space.to_tune()
        clash = [key for key in own if key in base]
        if clash:
            raise ValueError(f"choice label(s) {clash} clash with key(s) of the param_space; rename the "
                             "choice or the param_space entry")
        return {**base, **own}

    # ------------------------------------------------------------------ subnets
    def forward(self, x: Any, config: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not implement forward(x, config)")

    def extract(self, config: Any, reset: bool = False) -> nn.Module:
        """The subnet of ``config`` as a stand-alone module (``reset=True``: re-initialised)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement extract(config, reset)")

    def model_fn(self, reset: bool = False) -> Callable[[Mapping], nn.Module]:
        """``config -> extract(config, reset)``: the model family in the form
        :class:`~ray_nasrank.proxies.ModelProxies` and the strategies' ``model_fn=`` take."""
        return lambda config: self.extract(config, reset=reset)

    def subnet_parameters(self, config: Any) -> int:
        """Trainable parameters of the stand-alone subnet of ``config`` (by default counted on
        :meth:`extract`; a supernet may count without building it)."""
        return sum(p.numel() for p in self.extract(config).parameters() if p.requires_grad)

    def batched_evaluator(self, calib: Sequence[Any], evaluation: Sequence[tuple[Any, Any]],
                          **options: Any) -> Any:
        """An object whose ``evaluate(configs) -> (accuracies, losses)`` scores many subnets at
        once with per-subnet BN statistics, or ``None`` (the default) when this supernet has no
        such path: :func:`~ray_nasrank.supernet.evaluate_configs` then scores one subnet at a
        time. ``options`` tune that path (an error where they do not apply)."""
        return None


class ChoiceSupernet(Supernet):
    """Weight-sharing supernet over the choices of ``model`` (a module built with
    :class:`OpChoice`, width choices, :class:`DepthChoice` or :class:`ValueChoice` attributes).

    A :class:`Supernet`: ``sn(x, config)`` runs the subnet of ``config`` (a dict ``label -> value``, extra keys
    ignored, e.g. a Tune config; or an arch tuple of :attr:`space`); ``sn.extract(config)``
    returns it as a plain ``nn.Module`` without choice modules, holding copies of the shared
    weights, so both compute the same function. :attr:`space` is the search space (one
    categorical decision per label, in module order); :meth:`param_space` and
    :meth:`plain_space` give it as a Tune ``param_space`` and a plain dict.

    The forward pass of ``sn(x, config)`` is the model's own forward with every choice set, so
    the training code of :mod:`ray_nasrank.supernet` (``model(x, arch)``) trains it as it is.

    Args:
        model: a module holding choice modules or :class:`ValueChoice` attributes.
        example_input: a batch run once through the widest subnet, which materialises lazy
            layers (``nn.LazyLinear`` and the like) before the weights are shared.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
        ValueError: the model holds no choice, or one label with two different candidate lists.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from ray_nasrank.nn import ChoiceSupernet, OpChoice, SlimBatchNorm2d, SlimConv2d, SlimLinear, WidthChoice
        >>> w = WidthChoice("width", [8, 16])
        >>> family = nn.Sequential(
        ...     SlimConv2d(1, w, 3, padding=1), SlimBatchNorm2d(w), nn.ReLU(),
        ...     OpChoice({"conv": SlimConv2d(w, w, 3, padding=1), "pool": nn.MaxPool2d(3, 1, 1)}, label="op"),
        ...     nn.AdaptiveAvgPool2d(1), nn.Flatten(), SlimLinear(w, 10))
        >>> sn = ChoiceSupernet(family)
        >>> sn.plain_space()
        {'width': [8, 16], 'op': ['conv', 'pool']}
        >>> config = {"width": 8, "op": "conv"}
        >>> sub = sn.extract(config).eval()
        >>> x = torch.randn(4, 1, 8, 8)
        >>> torch.allclose(sn.eval()(x, config), sub(x))
        True
    """

    def __init__(self, model: nn.Module, example_input: Any = None) -> None:
        """``example_input``: a batch run once through the widest subnet, which materialises
        lazy layers (``nn.LazyLinear`` and the like) before the weights are shared."""
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"ChoiceSupernet wraps an nn.Module, got {type(model).__name__}")
        self.model = model
        self._choices: dict[str, list[ValueChoice]] = {}
        for c in iter_choices(model):
            group = self._choices.setdefault(c.label, [])
            if group and group[0].candidates != c.candidates:
                raise ValueError(f"choice label {c.label!r} is used twice with different candidates: "
                                 f"{list(group[0].candidates)} and {list(c.candidates)}; rename one")
            group.append(c)
        if not self._choices:
            raise ValueError("the model holds no choice (OpChoice, WidthChoice in a Slim layer, DepthChoice "
                             "or a ValueChoice attribute): nothing to search")
        from ray_nasrank.spaces import CategoricalSpace, Decision

        self.space = CategoricalSpace([Decision((label,), group[0].candidates)
                                       for label, group in self._choices.items()])
        if example_input is not None:
            # lazy layers take their shapes from the widest subnet
            with torch.no_grad():
                self(example_input, self.widest())

    # ------------------------------------------------------------------ the space
    def widest(self) -> dict[str, Any]:
        """The config with the largest candidate of every width/depth choice (the first of the others)."""
        out = {}
        for label, group in self._choices.items():
            cands = group[0].candidates
            numeric = all(isinstance(v, int) and not isinstance(v, bool) for v in cands)
            out[label] = max(cands) if numeric else cands[0]
        return out

    def config_of(self, config: Any) -> dict[str, Any]:
        """``config`` as ``{label: value}``: from a mapping holding every label (extra keys
        ignored) or an arch tuple of :attr:`space`; a missing label or an unknown value is an
        error naming it."""
        if isinstance(config, Mapping):
            missing = [label for label in self._choices if label not in config]
            if missing:
                raise ValueError(f"config has no value for choice(s) {missing}; choices: {list(self._choices)}")
            out = {label: config[label] for label in self._choices}
        else:
            out = self.space.to_flat_params(self.space.validate(config))
        for label, value in out.items():
            cands = self._choices[label][0].candidates
            if value not in cands:
                raise ValueError(f"unknown value {value!r} for choice {label!r}; candidates are {list(cands)}")
        return out

    # ------------------------------------------------------------------ running subnets
    @contextlib.contextmanager
    def activate(self, config: Any) -> Iterator[dict[str, Any]]:
        """Set every choice to ``config`` for the ``with`` block (then unset them)."""
        values = self.config_of(config)
        try:
            for label, group in self._choices.items():
                for c in group:
                    c.activate(values[label])
            yield values
        finally:
            for group in self._choices.values():
                for c in group:
                    c.deactivate()

    def forward(self, x: Any, config: Any) -> Any:
        with self.activate(config):
            return self.model(x)

    def extract(self, config: Any, reset: bool = False) -> nn.Module:
        """The subnet of ``config`` as a stand-alone module: choice modules replaced by the chosen
        candidate, Slim layers by plain ``Conv2d``/``Linear``/``BatchNorm`` holding copies of the
        weight slices and BN buffers; :class:`ValueChoice` attributes stay, fixed to their value.
        ``reset=True`` re-initialises it (for training from scratch). Train/eval mode is kept."""
        values = self.config_of(config)
        model = copy.deepcopy(self.model)
        for c in iter_choices(model):
            c.activate(values[c.label])
        out = _freeze(model)
        return reset_weights(out) if reset else out



def _freeze(module: nn.Module) -> nn.Module:
    """``module`` with its active choices resolved into plain modules (recursively)."""
    if isinstance(module, OpChoice):
        return _freeze(module.chosen())
    if isinstance(module, DepthChoice):
        blocks = [_freeze(b) for b in module.blocks[: module.choice.value]]
        return nn.Sequential(*blocks).train(module.training) if blocks else nn.Identity()
    if isinstance(module, SLIM_LAYERS):
        return module.to_plain()
    for name, child in list(module.named_children()):
        new = _freeze(child)
        if new is not child:
            setattr(module, name, new)
    return module
