"""Supernet training: single-path uniform sampling (SPOS) with optional landmark and RD-NAS terms.

One loop serves every method: each step draws a training batch and either one uniform path
(SPOS) or, with a :class:`~ray_nasrank.supernet.regularizers.RankDistiller`, a group-distance
pair; a :class:`~ray_nasrank.supernet.regularizers.LandmarkRegularizer` adds its hinge. The model
is anything with ``model(x, arch) -> logits``: any :class:`~ray_nasrank.nn.Supernet` (NB201's, a
:class:`~ray_nasrank.nn.ChoiceSupernet`, a :class:`~ray_nasrank.supernet.FewShotSupernet`). SGD with Nesterov momentum and a cosine
learning rate over ``total_epochs`` (so a few-shot phase continues the one-shot schedule).

>>> import torch
>>> from ray_nasrank.data import load_dataset
>>> from ray_nasrank.nn import NB201Supernet
>>> data = load_dataset("digits", limit_train=64)
>>> sn = NB201Supernet(channels=4, cells_per_stage=1, in_channels=1)
>>> hist = train_supernet(sn, data.train, SupernetTrainConfig(epochs=1, batch_size=32))
>>> len(hist["epoch_loss"])
1
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .regularizers import LandmarkRegularizer, RankDistiller
from .sampling import FairSampler, UniformSampler

__all__ = ["SupernetTrainConfig", "train_supernet"]


@dataclass
class SupernetTrainConfig:
    """Supernet optimisation settings (epochs are passes over the training split).

    Args:
        epochs: passes over the training split (>= 0).
        batch_size: training batch size (>= 2, for BatchNorm).
        lr: peak SGD learning rate of the cosine schedule.
        momentum: SGD momentum.
        weight_decay: L2 weight decay.
        grad_clip: maximum global gradient norm.
        seed: seeds the batch order and the sampled paths.
        amp: bfloat16 autocast (meant for CUDA).

    Raises:
        ValueError: a field of the wrong type or out of range.
    """

    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    grad_clip: float = 5.0
    seed: int = 0
    #: bfloat16 autocast (meant for CUDA)
    amp: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.epochs, int) or self.epochs < 0:
            raise ValueError(f"epochs must be a non-negative integer, got {self.epochs!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 2:
            raise ValueError(f"batch_size must be an integer >= 2 (BatchNorm), got {self.batch_size!r}")
        for name in ("lr", "momentum", "weight_decay", "grad_clip"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"{name} must be a non-negative number, got {v!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def train_supernet(model: nn.Module, train, config: SupernetTrainConfig, *, start_epoch: int = 0,
                   total_epochs: int | None = None, landmark: LandmarkRegularizer | None = None,
                   distill: RankDistiller | None = None, sampler: UniformSampler | FairSampler | None = None,
                   landmark_data=None, on_epoch: Callable[[int, dict], None] | None = None) -> dict:
    """Train ``model`` for ``config.epochs`` epochs on ``train`` (a ``TensorSplit``).

    ``start_epoch``/``total_epochs`` place these epochs inside a longer cosine schedule (and
    drive the regularizers' schedules). ``landmark_data`` (a ``TensorSplit``, e.g. held-out
    validation images) feeds the landmark hinge, as in the paper; default: the training batch.
    ``on_epoch(epoch, history)`` is called after every epoch.

    Args:
        model: a supernet called as ``model(x, arch)``.
        train: the training ``TensorSplit``.
        config: the optimisation settings.
        start_epoch: epochs already done in the longer schedule.
        total_epochs: the longer schedule's length (``None``: ``start_epoch + config.epochs``).
        landmark: a landmark hinge added to the loss.
        distill: a ranking distiller whose pair replaces the single path of each step.
        sampler: draws each step's path (``None``: uniform over NB201); a :class:`FairSampler`
            trains one path per op each step, on the mean of their losses.
        landmark_data: the ``TensorSplit`` the landmark hinge is computed on.
        on_epoch: ``on_epoch(epoch, history)`` after every epoch.

    Returns:
        ``{"epoch_loss": [...], "seconds": float, "steps": int}``.

    Raises:
        ValueError: ``total_epochs`` shorter than ``start_epoch + config.epochs``, or a training
            split or ``landmark_data`` smaller than one batch.
        FloatingPointError: the loss became NaN or infinite (lower the lr).
    """
    total = start_epoch + config.epochs if total_epochs is None else total_epochs
    if total < start_epoch + config.epochs:
        raise ValueError(f"total_epochs={total} is shorter than start_epoch + epochs = {start_epoch + config.epochs}")
    if len(train) < config.batch_size:
        raise ValueError(f"training split has {len(train)} examples, fewer than batch_size={config.batch_size}")
    device = train.x.device
    model.to(device).train()
    sampler = sampler or UniformSampler(config.seed)
    gen = torch.Generator(device="cpu").manual_seed(config.seed + 1000 * start_epoch)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, nesterov=config.momentum > 0,
                          weight_decay=config.weight_decay)
    steps_per_epoch = len(train) // config.batch_size
    total_steps = max(1, total * steps_per_epoch)
    autocast = (torch.autocast(device_type=device.type, dtype=torch.bfloat16) if config.amp
                else contextlib.nullcontext())
    history: dict = {"epoch_loss": [], "seconds": 0.0, "steps": 0}
    land_iter = None
    if landmark is not None and landmark_data is not None:
        if len(landmark_data) < config.batch_size:
            raise ValueError(f"landmark_data has {len(landmark_data)} examples, fewer than batch_size={config.batch_size}")
        land_gen = torch.Generator(device="cpu").manual_seed(config.seed + 1)

        def _cycle():
            while True:
                yield from landmark_data.batches(config.batch_size, shuffle=True, generator=land_gen, drop_last=True)

        land_iter = _cycle()
    t0 = time.perf_counter()
    for e in range(start_epoch, start_epoch + config.epochs):
        losses = []
        for s, (xb, yb) in enumerate(train.batches(config.batch_size, shuffle=True, generator=gen, drop_last=True)):
            step = e * steps_per_epoch + s
            for g in opt.param_groups:  # cosine schedule over the whole run
                g["lr"] = 0.5 * config.lr * (1.0 + math.cos(math.pi * step / total_steps))
            epoch_f = e + s / steps_per_epoch
            with autocast:
                if distill is not None:
                    loss = distill.loss(model, xb, yb, epoch_f)
                elif isinstance(sampler, FairSampler):
                    paths = sampler.sample_paths()
                    loss = sum(F.cross_entropy(model(xb, p), yb) for p in paths) / len(paths)
                else:
                    loss = F.cross_entropy(model(xb, sampler.sample()), yb)
                if landmark is not None:
                    lx, ly = next(land_iter) if land_iter is not None else (xb, yb)
                    extra = landmark.loss(model, lx, ly, epoch_f)
                    if extra is not None:
                        loss = loss + extra
            if not torch.isfinite(loss.detach()):
                raise FloatingPointError(f"supernet loss became {float(loss)} at epoch {e}, step {s}; lower the lr")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                nn.utils.clip_grad_norm_(params, config.grad_clip)
            opt.step()
            losses.append(float(loss.detach()))
            history["steps"] += 1
        history["epoch_loss"].append(float(np.mean(losses)) if losses else float("nan"))
        if on_epoch is not None:
            on_epoch(e, history)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    history["seconds"] = time.perf_counter() - t0
    return history
