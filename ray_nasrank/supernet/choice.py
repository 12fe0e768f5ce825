"""Your own supernet (a :class:`~ray_nasrank.nn.ChoiceSupernet`): few-shot split, evaluation
with per-subnet BN recalibration, and weak labels for any config.

Training is :func:`~ray_nasrank.supernet.train_supernet` itself (SPOS with
``UniformSampler(space=sn.space)``, landmarks, RD-NAS). Example (tiny, on sklearn digits):

>>> import torch
>>> from torch import nn
>>> from ray_nasrank.data import load_dataset
>>> from ray_nasrank.nn import ChoiceSupernet, OpChoice, SlimBatchNorm2d, SlimConv2d, SlimLinear, WidthChoice
>>> from ray_nasrank.supernet import SupernetTrainConfig, UniformSampler, train_supernet
>>> w = WidthChoice("width", [4, 8])
>>> sn = ChoiceSupernet(nn.Sequential(
...     SlimConv2d(1, w, 3, padding=1), SlimBatchNorm2d(w), nn.ReLU(),
...     OpChoice({"conv": SlimConv2d(w, w, 3, padding=1), "pool": nn.AvgPool2d(3, 1, 1)}, label="op"),
...     nn.AdaptiveAvgPool2d(1), nn.Flatten(), SlimLinear(w, 10)))
>>> data = load_dataset("digits", limit_train=128)
>>> _ = train_supernet(sn, data.train, SupernetTrainConfig(epochs=1, batch_size=32),
...                    sampler=UniformSampler(0, space=sn.space))
>>> weak = SupernetWeakLabels(sn, calib=[data.train.x[:32]], evaluation=[(data.valid.x[:64], data.valid.y[:64])])
>>> labels = weak([{"width": 4, "op": "conv"}, {"width": 8, "op": "pool"}])
>>> labels["supernet_acc"].shape
(2,)
"""

from __future__ import annotations

import copy
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ray_nasrank.nn import ChoiceSupernet
from ray_nasrank.training import recalibrate_bn

__all__ = ["FewShotChoiceSupernet", "evaluate_configs", "SupernetWeakLabels"]


class FewShotChoiceSupernet(nn.Module):
    """Few-shot NAS on a user supernet: one copy of ``base`` per group of values of the choice
    ``label`` (default: one per value); a config trains and is scored in the copy of its group.

    Splitting after some one-shot epochs (copies start from the trained weights) is the
    few-shot recipe; :attr:`space` is ``base``'s, so samplers and evaluation work unchanged.

    Args:
        base: the supernet copied into every group.
        label: the choice whose value decides the group.
        groups: a partition of that choice's values (``None``: one value per group).

    Raises:
        TypeError: ``base`` is not a :class:`~ray_nasrank.nn.ChoiceSupernet`.
        ValueError: an unknown label, or groups that do not cover its values exactly once or
            hold an empty group.
    """

    def __init__(self, base: ChoiceSupernet, label: str, groups: Sequence[Sequence[Any]] | None = None) -> None:
        super().__init__()
        if not isinstance(base, ChoiceSupernet):
            raise TypeError(f"FewShotChoiceSupernet splits a ChoiceSupernet, got {type(base).__name__}")
        if label not in base.labels:
            raise ValueError(f"unknown choice {label!r} to split on; choices: {list(base.labels)}")
        values = base.plain_space()[label]
        groups = [[v] for v in values] if groups is None else [list(g) for g in groups]
        flat = [v for g in groups for v in g]
        if any(not g for g in groups) or sorted(map(repr, flat)) != sorted(map(repr, values)):
            raise ValueError(f"few-shot groups of {label!r} must cover its values {values} exactly once, "
                             f"without empty groups; got {groups}")
        self.label, self.groups = label, groups
        self.space = base.space
        self.subnets = nn.ModuleList(copy.deepcopy(base) for _ in groups)

    def route(self, config: Any) -> int:
        """Index of the copy that serves ``config``."""
        value = self.subnets[0].config_of(config)[self.label]
        return next(i for i, g in enumerate(self.groups) if value in g)

    def forward(self, x: Any, config: Any) -> Any:
        return self.subnets[self.route(config)](x, config)

    def extract(self, config: Any, reset: bool = False) -> nn.Module:
        return self.subnets[self.route(config)].extract(config, reset=reset)

    def config_of(self, config: Any) -> dict:
        return self.subnets[0].config_of(config)


@torch.no_grad()
def evaluate_configs(model: ChoiceSupernet | FewShotChoiceSupernet, configs: Sequence[Any],
                     calib: Sequence[torch.Tensor], evaluation: Sequence[tuple[torch.Tensor, torch.Tensor]],
                     recalibrate: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy (%) and mean cross-entropy of each config's subnet, one at a time, after its BN
    statistics are recomputed on the ``calib`` batches (``recalibrate=False`` keeps the shared
    running statistics, which measures how much recalibration matters). The supernet's BN
    buffers are overwritten; it is left in eval mode.

    Args:
        model: the (few-shot) choice supernet.
        configs: the configs (dicts or arch tuples of ``model.space``).
        calib: image batches the BN statistics are recomputed on.
        evaluation: ``(x, y)`` batches to score on.
        recalibrate: recompute BN statistics per subnet.

    Returns:
        ``(accuracies in percent, mean cross-entropies)``, aligned to ``configs``.

    Raises:
        ValueError: no calibration batch (with ``recalibrate``) or no evaluation batch.
    """
    if recalibrate and not len(calib):
        raise ValueError("BN recalibration needs at least one calibration batch, got none")
    if not len(evaluation):
        raise ValueError("need at least one evaluation batch, got none")
    device = next(model.parameters()).device
    accs, losses = np.empty(len(configs)), np.empty(len(configs))
    for i, config in enumerate(configs):
        net = model.subnets[model.route(config)] if isinstance(model, FewShotChoiceSupernet) else model
        if recalibrate:
            recalibrate_bn(net, (x.to(device) for x in calib), lambda x, c=config: net(x, c))
        net.eval()
        correct, loss, n = 0, 0.0, 0
        for x, y in evaluation:
            x, y = x.to(device), y.to(device)
            logits = net(x, config)
            correct += int((logits.argmax(1) == y).sum())
            loss += float(F.cross_entropy(logits, y, reduction="sum"))
            n += len(y)
        accs[i], losses[i] = 100.0 * correct / n, loss / n
    return accs, losses


class SupernetWeakLabels:
    """Weak labels from a trained user supernet: ``labels(configs) -> {"supernet_acc": array}``
    (plus ``"supernet_loss"`` with ``with_loss=True``), each config's subnet scored by
    :func:`evaluate_configs` (per-subnet BN recalibration) and cached per canonical config.

    Its call form is the ``weak=`` / ``supernet=`` form the strategies take.

    Args:
        supernet: the trained (few-shot) choice supernet.
        calib: image batches the BN statistics are recomputed on.
        evaluation: ``(x, y)`` batches to score on.
        with_loss: also return ``supernet_loss``.
        recalibrate: recompute BN statistics per subnet.

    Raises:
        TypeError: ``supernet`` is not a ``ChoiceSupernet`` or ``FewShotChoiceSupernet``.
    """

    def __init__(self, supernet: ChoiceSupernet | FewShotChoiceSupernet, calib: Sequence[torch.Tensor],
                 evaluation: Sequence[tuple[torch.Tensor, torch.Tensor]], with_loss: bool = False,
                 recalibrate: bool = True) -> None:
        if not isinstance(supernet, (ChoiceSupernet, FewShotChoiceSupernet)):
            raise TypeError(f"supernet must be a ChoiceSupernet or FewShotChoiceSupernet, got {type(supernet).__name__}")
        self.supernet = supernet
        self.calib, self.evaluation = list(calib), list(evaluation)
        self.with_loss, self.recalibrate = with_loss, recalibrate
        self._cache: dict = {}

    @property
    def names(self) -> tuple[str, ...]:
        return ("supernet_acc", "supernet_loss") if self.with_loss else ("supernet_acc",)

    def __call__(self, configs: Sequence[Mapping | tuple]) -> dict[str, np.ndarray]:
        from ray_nasrank.proxies import canonical_config

        keyed = [self.supernet.config_of(c) for c in configs]
        keys = [canonical_config(c) for c in keyed]
        todo = {k: c for k, c in zip(keys, keyed) if k not in self._cache}
        if todo:
            acc, loss = evaluate_configs(self.supernet, list(todo.values()), self.calib, self.evaluation,
                                         recalibrate=self.recalibrate)
            self._cache.update({k: (a, lo) for k, a, lo in zip(todo, acc, loss)})
        out = {"supernet_acc": np.array([self._cache[k][0] for k in keys], dtype=np.float64)}
        if self.with_loss:
            out["supernet_loss"] = np.array([self._cache[k][1] for k in keys], dtype=np.float64)
        return out
