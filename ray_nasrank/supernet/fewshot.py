"""Few-shot NAS: split a trained one-shot supernet into sub-supernets by the value of one decision.

Each sub-supernet is a copy of the trained one-shot supernet (its initialisation) that only
serves the subnets whose value of ``label`` falls in its group; training and evaluation route
every config to its sub-supernet. The default split gives each value its own sub-supernet. Any
:class:`~ray_nasrank.nn.Supernet` splits: on NB201 the decision is an edge (``cell/e3_0``, or its
position 3) and the values are its ops; on a :class:`~ray_nasrank.nn.ChoiceSupernet` a choice
label.

>>> from ray_nasrank.nn import NB201Supernet
>>> fs = FewShotSupernet(NB201Supernet(channels=4, cells_per_stage=1, in_channels=1), 3)
>>> fs.label, len(fs.subnets), fs.route(("none", "none", "none", "nor_conv_3x3", "none", "none"))
('cell/e3_0', 5, 3)
"""

from __future__ import annotations

import copy
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ray_nasrank.nn import Supernet
from ray_nasrank.spaces import SearchSpace

__all__ = ["FewShotSupernet", "parse_split"]


def parse_split(space: SearchSpace, label: str | int,
                groups: Sequence[Sequence[Any]] | None = None) -> tuple[str, list[list[Any]]]:
    """Check a few-shot split of ``space``: the decision ``label`` (its name, or its position
    among the decisions) and ``groups``, a partition of its values (default: one per value).

    Args:
        space: the supernet's space.
        label: a decision name such as ``"cell/e3_0"`` or ``"op"``, or its index.
        groups: a partition of that decision's values (``None``: one value per group).

    Returns:
        ``(decision name, groups as lists)``.

    Raises:
        ValueError: an unknown decision or value, a decision that is not a categorical choice,
            an empty group, or groups that do not cover every value exactly once.

    >>> from ray_nasrank.spaces import CategoricalSpace
    >>> parse_split(CategoricalSpace({"op": ["conv", "pool", "skip"], "width": [8, 16]}), "op", [["conv"], ["pool", "skip"]])
    ('op', [['conv'], ['pool', 'skip']])
    """
    names = [d.name for d in space.decisions]
    if isinstance(label, (int, np.integer)) and not isinstance(label, bool):
        if not 0 <= label < len(names):
            raise ValueError(f"decision index {label} to split on is outside 0..{len(names) - 1}; decisions: {names}")
        label = names[int(label)]
    if label not in names:
        raise ValueError(f"unknown choice {label!r} to split on; choices: {names}")
    decision = space.decisions[names.index(label)]
    if not decision.categorical:
        raise ValueError(f"few-shot splits a categorical choice; {label!r} is {decision.domain!r}")
    values = list(decision.choices)
    groups = [[v] for v in values] if groups is None else [list(g) for g in groups]
    flat = [v for g in groups for v in g]
    unknown = [v for v in flat if v not in values]
    if unknown:
        raise ValueError(f"unknown value(s) {unknown} in the few-shot split of {label!r}; values: {values}")
    if any(not g for g in groups) or sorted(map(repr, flat)) != sorted(map(repr, values)):
        raise ValueError(f"few-shot groups of {label!r} must cover its values {values} exactly once, "
                         f"without empty groups; got {groups}")
    return label, groups


class FewShotSupernet(Supernet):
    """K sub-supernets, each a copy of ``base`` serving the configs whose value of ``label`` is
    in its group; a config trains, runs and is scored in the copy of its group.

    Splitting after some one-shot epochs (copies start from the trained weights) is the
    few-shot recipe; :attr:`space` is ``base``'s, so samplers, regularizers and evaluation work
    unchanged. It is itself a :class:`~ray_nasrank.nn.Supernet`.

    Args:
        base: the supernet copied into every group.
        label: the decision whose value decides the group (name or index, see :func:`parse_split`).
        groups: a partition of that decision's values (``None``: one value per group).

    Raises:
        TypeError: ``base`` is not a :class:`~ray_nasrank.nn.Supernet`.
        ValueError: an invalid split (see :func:`parse_split`).
    """

    def __init__(self, base: Supernet, label: str | int, groups: Sequence[Sequence[Any]] | None = None) -> None:
        super().__init__()
        if not isinstance(base, Supernet):
            raise TypeError(f"FewShotSupernet splits a ray_nasrank.nn.Supernet (NB201Supernet, ChoiceSupernet), "
                            f"got {type(base).__name__}")
        self.label, self.groups = parse_split(base.space, label, groups)
        self.space = base.space
        self.subnets = nn.ModuleList(copy.deepcopy(base) for _ in self.groups)

    def route(self, config: Any) -> int:
        """Index of the sub-supernet that serves ``config``."""
        value = self.config_of(config)[self.label]
        return next(i for i, g in enumerate(self.groups) if value in g)

    def config_of(self, config: Any) -> dict:
        return self.subnets[0].config_of(config)

    def forward(self, x: Any, config: Any) -> Any:
        return self.subnets[self.route(config)](x, config)

    def extract(self, config: Any, reset: bool = False) -> nn.Module:
        return self.subnets[self.route(config)].extract(config, reset=reset)

    def subnet_parameters(self, config: Any) -> int:
        return self.subnets[self.route(config)].subnet_parameters(config)

    def batched_evaluator(self, calib: Sequence[torch.Tensor], evaluation: Sequence[tuple[torch.Tensor, torch.Tensor]],
                          **options: Any) -> "_RoutedEvaluator":
        """Scores each config in its own sub-supernet (each with
        :func:`~ray_nasrank.supernet.evaluate_configs`: batched where that sub-supernet can)."""
        return _RoutedEvaluator(self, calib, evaluation, options)


class _RoutedEvaluator:
    """The configs of each sub-supernet of a :class:`FewShotSupernet`, scored there together."""

    def __init__(self, model: FewShotSupernet, calib, evaluation, options: dict) -> None:
        self.model, self.calib, self.evaluation, self.options = model, calib, evaluation, options

    def evaluate(self, configs: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        from .evaluate import evaluate_configs

        accs, losses = np.empty(len(configs)), np.empty(len(configs))
        routes = np.asarray([self.model.route(c) for c in configs], dtype=np.int64)
        for k, sub in enumerate(self.model.subnets):
            pos = np.flatnonzero(routes == k)
            if len(pos):
                accs[pos], losses[pos] = evaluate_configs(sub, [configs[i] for i in pos], self.calib,
                                                          self.evaluation, **self.options)
        return accs, losses
