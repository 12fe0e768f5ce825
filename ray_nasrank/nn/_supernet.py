"""A user's model family as one weight-sharing supernet: its space, its subnets, their extraction."""

from __future__ import annotations

import contextlib
import copy
from typing import Any, Callable, Iterator, Mapping

import torch
from torch import nn

from ._choice import SLIM_LAYERS, DepthChoice, OpChoice, ValueChoice, iter_choices, reset_weights

__all__ = ["ChoiceSupernet"]


class ChoiceSupernet(nn.Module):
    """Weight-sharing supernet over the choices of ``model`` (a module built with
    :class:`OpChoice`, width choices, :class:`DepthChoice` or :class:`ValueChoice` attributes).

    ``sn(x, config)`` runs the subnet of ``config`` (a dict ``label -> value``, extra keys
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
    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self._choices)

    def plain_space(self) -> dict[str, list]:
        """``{label: [candidates]}``."""
        return {label: list(group[0].candidates) for label, group in self._choices.items()}

    def param_space(self, base: Mapping[str, Any] | None = None) -> dict:
        """A Tune ``param_space``: ``base`` (e.g. learning rate, epochs) plus one ``tune.choice``
        per label. A label that is also a key of ``base`` is an error naming it. Imports Ray."""
        from ray import tune

        base = dict(base or {})
        clash = [label for label in self._choices if label in base]
        if clash:
            raise ValueError(f"choice label(s) {clash} clash with key(s) of the param_space; rename the "
                             "choice or the param_space entry")
        return {**base, **{label: tune.choice(cands) for label, cands in self.plain_space().items()}}

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

    def model_fn(self, reset: bool = False) -> Callable[[Mapping], nn.Module]:
        """``config -> extract(config, reset)``: the model family in the form
        :class:`~ray_nasrank.proxies.ModelProxies` and the strategies' ``model_fn=`` take."""
        return lambda config: self.extract(config, reset=reset)


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
