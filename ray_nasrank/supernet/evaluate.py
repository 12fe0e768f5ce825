"""Scoring subnets of a supernet: one path for every :class:`~ray_nasrank.nn.Supernet`.

A subnet's accuracy inside a supernet is only meaningful after its BatchNorm statistics are
recomputed for that path ("BN recalibration"): reset the running statistics, forward a few fixed
calibration batches in train mode with a cumulative average (``momentum=None``), then evaluate
(:func:`ray_nasrank.training.recalibrate_bn`).

:func:`evaluate_configs` does that for any supernet. A supernet that can score many subnets at
once with per-subnet statistics offers it through
:meth:`~ray_nasrank.nn.Supernet.batched_evaluator` (NAS-Bench-201's
:class:`~ray_nasrank.nn.BatchedEvaluator`; a few-shot supernet routes each config to its
sub-supernet), and :func:`evaluate_configs` uses it; otherwise subnets are scored one at a time,
which is also the reference the batched paths are tested against (``batched=False``).

>>> import torch
>>> from ray_nasrank.nn import NB201Supernet
>>> sn = NB201Supernet(channels=4, cells_per_stage=1, in_channels=1)
>>> x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))
>>> acc, loss = evaluate_configs(sn, [("nor_conv_3x3",) * 6, ("skip_connect",) * 6], [x], [(x, y)])
>>> acc.shape
(2,)
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ray_nasrank.nn import BatchedEvaluator, Supernet
from ray_nasrank.spaces import NB201Space, SearchSpace
from ray_nasrank.training import recalibrate_bn

__all__ = ["evaluate_configs", "evaluate_subnet", "BatchedEvaluator", "iso_representatives"]


@torch.no_grad()
def evaluate_configs(model: Supernet, configs: Sequence[Any], calib: Sequence[torch.Tensor],
                     evaluation: Sequence[tuple[torch.Tensor, torch.Tensor]], recalibrate: bool = True, *,
                     batched: bool = True, **options: Any) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy (%) and mean cross-entropy of each config's subnet after its BN statistics are
    recomputed on the ``calib`` batches (``recalibrate=False`` keeps the shared running
    statistics, which measures how much recalibration matters).

    With ``batched`` (and ``recalibrate``), a supernet that offers a batched evaluator
    (:meth:`~ray_nasrank.nn.Supernet.batched_evaluator`) scores many subnets at once;
    otherwise one subnet at a time, overwriting the supernet's BN buffers and leaving it in
    eval mode.

    Args:
        model: the supernet (NB201's, a :class:`~ray_nasrank.nn.ChoiceSupernet`, a few-shot split).
        configs: the configs (any form ``model.space`` reads: arch tuples, configs, strings).
        calib: image batches the BN statistics are recomputed on.
        evaluation: ``(x, y)`` batches to score on.
        recalibrate: recompute BN statistics per subnet.
        batched: use the supernet's batched evaluator when it has one.
        **options: options of that evaluator (NB201: ``chunk``, ``max_rows``, ``amp``,
            ``channels_last``).

    Returns:
        ``(accuracies in percent, mean cross-entropies)``, aligned to ``configs``.

    Raises:
        TypeError: ``model`` is not a :class:`~ray_nasrank.nn.Supernet`.
        ValueError: no calibration batch (with ``recalibrate``), no evaluation batch, or
            ``options`` where subnets are scored one at a time.
    """
    if not isinstance(model, Supernet):
        raise TypeError(f"model must be a ray_nasrank.nn.Supernet (NB201Supernet, ChoiceSupernet, FewShotSupernet), "
                        f"got {type(model).__name__}")
    if recalibrate and not len(calib):
        raise ValueError("BN recalibration needs at least one calibration batch, got none")
    if not len(evaluation):
        raise ValueError("need at least one evaluation batch, got none")
    if batched and recalibrate:
        evaluator = model.batched_evaluator(calib, evaluation, **options)
        if evaluator is not None:
            acc, loss = evaluator.evaluate(list(configs))
            return np.asarray(acc, dtype=np.float64), np.asarray(loss, dtype=np.float64)
    if options:
        raise ValueError(f"evaluation option(s) {sorted(options)} apply to a batched evaluator; "
                         f"{type(model).__name__} scores its subnets one at a time here")
    device = next(model.parameters()).device
    accs, losses = np.empty(len(configs)), np.empty(len(configs))
    for i, config in enumerate(configs):
        if recalibrate:
            recalibrate_bn(model, (x.to(device) for x in calib), lambda x, c=config: model(x, c))
        model.eval()
        correct, loss, n = 0, 0.0, 0
        for x, y in evaluation:
            x, y = x.to(device), y.to(device)
            logits = model(x, config)
            correct += int((logits.argmax(1) == y).sum())
            loss += float(F.cross_entropy(logits, y, reduction="sum"))
            n += len(y)
        accs[i], losses[i] = 100.0 * correct / n, loss / n
    return accs, losses


def evaluate_subnet(supernet: Supernet, config: Any, calib: Sequence[torch.Tensor],
                    evaluation: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> tuple[float, float]:
    """Accuracy (%) and mean cross-entropy of one subnet after BN recalibration, scored alone
    (the simple reference of the batched evaluators). The supernet's BN buffers are overwritten.

    Args:
        supernet: the supernet.
        config: the subnet (any form ``supernet.space`` reads).
        calib: image batches the BN statistics are recomputed on.
        evaluation: ``(x, y)`` batches to score on.

    Returns:
        ``(accuracy in percent, mean cross-entropy)``.

    Raises:
        ValueError: an invalid config, or no calibration batch.
    """
    supernet.config_of(config)  # an invalid config fails here, before the BN buffers are reset
    acc, loss = evaluate_configs(supernet, [config], calib, evaluation, batched=False)
    return float(acc[0]), float(loss[0])


def iso_representatives(archs: Sequence, space: SearchSpace | None = None) -> tuple[list, np.ndarray]:
    """One arch per isomorphism class (the first seen) and, for each input arch, the position of
    its representative.

    Args:
        archs: archs of ``space``.
        space: whose ``iso_key`` says which archs compute the same function (``None``: NB201's
            cell space).

    Returns:
        ``(representatives, members)``: the representatives in order of first appearance, and
        for each input arch the index of its representative.

    Raises:
        ValueError: an invalid arch.
    """
    space = NB201Space() if space is None else space
    first: dict = {}
    reps: list = []
    members = np.empty(len(archs), dtype=np.int64)
    for i, a in enumerate(archs):
        key = space.iso_key(a)
        if key not in first:
            first[key] = len(reps)
            reps.append(a)
        members[i] = first[key]
    return reps, members
