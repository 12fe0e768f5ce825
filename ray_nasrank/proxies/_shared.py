"""SynFlow of many NB201 cells as paths of one weight-sharing supernet at initialisation.

Building a network per cell dominates the cost of data-free proxies on small networks. Here one
:class:`~ray_nasrank.nn.NB201Supernet` is built and every cell is a single-path forward and
backward through it, so all cells are scored at the *same* random initialisation (common random
numbers: differences between cells are not blurred by differences between draws of weights).
The default network is small (1 cell per stage, 8x8 input): a few milliseconds per cell on one
CPU core, and on NASLib's 725-cell NB201 table it ranks like NASLib's full-size per-cell SynFlow
(Spearman 0.995; ``ray-nasrank bench proxies --shared-synflow``, see
``docs/benchmarks/proxies.md``).
"""

from __future__ import annotations

import copy
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ._compute import _check_shape
from ._measures import synflow_linearise, synflow_score, weight_tensors

#: the small network shared SynFlow uses unless told otherwise
SHARED_SYNFLOW_NET: dict[str, Any] = {"channels": 16, "cells_per_stage": 1, "input_shape": (3, 8, 8),
                                      "num_classes": 10}


def _synflow_supernet(channels: int, cells_per_stage: int, in_channels: int, num_classes: int,
                      seed: int) -> nn.Module:
    from ray_nasrank.nn import NB201Supernet

    # the weights depend only on ``seed``, never on the caller's global RNG state
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return NB201Supernet(channels=channels, cells_per_stage=cells_per_stage,
                             in_channels=in_channels, num_classes=num_classes)


def shared_synflow(archs: Sequence[Any], channels: int = SHARED_SYNFLOW_NET["channels"],
                   cells_per_stage: int = SHARED_SYNFLOW_NET["cells_per_stage"],
                   input_shape: Sequence[int] = SHARED_SYNFLOW_NET["input_shape"],
                   num_classes: int = SHARED_SYNFLOW_NET["num_classes"], seed: int = 0,
                   supernet: nn.Module | None = None, device: str | torch.device = "cpu",
                   progress: bool = False) -> np.ndarray:
    """SynFlow (``log sum |theta * dR/dtheta|``, as the ``synflow`` proxy) of every arch in ``archs``.

    Every arch is a path of one supernet: ``supernet`` if given (an ``NB201Supernet``; a copy
    is used, the caller's weights are not touched), else one built from ``seed``. Returns a
    float array aligned to ``archs``; ``-inf`` where the output does not depend on any weight
    (a cell whose output is disconnected from its input).

    Args:
        archs: NB201 archs (strings, 6-tuples or configs).
        channels: stem channels of the supernet built when ``supernet`` is ``None``.
        cells_per_stage: cells per stage of that supernet.
        input_shape: ``(C, H, W)`` of the all-ones input.
        num_classes: number of classes of that supernet.
        seed: seeds that supernet's weights.
        supernet: an ``NB201Supernet`` to score paths of (copied; ``None``: build one).
        device: where the computation runs.
        progress: show a progress bar.

    Returns:
        Float array of one SynFlow score per arch.

    Raises:
        TypeError: ``supernet`` is not an ``NB201Supernet``.
        ValueError: an invalid arch or ``device``.

    >>> v = shared_synflow([("nor_conv_3x3",) * 6, ("skip_connect",) * 6, ("none",) * 6])
    >>> bool(v[0] > v[1]), float(v[2])
    (True, -inf)
    """
    from tqdm.auto import tqdm

    from ray_nasrank.data import resolve_device
    from ray_nasrank.nn import NB201Supernet
    from ray_nasrank.spaces import NB201Space

    shape = _check_shape(input_shape)
    space = NB201Space()
    archs = [space.validate(a) for a in archs]
    dev = resolve_device(device)
    if supernet is None:
        net = _synflow_supernet(int(channels), int(cells_per_stage), shape[0], int(num_classes), seed)
    elif isinstance(supernet, NB201Supernet):
        net = copy.deepcopy(supernet)
    else:
        raise TypeError(f"supernet must be an NB201Supernet, got {type(supernet).__name__}")
    net = synflow_linearise(net.to(dev))
    weights = weight_tensors(net)  # found once, not per arch
    ones = torch.ones((1, net.in_channels, *shape[1:]), dtype=torch.float64, device=dev)
    out = np.empty(len(archs), dtype=np.float64)
    for i, arch in enumerate(tqdm(archs, desc="synflow", disable=not progress, unit="arch")):
        out[i] = synflow_score(net, lambda a=arch: net(ones, a), weights)
    return out
