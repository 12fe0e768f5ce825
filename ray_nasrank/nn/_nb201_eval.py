"""Many NB201 cells per data batch: the batched evaluation :class:`NB201Supernet` offers.

A subnet's accuracy inside a supernet is only meaningful after its BatchNorm statistics are
recomputed for that path (BN recalibration). Done one cell at a time
(:func:`ray_nasrank.supernet.evaluate_configs` with ``batched=False``) that costs ``O(A)``
kernel launches per layer for ``A`` cells. Here the cells of a chunk are stacked along the batch
dimension (cell-major, ``A x B`` rows sharing one data batch), every edge runs each op once on
the rows of the cells that chose it, and BatchNorm statistics are computed per cell (a grouped
BN), so the result equals the one-at-a-time protocol while the launches drop to ``O(1)`` per
layer. That is what makes weak labels for all 15,625 cells cheap on a GPU.

>>> import torch
>>> from ray_nasrank.nn import NB201Supernet
>>> sn = NB201Supernet(channels=4, cells_per_stage=1, in_channels=1)
>>> x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))
>>> ev = BatchedEvaluator(sn, calib=[x], evaluation=[(x, y)])
>>> acc, loss = ev.evaluate([("nor_conv_3x3",) * 6, ("skip_connect",) * 6])
>>> acc.shape
(2,)
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ray_nasrank.spaces import EDGES, OPS

from ._nb201 import OP_INDEX, NB201Supernet, ReLUConvBN, ResidualBlock, arch_to_indices

__all__ = ["BatchedEvaluator"]

_NONE, _SKIP, _POOL = OP_INDEX["none"], OP_INDEX["skip_connect"], OP_INDEX["avg_pool_3x3"]


@dataclass
class _BNState:
    """Per-arch BatchNorm statistics of one chunk: collected on calibration batches, then applied."""

    num_archs: int
    collect: bool = True
    sum_mean: dict = field(default_factory=dict)
    sum_var: dict = field(default_factory=dict)
    batches: int = 0

    def stats(self, key: int, sel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.sum_mean[key][sel] / self.batches, self.sum_var[key][sel] / self.batches


class BatchedEvaluator:
    """Weak labels (accuracy, loss) of many subnets with per-arch BN recalibration.

    ``calib``: calibration image batches (fixed, e.g. a few training batches); ``evaluation``:
    ``(x, y)`` batches to score on. Every batch must have the same size. ``chunk``: archs
    evaluated together (default: as many as fit ``max_rows`` stacked images). ``amp`` runs the
    convs in bfloat16 (statistics stay float32) and ``channels_last`` changes the memory layout:
    both are meant for CUDA but run anywhere.

    Results match the one-at-a-time protocol (:func:`ray_nasrank.supernet.evaluate_subnet`)
    arch by arch, up to float rounding.

    Args:
        supernet: the NB201 supernet.
        calib: calibration image batches.
        evaluation: ``(x, y)`` batches to score on.
        chunk: archs evaluated together (``None``: ``max_rows // batch size``).
        max_rows: stacked images per forward when ``chunk`` is ``None``.
        amp: bfloat16 convolutions.
        channels_last: NHWC memory layout.

    Raises:
        TypeError: ``supernet`` is not an ``NB201Supernet``.
        ValueError: no calibration or evaluation batch, batches of different sizes, or a
            ``chunk`` that is not a positive integer.
    """

    def __init__(self, supernet: NB201Supernet, calib: Sequence[torch.Tensor],
                 evaluation: Sequence[tuple[torch.Tensor, torch.Tensor]], chunk: int | None = None,
                 max_rows: int = 4096, amp: bool = False, channels_last: bool = False) -> None:
        if not isinstance(supernet, NB201Supernet):
            raise TypeError(f"BatchedEvaluator needs an NB201Supernet, got {type(supernet).__name__}")
        self.sn = supernet
        self.calib = [x for x in calib]
        self.evaluation = [(x, y) for x, y in evaluation]
        if not self.calib or not self.evaluation:
            raise ValueError(f"need calibration and evaluation batches, got {len(self.calib)} and "
                             f"{len(self.evaluation)}")
        sizes = {int(x.shape[0]) for x in self.calib} | {int(x.shape[0]) for x, _ in self.evaluation}
        if len(sizes) != 1:
            raise ValueError(f"all calibration and evaluation batches must have one size, got sizes {sorted(sizes)}")
        self.batch_size = sizes.pop()
        if chunk is not None and (not isinstance(chunk, int) or chunk < 1):
            raise ValueError(f"chunk must be a positive integer, got {chunk!r}")
        self.chunk = chunk or max(1, max_rows // self.batch_size)
        self.amp = amp
        self.channels_last = channels_last
        self.device = next(supernet.parameters()).device

    # ----------------------------------------------------------------------------- grouped ops
    def _bn(self, bn: nn.BatchNorm2d, y: torch.Tensor, sel: torch.Tensor, st: _BNState) -> torch.Tensor:
        # y holds len(sel) archs x B images, arch-major; statistics are taken per arch
        a, B = len(sel), self.batch_size
        yv = y.float().reshape(a, B, *y.shape[1:])
        key = id(bn)
        if st.collect:
            # spatial means first (a fast contiguous reduction), then over the arch's images
            yf = y.float()
            mean = yf.mean(dim=(2, 3)).view(a, B, -1).mean(1)
            var = (yf * yf).mean(dim=(2, 3)).view(a, B, -1).mean(1) - mean * mean
            var = var.clamp_min(0.0)
            n = B * y.shape[2] * y.shape[3]
            unbiased = var * (n / max(n - 1, 1))
            if key not in st.sum_mean:
                st.sum_mean[key] = torch.zeros(st.num_archs, y.shape[1], device=y.device)
                st.sum_var[key] = torch.zeros(st.num_archs, y.shape[1], device=y.device)
            st.sum_mean[key].index_add_(0, sel, mean)
            st.sum_var[key].index_add_(0, sel, unbiased)
        else:
            mean, var = st.stats(key, sel)
        scale = torch.rsqrt(var + bn.eps)
        shift = -mean * scale
        if bn.affine:
            scale = scale * bn.weight
            shift = shift * bn.weight + bn.bias
        out = yv * scale[:, None, :, None, None] + shift[:, None, :, None, None]
        return out.reshape(y.shape).to(y.dtype)

    def _relu_conv_bn(self, m: ReLUConvBN, h: torch.Tensor, sel: torch.Tensor, st: _BNState) -> torch.Tensor:
        return self._bn(m[2], m[1](F.relu(h)), sel, st)

    def _reduction(self, blk: ResidualBlock, h: torch.Tensor, sel: torch.Tensor, st: _BNState) -> torch.Tensor:
        body = self._relu_conv_bn(blk.conv_b, self._relu_conv_bn(blk.conv_a, h, sel, st), sel, st)
        return blk.downsample(h) + body

    def _rows(self, t: torch.Tensor, a: int) -> torch.Tensor:
        # a [a, -1] view of an arch-major tensor in its memory order (NCHW or channels_last)
        if self.channels_last:
            return t.contiguous(memory_format=torch.channels_last).permute(0, 2, 3, 1).reshape(a, -1)
        return t.contiguous().view(a, -1)

    def _unrows(self, r: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        n, c, hh, ww = -1, *like.shape[1:]
        if self.channels_last:
            return r.reshape(n, hh, ww, c).permute(0, 3, 1, 2)
        return r.reshape(n, c, hh, ww)

    def _cell(self, cell, h: torch.Tensor, idx: torch.Tensor, groups: list, st: _BNState) -> torch.Tensor:
        A = idx.shape[0]
        nodes = [h]
        for to_node in range(1, 4):
            acc = self._rows(torch.zeros_like(h), A)  # node sum, as [A, -1] rows in memory order
            for k, (t, f) in enumerate(EDGES):
                if t != to_node:
                    continue
                src = nodes[f]
                for op, sel in groups[k]:
                    if op == _NONE:  # adds exact zeros
                        continue
                    full = len(sel) == A
                    x = src if full else self._unrows(self._rows(src, A).index_select(0, sel), src)
                    module = cell.edges[k][OPS[op]]
                    if op == _SKIP:
                        y = x
                    elif op == _POOL:
                        y = module(x)
                    else:
                        y = self._relu_conv_bn(module, x, sel, st)
                    if full:
                        acc = acc + self._rows(y, A)
                    else:
                        acc.index_add_(0, sel, self._rows(y, len(sel)).to(acc.dtype))
            nodes.append(self._unrows(acc, h))
        return nodes[3]

    def _forward(self, x: torch.Tensor, idx: torch.Tensor, groups: list, st: _BNState,
                 all_sel: torch.Tensor) -> torch.Tensor:
        sn = self.sn
        A = idx.shape[0]
        # the stem does not depend on the arch: run it once, with one shared set of statistics
        one = all_sel[:1]
        h = self._bn(sn.stem[1], sn.stem[0](x), one, st)
        h = h.unsqueeze(0).expand(A, *h.shape).reshape(A * h.shape[0], *h.shape[1:])
        if self.channels_last:
            h = h.contiguous(memory_format=torch.channels_last)
        for i, cell in enumerate(sn.cells):
            if str(i) in sn.reductions:
                h = self._reduction(sn.reductions[str(i)], h, all_sel, st)
            h = self._cell(cell, h, idx, groups, st)
        h = F.relu(self._bn(sn.lastact[0], h, all_sel, st))
        h = h.float().mean(dim=(2, 3))
        return sn.classifier(h)

    def _autocast(self):
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)

    # ----------------------------------------------------------------------------- public
    @torch.no_grad()
    def evaluate(self, archs: Sequence) -> tuple[np.ndarray, np.ndarray]:
        """Accuracy (%) and mean cross-entropy of each arch, as two float arrays."""
        idx_all = torch.tensor([arch_to_indices(a) for a in archs], dtype=torch.long)
        accs = np.empty(len(archs))
        losses = np.empty(len(archs))
        was_training = self.sn.training
        self.sn.eval()
        try:
            for start in range(0, len(archs), self.chunk):
                idx = idx_all[start:start + self.chunk]
                acc, loss = self._evaluate_chunk(idx)
                accs[start:start + len(idx)] = acc
                losses[start:start + len(idx)] = loss
        finally:
            self.sn.train(was_training)
        return accs, losses

    def _evaluate_chunk(self, idx: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        A, dev = idx.shape[0], self.device
        all_sel = torch.arange(A, device=dev)
        groups = []
        for k in range(len(EDGES)):
            col = idx[:, k]
            groups.append([(op, torch.nonzero(col == op).flatten().to(dev))
                           for op in range(len(OPS)) if bool((col == op).any())])
        st = _BNState(num_archs=A)
        with self._autocast():
            for x in self.calib:
                self._forward(x.to(dev), idx, groups, st, all_sel)
                st.batches += 1
            st.collect = False
            correct = torch.zeros(A, device=dev)
            loss = torch.zeros(A, device=dev)
            n = 0
            for x, y in self.evaluation:
                x, y = x.to(dev), y.to(dev)
                logits = self._forward(x, idx, groups, st, all_sel).float().view(A, len(y), -1)
                correct += (logits.argmax(-1) == y).sum(1)
                loss += F.cross_entropy(logits.reshape(A * len(y), -1), y.repeat(A),
                                        reduction="none").view(A, -1).sum(1)
                n += len(y)
        return (100.0 * correct / n).cpu().numpy(), (loss / n).cpu().numpy()
