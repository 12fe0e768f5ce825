"""Weak labels for any config from a trained :class:`~ray_nasrank.nn.Supernet`, in the form the
strategies take (``weak=`` / ``supernet=``).

Training is :func:`~ray_nasrank.supernet.train_supernet` (SPOS with
``UniformSampler(space=sn.space)`` for your own family, landmarks, RD-NAS); each config is scored
by :func:`~ray_nasrank.supernet.evaluate_configs`. Example (tiny, on sklearn digits):

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

from typing import Mapping, Sequence

import numpy as np
import torch

from ray_nasrank.nn import Supernet

from .evaluate import evaluate_configs

__all__ = ["SupernetWeakLabels"]


class SupernetWeakLabels:
    """Weak labels from a trained supernet: ``labels(configs) -> {"supernet_acc": array}``
    (plus ``"supernet_loss"`` with ``with_loss=True``), each config's subnet scored by
    :func:`evaluate_configs` (per-subnet BN recalibration) and cached per canonical config.

    Its call form is the ``weak=`` / ``supernet=`` form the strategies take.

    Args:
        supernet: the trained supernet (NB201's, a ``ChoiceSupernet``, a ``FewShotSupernet``).
        calib: image batches the BN statistics are recomputed on.
        evaluation: ``(x, y)`` batches to score on.
        with_loss: also return ``supernet_loss``.
        recalibrate: recompute BN statistics per subnet.

    Raises:
        TypeError: ``supernet`` is not a :class:`~ray_nasrank.nn.Supernet`.
    """

    def __init__(self, supernet: Supernet, calib: Sequence[torch.Tensor],
                 evaluation: Sequence[tuple[torch.Tensor, torch.Tensor]], with_loss: bool = False,
                 recalibrate: bool = True) -> None:
        if not isinstance(supernet, Supernet):
            raise TypeError(f"supernet must be a ray_nasrank.nn.Supernet (e.g. a ChoiceSupernet or FewShotSupernet), "
                            f"got {type(supernet).__name__}")
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
