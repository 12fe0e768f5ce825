"""NAS-Bench-201 networks: the macro skeleton, a stand-alone network per cell and a supernet.

The skeleton follows NB201: a 3x3 stem conv + BN, three stages of ``cells_per_stage`` cells with
``C``, ``2C`` and ``4C`` channels, a residual basic block (stride 2) between stages, then
BN-ReLU, global average pooling and a linear classifier. Global pooling makes every network
resolution-agnostic (8x8 digits, 28x28 Fashion-MNIST, 32x32 CIFAR all work).

A cell has 4 nodes; node ``j`` is the sum of ``op_(j,i)(node_i)`` over ``i < j`` and node 3 is
the output. Ops are NB201's: ``none`` (zeros), ``skip_connect`` (identity), ``nor_conv_1x1`` and
``nor_conv_3x3`` (ReLU-Conv-BN) and ``avg_pool_3x3`` (stride 1, pad 1).

:class:`NB201Supernet` holds every op on every edge; ``sn(x, arch)`` runs one path, and
``sn.extract(arch)`` returns an :class:`NB201Network` loaded with the shared weights, so the two
compute the same function. It is a :class:`~ray_nasrank.nn.Supernet` like a user's
:class:`~ray_nasrank.nn.ChoiceSupernet` (its labels are the space's edge decisions,
``cell/e1_0`` ... ``cell/e3_2``), and adds two fast paths the supernet tools use when offered:
exact parameter counts without building a network, and the batched evaluation of many cells
(:class:`~ray_nasrank.nn.BatchedEvaluator`).

>>> import torch
>>> net = NB201Network("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|",
...                    channels=4, cells_per_stage=1, in_channels=1, num_classes=10)
>>> net(torch.zeros(2, 1, 8, 8)).shape
torch.Size([2, 10])
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import nn

from ray_nasrank.spaces import EDGES, OPS, NB201Space

from ._choice import reset_weights
from ._supernet import Supernet

__all__ = [
    "OPS_FACTORY",
    "ReLUConvBN",
    "Zero",
    "ResidualBlock",
    "NB201Cell",
    "NB201Network",
    "NB201Supernet",
    "arch_to_indices",
    "count_parameters",
]

_SPACE = NB201Space()
#: op name -> position in :data:`OPS` (the index used by supernet batch code)
OP_INDEX: dict[str, int] = {op: i for i, op in enumerate(OPS)}


class Zero(nn.Module):
    """NB201's ``none``: multiplies by zero (keeps shape, dtype and device; no weights)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv2d (no bias) -> BatchNorm2d, NB201's ``nor_conv_kxk``.

    Args:
        c_in: input channels.
        c_out: output channels.
        kernel_size: the convolution's kernel size.
        stride: the convolution's stride.
        padding: the convolution's padding.
        affine: the BatchNorm learns a scale and shift.
    """

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 affine: bool = True) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


def _avg_pool(c: int, affine: bool = True) -> nn.Module:
    # inside a cell C_in == C_out, so NB201's POOLING is only the pool (no 1x1 preprocess)
    return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)


#: op name -> factory(channels, affine) building that op for a cell edge (stride 1, C_in == C_out)
OPS_FACTORY: dict[str, Callable[[int, bool], nn.Module]] = {
    "none": lambda c, affine=True: Zero(),
    "skip_connect": lambda c, affine=True: nn.Identity(),
    "nor_conv_1x1": lambda c, affine=True: ReLUConvBN(c, c, 1, 1, 0, affine),
    "nor_conv_3x3": lambda c, affine=True: ReLUConvBN(c, c, 3, 1, 1, affine),
    "avg_pool_3x3": _avg_pool,
}


class ResidualBlock(nn.Module):
    """NB201's residual reduction block: two ReLU-Conv-BN 3x3 (the first with stride 2) plus a
    shortcut of 2x2 average pooling and a 1x1 conv.

    Args:
        c_in: input channels.
        c_out: output channels.
        affine: the BatchNorm layers learn a scale and shift.
    """

    def __init__(self, c_in: int, c_out: int, affine: bool = True) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1, affine)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1, affine)
        self.downsample = nn.Sequential(
            # ceil_mode keeps the shortcut's size equal to the strided conv's on odd inputs
            # (7x7 -> 4x4 on both paths); count_include_pad=False averages only real pixels
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0, ceil_mode=True, count_include_pad=False),
            nn.Conv2d(c_in, c_out, 1, stride=1, padding=0, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


def arch_to_indices(arch) -> tuple[int, ...]:
    """An arch (6-tuple, NB201 string or config) as 6 op indices into :data:`OPS`.

    Args:
        arch: the cell.

    Returns:
        Six indices into ``OPS``, in ``EDGES`` order.

    Raises:
        ValueError: an invalid cell.
    """
    return tuple(OP_INDEX[op] for op in _SPACE.validate(arch))


def _sum_edges(node_inputs: list[torch.Tensor], edge_out: Callable[[int, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    # node j = sum over its input edges; edges are in EDGES order, so inputs are always ready
    nodes = list(node_inputs)
    for to_node in range(1, 4):
        acc = None
        for k, (t, f) in enumerate(EDGES):
            if t == to_node:
                y = edge_out(k, nodes[f])
                acc = y if acc is None else acc + y
        nodes.append(acc)
    return nodes[3]


class NB201Cell(nn.Module):
    """One cell with a fixed op per edge (``edges[k]`` is the op of ``EDGES[k]``).

    Args:
        arch: six op names in ``EDGES`` order.
        channels: channels of every edge (in and out).
        affine: BatchNorm layers learn a scale and shift.

    Raises:
        KeyError: an unknown op name.
    """

    def __init__(self, arch: Sequence[str], channels: int, affine: bool = True) -> None:
        super().__init__()
        self.arch = tuple(arch)
        self.edges = nn.ModuleList(OPS_FACTORY[op](channels, affine) for op in self.arch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _sum_edges([x], lambda k, h: self.edges[k](h))


class _Skeleton(nn.Module):
    """Stem, reduction blocks and head shared by the stand-alone network and the supernet."""

    def __init__(self, channels: int, cells_per_stage: int, in_channels: int, num_classes: int,
                 affine: bool) -> None:
        super().__init__()
        for name, value in (("channels", channels), ("cells_per_stage", cells_per_stage),
                            ("in_channels", in_channels), ("num_classes", num_classes)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.channels = channels
        self.cells_per_stage = cells_per_stage
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )
        #: channels of each cell, in order; reductions sit before stage 2 and stage 3
        self.cell_channels: list[int] = []
        self.reductions = nn.ModuleDict()
        for stage in range(3):
            c = channels * 2 ** stage
            if stage > 0:
                self.reductions[str(len(self.cell_channels))] = ResidualBlock(c // 2, c, affine)
            self.cell_channels.extend([c] * cells_per_stage)
        c_last = channels * 4
        self.lastact = nn.Sequential(nn.BatchNorm2d(c_last), nn.ReLU(inplace=False))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_last, num_classes)

    def check_input(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"input must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected input of shape [N, {self.in_channels}, H, W], got {list(x.shape)}"
            )

    def head(self, h: torch.Tensor) -> torch.Tensor:
        h = self.global_pooling(self.lastact(h))
        return self.classifier(h.flatten(1))

    def run_cells(self, x: torch.Tensor, *cell_args) -> torch.Tensor:
        """Stem, every cell (``cell(h, *cell_args)``) with the reductions between, then the head."""
        self.check_input(x)
        h = self.stem(x)
        for i, cell in enumerate(self.cells):
            if str(i) in self.reductions:
                h = self.reductions[str(i)](h)
            h = cell(h, *cell_args)
        return self.head(h)


class NB201Network(_Skeleton):
    """A stand-alone NB201 network for one cell (the same cell in every position).

    Args:
        arch: the cell (6-tuple, NB201 string or config).
        channels: channels of the first stage (doubled at each of the two reductions).
        cells_per_stage: cells in each of the three stages.
        in_channels: channels of the input images.
        num_classes: outputs of the classifier.
        affine: BatchNorm layers learn a scale and shift.

    Raises:
        ValueError: an invalid cell, or a size that is not a positive integer.

    >>> import torch
    >>> net = NB201Network(("nor_conv_3x3",) * 6, channels=4, cells_per_stage=1, in_channels=1)
    >>> net(torch.randn(3, 1, 28, 28)).shape
    torch.Size([3, 10])
    """

    def __init__(self, arch, channels: int = 16, cells_per_stage: int = 5, in_channels: int = 3,
                 num_classes: int = 10, affine: bool = True) -> None:
        super().__init__(channels, cells_per_stage, in_channels, num_classes, affine)
        self.arch: tuple[str, ...] = _SPACE.validate(arch)
        self.cells = nn.ModuleList(NB201Cell(self.arch, c, affine) for c in self.cell_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run_cells(x)

    def extra_repr(self) -> str:
        return f"arch={_SPACE.to_string(self.arch)!r}"


class SuperCell(nn.Module):
    """A cell holding all 5 ops on every edge: ``edges[k][op]``.

    Args:
        channels: channels of every edge (in and out).
        affine: BatchNorm layers learn a scale and shift.
    """

    def __init__(self, channels: int, affine: bool = True) -> None:
        super().__init__()
        self.channels = channels
        self.edges = nn.ModuleList(
            nn.ModuleDict({op: OPS_FACTORY[op](channels, affine) for op in OPS}) for _ in EDGES
        )

    def forward(self, x: torch.Tensor, arch: Sequence[str]) -> torch.Tensor:
        return _sum_edges([x], lambda k, h: self.edges[k][arch[k]](h))


class NB201Supernet(_Skeleton, Supernet):
    """Weight-sharing supernet over all 15,625 NB201 cells (every op on every edge).

    ``sn(x, arch)`` is a single-path forward; every cell position uses ``arch`` (a 6-tuple, an
    NB201 string or a config of :attr:`space`). The weights of the stem, reduction blocks and
    head are shared by all paths. A :class:`~ray_nasrank.nn.Supernet`: few-shot splitting,
    evaluation, weak labels and training treat it like any other.

    Args:
        channels: channels of the first stage (doubled at each of the two reductions).
        cells_per_stage: cells in each of the three stages.
        in_channels: channels of the input images.
        num_classes: outputs of the classifier.
        affine: BatchNorm layers learn a scale and shift.

    Raises:
        ValueError: a size that is not a positive integer.

    >>> import torch
    >>> sn = NB201Supernet(channels=4, cells_per_stage=1, in_channels=1).eval()
    >>> arch = ("nor_conv_3x3", "skip_connect", "avg_pool_3x3", "none", "nor_conv_1x1", "nor_conv_3x3")
    >>> x = torch.randn(2, 1, 8, 8)
    >>> torch.allclose(sn(x, arch), sn.extract(arch).eval()(x))
    True
    """

    def __init__(self, channels: int = 16, cells_per_stage: int = 5, in_channels: int = 3,
                 num_classes: int = 10, affine: bool = True) -> None:
        super().__init__(channels, cells_per_stage, in_channels, num_classes, affine)
        self.affine = affine
        self.space = _SPACE
        self.cells = nn.ModuleList(SuperCell(c, affine) for c in self.cell_channels)

    def forward(self, x: torch.Tensor, arch) -> torch.Tensor:
        return self.run_cells(x, _SPACE.validate(arch))

    def config(self) -> dict:
        """Constructor arguments (to rebuild a supernet of the same shape)."""
        return {"channels": self.channels, "cells_per_stage": self.cells_per_stage,
                "in_channels": self.in_channels, "num_classes": self.num_classes, "affine": self.affine}

    def extract(self, arch, reset: bool = False) -> NB201Network:
        """A stand-alone network for ``arch`` holding copies of the shared weights and BN buffers.

        In eval mode its forward equals ``self(x, arch)`` (in train mode too: BN uses batch
        statistics in both). ``reset=True`` re-initialises it (for training from scratch).
        """
        arch = _SPACE.validate(arch)
        p = next(self.parameters())
        net = NB201Network(arch, **self.config()).to(device=p.device, dtype=p.dtype)
        net.stem.load_state_dict(self.stem.state_dict())
        net.reductions.load_state_dict(self.reductions.state_dict())
        net.lastact.load_state_dict(self.lastact.state_dict())
        net.classifier.load_state_dict(self.classifier.state_dict())
        for net_cell, super_cell in zip(net.cells, self.cells):
            for k, op in enumerate(arch):
                net_cell.edges[k].load_state_dict(super_cell.edges[k][op].state_dict())
        net.train(self.training)
        return reset_weights(net) if reset else net

    def subnet_parameters(self, arch) -> int:
        """Trainable parameters of the stand-alone network of ``arch``, summed from the shared
        skeleton and the chosen op of every edge (exact, no network built)."""
        arch = _SPACE.validate(arch)
        if getattr(self, "_param_counts", None) is None:
            # the counts depend on the shape only: computed once per supernet
            base = count_parameters(self.stem) + count_parameters(self.reductions) \
                + count_parameters(self.lastact) + count_parameters(self.classifier)
            per_op = [[{op: count_parameters(m) for op, m in edge.items()} for edge in cell.edges]
                      for cell in self.cells]
            self._param_counts = (base, per_op)
        base, per_op = self._param_counts
        return base + sum(cell[k][arch[k]] for cell in per_op for k in range(len(EDGES)))

    def batched_evaluator(self, calib: Sequence[torch.Tensor], evaluation: Sequence[tuple[torch.Tensor, torch.Tensor]],
                          **options: Any):
        """A :class:`~ray_nasrank.nn.BatchedEvaluator` of this supernet: many cells per data
        batch, per-cell BN statistics (``options``: ``chunk``, ``max_rows``, ``amp``,
        ``channels_last``)."""
        from ._nb201_eval import BatchedEvaluator

        return BatchedEvaluator(self, calib, evaluation, **options)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters of a module (for a stand-alone network: its size).

    Args:
        module: any module.

    Returns:
        The number of elements of its parameters that require gradients.
    """
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
