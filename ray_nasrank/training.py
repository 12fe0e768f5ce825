"""Train one NB201 architecture from scratch and report its validation and test accuracy.

This is the stand-alone trainer behind ground-truth tables, finalist re-training and landmark
architectures; Ray Tune trials call :func:`train_arch` with a ``report`` hook.

The recipe is a :class:`TrainConfig`. Its defaults follow NAS-Bench-201's recipe scaled down:
SGD with Nesterov momentum 0.9, learning rate 0.1, weight decay 5e-4, batch 256, a cosine
schedule stepped every iteration, optional flip / pad-crop augmentation done on the batch
tensors (on the GPU when the data is there). The whole dataset stays on one device; the batch
order, augmentation and initial weights depend only on ``seed``.

Accuracies are percentages (like the NB201 tables).

Examples:
    >>> from ray_nasrank.data import load_dataset
    >>> splits = load_dataset("digits", limit_train=200)
    >>> cfg = TrainConfig(epochs=1, batch_size=64, channels=4, cells_per_stage=1)
    >>> res = train_arch(("nor_conv_3x3",) * 6, splits, cfg)
    >>> sorted(res)[:4]
    ['arch', 'epochs', 'history', 'params']
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable, Mapping

import torch
from torch import nn
from torch.nn import functional as F

from ray_nasrank._checks import check_int, check_number
from ray_nasrank._config import known_fields
from ray_nasrank.data import DatasetSplits, TensorSplit, resolve_device
from ray_nasrank.spaces import arch_to_str

__all__ = ["TrainConfig", "train_arch", "train_model", "evaluate", "recalibrate_bn", "first_inputs", "augment_batch", "ReportHook"]

#: ``report(epoch, metrics)`` after every epoch; returning ``True`` stops training early
ReportHook = Callable[[int, dict], Any]

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("cosine", "constant")
AUGMENTATIONS = ("flip", "crop")


@dataclass
class TrainConfig:
    """A from-scratch training recipe (see the module docstring for the defaults' origin).

    ``augment``: any of ``"flip"`` (random horizontal flip) and ``"crop"`` (zero-pad by
    ``crop_padding`` then random crop back to size). ``warmup_epochs`` of linear warm-up precede
    the schedule. ``grad_clip`` clips the global gradient norm (``None``: no clipping).
    ``eval_every``: validate every that many epochs (and always after the last); ``0`` validates
    only after the last epoch (cheapest, for ground-truth sweeps; the hook then gets ``valid_acc``
    only in its last call). ``bn_recalibrate``: before each validation, recompute BatchNorm
    statistics as the exact mean over that many training batches (after a few hundred steps the
    running averages still lag the weights; this removes that noise from short runs).
    ``channels_last``: keep weights and batches in the NHWC memory format (about 1.4x faster
    for NB201 cells on one CPU thread; same results up to floating-point rounding).

    Args:
        epochs: training epochs (>= 1).
        batch_size: training mini-batch size.
        lr: peak learning rate, in ``(0, 10]``.
        optimizer: ``"sgd"``, ``"adam"`` or ``"adamw"``.
        momentum: SGD momentum, in ``[0, 0.999]``.
        nesterov: Nesterov momentum for SGD.
        weight_decay: L2 weight decay, in ``[0, 1]``.
        schedule: ``"cosine"`` or ``"constant"``.
        warmup_epochs: epochs of linear warm-up (fewer than ``epochs``).
        augment: augmentations applied, any of ``"flip"`` and ``"crop"``.
        crop_padding: zero padding before the random crop.
        label_smoothing: cross-entropy label smoothing, in ``[0, 0.99]``.
        grad_clip: maximum global gradient norm (``None``: no clipping).
        channels: stem channels of an NB201 network (:func:`train_arch`).
        cells_per_stage: cells per stage of an NB201 network.
        seed: seeds the initial weights, the batch order and the augmentations.
        device: ``"cpu"``, ``"cuda"``, ``"auto"``, ...
        eval_batch_size: batch size when evaluating.
        eval_every: validate every that many epochs (``0``: after the last only).
        bn_recalibrate: training batches whose exact statistics replace BatchNorm's running ones
            before each validation (``0``: off).
        channels_last: use the NHWC memory format.

    Raises:
        ValueError: a field out of range, an unknown optimizer, schedule or augmentation, a
            non-integer seed, or ``warmup_epochs >= epochs``.
        TypeError: ``augment`` is not a tuple of names, ``device`` not a string or device, or an
            integer field of another type.
    """

    epochs: int = 4
    batch_size: int = 256
    lr: float = 0.1
    optimizer: str = "sgd"
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    warmup_epochs: int = 0
    augment: tuple[str, ...] = ()
    crop_padding: int = 2
    label_smoothing: float = 0.0
    grad_clip: float | None = 5.0
    channels: int = 8
    cells_per_stage: int = 1
    seed: int = 0
    device: str = "cpu"
    eval_batch_size: int = 1024
    eval_every: int = 1
    bn_recalibrate: int = 0
    channels_last: bool = False

    def __post_init__(self) -> None:
        check_int("epochs", self.epochs, low=1)
        check_int("batch_size", self.batch_size, low=1)
        check_int("eval_batch_size", self.eval_batch_size, low=1)
        check_int("eval_every", self.eval_every, low=0)
        check_int("bn_recalibrate", self.bn_recalibrate, low=0)
        check_int("channels", self.channels, low=1)
        check_int("cells_per_stage", self.cells_per_stage, low=1)
        check_int("warmup_epochs", self.warmup_epochs, low=0)
        check_int("crop_padding", self.crop_padding, low=0)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        check_number("lr", self.lr, 0.0, 10.0, low_open=True)
        check_number("momentum", self.momentum, 0.0, 0.999)
        check_number("weight_decay", self.weight_decay, 0.0, 1.0)
        check_number("label_smoothing", self.label_smoothing, 0.0, 0.99)
        if self.grad_clip is not None:
            check_number("grad_clip", self.grad_clip, 0.0, 1e6, low_open=True)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose from {list(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose from {list(SCHEDULES)}")
        if self.warmup_epochs >= self.epochs and self.warmup_epochs > 0:
            raise ValueError(f"warmup_epochs={self.warmup_epochs} must be smaller than epochs={self.epochs}")
        aug = (self.augment,) if isinstance(self.augment, str) else self.augment
        if not isinstance(aug, (tuple, list)):
            raise TypeError(f"augment must be a tuple of names, got {type(self.augment).__name__}")
        for a in aug:
            if a not in AUGMENTATIONS:
                raise ValueError(f"unknown augmentation {a!r}; choose from {list(AUGMENTATIONS)}")
        self.augment = tuple(dict.fromkeys(aug))
        if not isinstance(self.channels_last, bool):
            raise ValueError(f"channels_last must be True or False, got {self.channels_last!r}")
        if not isinstance(self.device, (str, torch.device)):
            raise TypeError(f"device must be a string such as 'cpu', 'cuda' or 'auto', got {self.device!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["augment"] = list(self.augment)
        d["device"] = str(self.device)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrainConfig":
        """Build from a mapping (e.g. a Tune config); unknown keys are an error naming them."""
        d = known_fields(cls, d, "TrainConfig")
        if "augment" in d and isinstance(d["augment"], list):
            d["augment"] = tuple(d["augment"])
        return cls(**d)


def augment_batch(x: torch.Tensor, augment: tuple[str, ...], padding: int,
                  generator: torch.Generator) -> torch.Tensor:
    """Random flip / pad-crop of a batch, per example, on the batch's device.

    Random numbers come from ``generator`` (CPU) so results do not depend on the device.

    Args:
        x: images ``[B, C, H, W]``.
        augment: augmentations to apply, any of ``"flip"`` and ``"crop"`` (empty: none).
        padding: zero padding before the random crop back to ``H x W``.
        generator: CPU ``torch.Generator`` the random numbers come from.

    Returns:
        The augmented batch (``x`` itself when ``augment`` is empty).
    """
    if not augment:
        return x
    b, c, h, w = x.shape
    if "flip" in augment:
        flip = (torch.rand(b, generator=generator) < 0.5).to(x.device)
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    if "crop" in augment and padding > 0:
        padded = F.pad(x, (padding, padding, padding, padding))
        oy = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(x.device)
        ox = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(x.device)
        rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
        cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
        bi = torch.arange(b, device=x.device)[:, None, None, None]
        ci = torch.arange(c, device=x.device)[None, :, None, None]
        x = padded[bi, ci, rows, cols]
    return x


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[torch.Tensor],
                   forward: Callable[[torch.Tensor], torch.Tensor] | None = None) -> nn.Module:
    """Recompute every BatchNorm's running statistics of ``model`` on input ``batches``.

    The statistics become the plain average over the batches (``momentum=None`` while they are
    collected; each BatchNorm's momentum is restored afterwards).

    Args:
        model: the network whose BatchNorm layers are recalibrated.
        batches: input tensors (no labels), e.g. the first few training batches.
        forward: runs the path to calibrate (default ``model(x)``), e.g. ``lambda x: supernet(x, arch)``.

    Returns:
        ``model``, in eval mode.

    Raises:
        ValueError: ``batches`` is empty.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: the exact mean over the batches seen
    model.train()
    run = forward or model
    n = 0
    for x in batches:
        run(x)
        n += 1
    if n == 0:
        raise ValueError("BN recalibration needs at least one calibration batch, got none")
    for m, mom in zip(bns, saved):
        m.momentum = mom
    return model.eval()


def first_inputs(split: TensorSplit, batches: int, batch_size: int) -> list[torch.Tensor]:
    """The inputs of the first ``batches`` (unshuffled) batches of ``split``: BN calibration data.

    Args:
        split: the data.
        batches: how many batches.
        batch_size: images per batch.

    Returns:
        Up to ``batches`` input tensors.
    """
    return [xb for xb, _ in itertools.islice(split.batches(batch_size, shuffle=False), batches)]


def _recalibrate(model: nn.Module, split: TensorSplit, cfg: "TrainConfig") -> None:
    if cfg.bn_recalibrate >= 1 and len(split):
        recalibrate_bn(model, first_inputs(split, cfg.bn_recalibrate, cfg.batch_size))


@torch.no_grad()
def evaluate(model: nn.Module, split: TensorSplit, batch_size: int = 1024) -> tuple[float, float]:
    """``(accuracy %, mean cross-entropy)`` of ``model`` in eval mode on a whole split.

    Args:
        model: a classifier returning logits; its train/eval mode is restored afterwards.
        split: the split to score.
        batch_size: evaluation batch size.

    Returns:
        ``(accuracy in percent, mean cross-entropy)``.

    Raises:
        ValueError: ``split`` is empty.
    """
    if len(split) == 0:
        raise ValueError("cannot evaluate on an empty split")
    was_training = model.training
    model.eval()
    correct, loss_sum = 0, 0.0
    for xb, yb in split.batches(batch_size, shuffle=False):
        out = model(xb)
        loss_sum += float(F.cross_entropy(out, yb, reduction="sum"))
        correct += int((out.argmax(1) == yb).sum())
    model.train(was_training)
    return 100.0 * correct / len(split), loss_sum / len(split)


def _optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                               nesterov=cfg.nesterov and cfg.momentum > 0, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def _lr_factor(cfg: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    warm = cfg.warmup_epochs * steps_per_epoch
    total = cfg.epochs * steps_per_epoch

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if cfg.schedule == "constant":
            return 1.0
        t = (step - warm) / max(1, total - warm)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))

    return factor


def _channels_last(splits: DatasetSplits) -> DatasetSplits:
    def conv(s: TensorSplit) -> TensorSplit:
        return TensorSplit(s.x.contiguous(memory_format=torch.channels_last), s.y)

    return DatasetSplits(conv(splits.train), conv(splits.valid), conv(splits.test), splits.num_classes,
                         splits.name)


def train_model(model: nn.Module, splits: DatasetSplits, cfg: TrainConfig,
                report: ReportHook | None = None) -> dict:
    """Train any classifier ``model`` on ``splits`` with ``cfg``; see :func:`train_arch`.

    Args:
        model: a classifier returning logits (moved to ``cfg.device``).
        splits: train / valid / test splits; the test split is scored once, at the end.
        cfg: the training recipe.
        report: ``report(epoch, metrics)`` called after every epoch; returning ``True`` stops training.

    Returns:
        ``valid_acc``, ``test_acc``, ``test_loss``, ``train_loss``, ``epochs`` (done), ``seconds``,
        ``params`` and the per-epoch ``history``.

    Raises:
        TypeError: ``splits``, ``cfg`` or ``report`` of the wrong type.
        ValueError: an empty train or valid split.
        FloatingPointError: the training loss became NaN or infinite (lower ``cfg.lr``).
    """
    if not isinstance(splits, DatasetSplits):
        raise TypeError(f"splits must be a DatasetSplits (see ray_nasrank.data), got {type(splits).__name__}")
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    if report is not None and not callable(report):
        raise TypeError(f"report must be callable(epoch, metrics) or None, got {type(report).__name__}")
    if len(splits.train) == 0 or len(splits.valid) == 0:
        raise ValueError(f"splits need non-empty train and valid parts, got {splits!r}")
    dev = resolve_device(cfg.device)
    if splits.device != dev:
        splits = splits.to(dev)
    model = model.to(dev)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
        splits = _channels_last(splits)
    opt = _optimizer(model, cfg)
    steps_per_epoch = math.ceil(len(splits.train) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_factor(cfg, steps_per_epoch))
    order_gen = torch.Generator().manual_seed(cfg.seed)
    aug_gen = torch.Generator().manual_seed(cfg.seed + 1)
    history: list[dict] = []
    t_start = time.perf_counter()
    epochs_done = 0
    train_loss = float("nan")
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        loss_sum, correct, seen = 0.0, 0, 0
        for xb, yb in splits.train.batches(cfg.batch_size, shuffle=True, generator=order_gen):
            xb = augment_batch(xb, cfg.augment, cfg.crop_padding, aug_gen)
            out = model(xb)
            loss = F.cross_entropy(out, yb, label_smoothing=cfg.label_smoothing)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"training diverged at epoch {epoch} (loss {float(loss.detach())}); lower lr={cfg.lr}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            loss_sum += float(loss.detach()) * len(yb)
            correct += int((out.detach().argmax(1) == yb).sum())
            seen += len(yb)
        train_loss = loss_sum / seen
        epochs_done = epoch
        metrics = {
            "epoch": epoch,
            "train_loss": train_loss,
            "train_acc": 100.0 * correct / seen,
            "lr": opt.param_groups[0]["lr"],
        }
        if epoch == cfg.epochs or (cfg.eval_every > 0 and epoch % cfg.eval_every == 0):
            _recalibrate(model, splits.train, cfg)
            metrics["valid_acc"], metrics["valid_loss"] = evaluate(model, splits.valid, cfg.eval_batch_size)
        metrics["seconds"] = time.perf_counter() - t_start
        history.append(metrics)
        if report is not None and report(epoch, dict(metrics)) is True:
            if "valid_acc" not in metrics:  # stopped early between validations: validate now
                _recalibrate(model, splits.train, cfg)
                metrics["valid_acc"], metrics["valid_loss"] = evaluate(model, splits.valid, cfg.eval_batch_size)
            break  # the caller (e.g. a pruner) asked to stop
    test_acc, test_loss = evaluate(model, splits.test, cfg.eval_batch_size)
    return {
        "valid_acc": history[-1]["valid_acc"],
        "test_acc": test_acc,
        "test_loss": test_loss,
        "train_loss": train_loss,
        "epochs": epochs_done,
        "seconds": time.perf_counter() - t_start,
        "params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "history": history,
    }


def train_arch(arch: Any, splits: DatasetSplits, cfg: TrainConfig | None = None,
               report: ReportHook | None = None) -> dict:
    """Train an NB201 cell from scratch (``NB201Network(arch, cfg.channels, cfg.cells_per_stage)``).

    ``report(epoch, metrics)`` is called after every epoch with ``train_loss``, ``train_acc``,
    ``lr``, ``seconds`` and (on validation epochs, see ``eval_every``) ``valid_acc`` and
    ``valid_loss``; if it returns ``True`` training stops.
    Returns ``valid_acc`` (last epoch), ``test_acc``, ``test_loss``, ``train_loss``, ``epochs``
    (done), ``seconds``, ``params`` and the per-epoch ``history``. The test split is touched once,
    at the end.

    Args:
        arch: an NB201 cell (string or op tuple, see :func:`ray_nasrank.spaces.parse_arch`).
        splits: train / valid / test splits.
        cfg: the training recipe (``None``: ``TrainConfig()``).
        report: ``report(epoch, metrics)`` called after every epoch; returning ``True`` stops training.

    Returns:
        The result dict of :func:`train_model` plus ``arch`` (the cell as a string).

    Raises:
        TypeError: ``splits`` or ``cfg`` of the wrong type.
        ValueError: ``arch`` is not a valid NB201 cell, or see :func:`train_model`.
        FloatingPointError: training diverged.
    """
    from ray_nasrank.nn import NB201Network

    cfg = cfg if cfg is not None else TrainConfig()
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    if not isinstance(splits, DatasetSplits):
        raise TypeError(f"splits must be a DatasetSplits (see ray_nasrank.data), got {type(splits).__name__}")
    # initial weights depend only on the seed, not on the caller's RNG state
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = NB201Network(arch, channels=cfg.channels, cells_per_stage=cfg.cells_per_stage,
                             in_channels=splits.in_channels, num_classes=splits.num_classes)
    result = train_model(model, splits, cfg, report)
    result["arch"] = arch_to_str(model.arch)
    return result
