"""NAS-Bench-201 as a built-in model family: its cell space, the network of a cell, the
weight-sharing supernet over the cells, its intrinsic weak labels and a pool of one cell per
isomorphism class.

>>> fam = nb201_family(in_channels=1, num_classes=10, channels=8, cells_per_stage=1)
>>> fam.spec, fam.space.size, fam.has_supernet, fam.has_proxies
('nb201', 15625, True, False)
>>> len(fam.candidate_pool(10, seed=0)), len(fam.candidate_pool(0, seed=0))
(10, 6466)
"""

from __future__ import annotations

from functools import partial

import numpy as np

from ray_nasrank.spaces import Arch, NB201Space

from ._family import ModelFamily

__all__ = ["nb201_family", "nb201_pool"]


def nb201_family(in_channels: int = 3, num_classes: int = 10, channels: int = 16,
                 cells_per_stage: int = 5) -> ModelFamily:
    """The NB201 family; the network and supernet have ``channels`` stem channels and
    ``cells_per_stage`` cells per stage (defaults: the network NB201's tables were trained on).

    Args:
        in_channels: image channels of the data.
        num_classes: classes of the data.
        channels: stem channels C of the network and the supernet.
        cells_per_stage: cells per stage N.

    Returns:
        The family: ``model_fn(config)`` builds the cell's ``NB201Network``; the supernet is an
        ``NB201Supernet`` of the same shape, built where it trains; the intrinsic labels are the
        space's (params, FLOPs, SynFlow), which stand in for generic zero-cost proxies; the pool
        draws distinct isomorphism classes (:func:`nb201_pool`).
    """
    space = NB201Space()
    shape = {"channels": channels, "cells_per_stage": cells_per_stage, "in_channels": in_channels,
             "num_classes": num_classes}
    return ModelFamily(space=space, model_fn=space.model_fn(**shape), spec="nb201", supernet_config=shape,
                       proxies=(), pool=partial(nb201_pool, space))


def nb201_pool(space: NB201Space, size: int, seed: int) -> list[Arch]:
    """``size`` cells of distinct isomorphism classes, drawn with ``seed`` in enumeration order
    (``0`` or at least the number of classes: one cell per class, 6,466)."""
    from ray_nasrank.supernet import iso_representatives

    reps, _ = iso_representatives(list(space.enumerate()))
    if size == 0 or size >= len(reps):
        return reps
    idx = np.sort(np.random.default_rng(seed).choice(len(reps), size=size, replace=False))
    return [reps[int(i)] for i in idx]
