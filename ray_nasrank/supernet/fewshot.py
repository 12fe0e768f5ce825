"""Few-shot NAS: split a trained one-shot supernet into sub-supernets by the op of one edge.

Each sub-supernet is a copy of the trained one-shot supernet (its initialisation) that only
serves the cells whose op on ``edge`` falls in its group; training and evaluation route every
cell to its sub-supernet. The default split gives each of the 5 ops its own sub-supernet.

>>> import torch
>>> from ray_nasrank.nn import NB201Supernet
>>> fs = FewShotSupernet(NB201Supernet(channels=4, cells_per_stage=1, in_channels=1), edge=3)
>>> len(fs.subnets), fs.route(("none", "none", "none", "nor_conv_3x3", "none", "none"))
(5, 3)
"""

from __future__ import annotations

import copy
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ray_nasrank.nn import NB201Network, NB201Supernet
from ray_nasrank.spaces import EDGE_KEYS, EDGES, OPS, NB201Space

from .evaluate import BatchedEvaluator

__all__ = ["FewShotSupernet", "parse_split"]

_SPACE = NB201Space()


def parse_split(edge: int | str, groups: Sequence[Sequence[str]] | None = None) -> tuple[int, list[list[str]]]:
    """Check a split: ``edge`` as an index 0-5 or a key like ``"e3_0"``; ``groups`` a partition of
    the 5 ops (default: one op per group).

    Args:
        edge: an edge index 0-5 or key such as ``"e3_0"``.
        groups: a partition of the 5 NB201 ops (``None``: one op per group).

    Returns:
        ``(edge index, groups as lists)``.

    Raises:
        ValueError: an unknown edge or op, an empty group, or groups that do not cover every op
            exactly once.
    """
    if isinstance(edge, str):
        if edge not in EDGE_KEYS:
            raise ValueError(f"unknown edge {edge!r}; edges: {list(EDGE_KEYS)}")
        edge = EDGE_KEYS.index(edge)
    if isinstance(edge, bool) or not isinstance(edge, (int, np.integer)) or not 0 <= edge < len(EDGES):
        raise ValueError(f"edge must be an index in 0..{len(EDGES) - 1} or one of {list(EDGE_KEYS)}, got {edge!r}")
    groups = [[op] for op in OPS] if groups is None else [list(g) for g in groups]
    seen: list[str] = [op for g in groups for op in g]
    unknown = [op for op in seen if op not in OPS]
    if unknown:
        raise ValueError(f"unknown op(s) {unknown} in few-shot split; ops: {list(OPS)}")
    if any(not g for g in groups):
        raise ValueError(f"few-shot split has an empty group: {groups}")
    if sorted(seen) != sorted(OPS):
        raise ValueError(f"few-shot groups must cover every op exactly once, got {groups}")
    return int(edge), groups


class FewShotSupernet(nn.Module):
    """K sub-supernets, each a copy of ``base`` serving the cells whose op on ``edge`` is in its group.

    ``sn(x, arch)`` and ``sn.extract(arch)`` route to the sub-supernet of ``arch``.

    Args:
        base: the supernet copied into every group (e.g. after some one-shot epochs).
        edge: the edge whose op decides the group (see :func:`parse_split`).
        groups: a partition of the 5 ops (``None``: one op per group).

    Raises:
        TypeError: ``base`` is not an ``NB201Supernet``.
        ValueError: an invalid split (see :func:`parse_split`).
    """

    def __init__(self, base: NB201Supernet, edge: int | str = 0,
                 groups: Sequence[Sequence[str]] | None = None) -> None:
        super().__init__()
        if not isinstance(base, NB201Supernet):
            raise TypeError(f"FewShotSupernet splits an NB201Supernet, got {type(base).__name__}")
        self.edge, self.groups = parse_split(edge, groups)
        self._group_of = {op: i for i, g in enumerate(self.groups) for op in g}
        self.subnets = nn.ModuleList(copy.deepcopy(base) for _ in self.groups)
        self.in_channels = base.in_channels

    def route(self, arch) -> int:
        """Index of the sub-supernet that serves ``arch``."""
        return self._group_of[_SPACE.validate(arch)[self.edge]]

    def forward(self, x: torch.Tensor, arch) -> torch.Tensor:
        return self.subnets[self.route(arch)](x, arch)

    def extract(self, arch) -> NB201Network:
        return self.subnets[self.route(arch)].extract(arch)

    def evaluators(self, calib, evaluation, **kwargs) -> list[BatchedEvaluator]:
        """One :class:`BatchedEvaluator` per sub-supernet (same data and options)."""
        return [BatchedEvaluator(s, calib, evaluation, **kwargs) for s in self.subnets]

    def evaluate(self, archs: Sequence, calib, evaluation, **kwargs) -> tuple[np.ndarray, np.ndarray]:
        """Weak accuracy and loss of each arch, each scored by its own sub-supernet."""
        archs = [_SPACE.validate(a) for a in archs]
        accs, losses = np.empty(len(archs)), np.empty(len(archs))
        routes = np.asarray([self.route(a) for a in archs], dtype=np.int64)
        for k, ev in enumerate(self.evaluators(calib, evaluation, **kwargs)):
            pos = np.flatnonzero(routes == k)
            if len(pos):
                acc, loss = ev.evaluate([archs[i] for i in pos])
                accs[pos], losses[pos] = acc, loss
        return accs, losses
