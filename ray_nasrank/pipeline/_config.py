"""The experiment of ``ray-nasrank search`` as one dataclass, saved as ``config.json``.

Defaults are **demo scale**: a tiny supernet (8 channels, 1 cell per stage) trained for one
epoch on a 3,000-image subset, weak labels for a pool of 200 candidate cells (each of its own
isomorphism class) scored on 128 validation images, and 8 finalists trained from scratch for 2
epochs, 2 at a time: a few minutes on 2 CPU cores. To scale up, raise ``pool_size`` (``0`` = one
cell per isomorphism class of the whole space, 6,466 for NB201), ``channels`` (16),
``cells_per_stage`` (5), the ``*_size`` limits (``0`` = the whole split), ``weak_eval_batches``,
``supernet_epochs`` and ``finalist_epochs`` (NB201 uses 200), and ``budget``; use
``device="auto"`` on a GPU machine and ``address`` for a Ray cluster.

>>> cfg = PipelineConfig(dataset="digits", budget=4)
>>> PipelineConfig.from_dict(cfg.to_dict()) == cfg
True
>>> cfg.differences(PipelineConfig(dataset="digits", budget=6))
{'budget': (4, 6)}
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

from ray_nasrank._checks import check_int, check_number
from ray_nasrank._config import known_fields, option

__all__ = ["PipelineConfig", "ConfigMismatchError", "RUNTIME_KEYS", "load_config"]

#: keys that may change between a run and its resumption (where it runs, not what it computes)
RUNTIME_KEYS: frozenset[str] = frozenset({"address", "progress", "concurrency", "device"})
SPACES = ("nb201",)
_SIZE = "size (demo-scale defaults; 0 = no limit)"


class ConfigMismatchError(ValueError):
    """Resuming an output directory with a different experiment configuration."""


@dataclass
class PipelineConfig:
    """Everything the end-to-end search depends on (see the module docstring for scale).

    ``*_size`` limits are numbers of images kept from a split (``0``: the whole split).
    ``rounds``: the budget is spent in this many rounds; the ranker is fine-tuned on the
    finalists' true accuracies between rounds.
    """

    dataset: str = option("fashion-mnist", "fashion-mnist (Debian package dataset-fashion-mnist) or digits "
                                           "(quick CPU run)")
    space: str = option("nb201", "search space", choices=SPACES)
    budget: int = option(8, "finalists trained from scratch")
    rounds: int = option(2, "rounds the budget is spent in; the ranker is fine-tuned between rounds")
    concurrency: int = option(2, "trials at a time")
    device: str = option("cpu", "cpu, cuda, cuda:N or auto")
    seed: int = option(0, "seed of the data split, supernet, pool and ranker")
    # data subsets (demo scale)
    train_size: int = option(3000, "training images", group=_SIZE)
    valid_size: int = option(1000, "validation images", group=_SIZE)
    test_size: int = option(2000, "test images", group=_SIZE)
    # networks
    channels: int = option(8, "stem channels C", group=_SIZE)
    cells_per_stage: int = option(1, "cells per stage N", group=_SIZE)
    batch_size: int = option(128, "training batch size", group=_SIZE)
    # supernet and weak labels
    supernet_epochs: int = option(1, "supernet training epochs", group=_SIZE)
    supernet_lr: float = 0.05
    pool_size: int = option(200, "candidate cells with weak labels, one per isomorphism class (0: all 6,466)",
                            group=_SIZE)
    weak_batch: int = 64
    weak_calib_batches: int = 1
    weak_eval_batches: int = 2
    # finalists trained from scratch
    finalist_epochs: int = option(2, "epochs of each finalist trained from scratch", group=_SIZE)
    finalist_lr: float = 0.05
    # ranker
    ranker_epochs: int = option(30, "ranker pretraining epochs on the weak labels", group=_SIZE)
    ranker_fit_epochs: int = 100
    # where it runs
    address: str | None = option(None, "Ray cluster address (default: start a local Ray)")
    progress: bool | None = None

    def __post_init__(self) -> None:
        from ray_nasrank.data import DATASETS

        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; choose from {list(DATASETS)}")
        if self.space not in SPACES:
            raise ValueError(f"unknown space {self.space!r}; the pipeline searches {list(SPACES)}")
        for name, lo in (("budget", 1), ("rounds", 1), ("concurrency", 1), ("seed", 0), ("train_size", 0),
                         ("valid_size", 0), ("test_size", 0), ("channels", 1), ("cells_per_stage", 1),
                         ("batch_size", 1), ("supernet_epochs", 1), ("finalist_epochs", 1),
                         ("ranker_epochs", 1), ("ranker_fit_epochs", 1), ("pool_size", 0), ("weak_batch", 2),
                         ("weak_calib_batches", 1), ("weak_eval_batches", 1)):
            check_int(name, getattr(self, name), low=lo)
        for name in ("supernet_lr", "finalist_lr"):
            check_number(name, getattr(self, name), 0, low_open=True)
        if self.rounds > self.budget:
            raise ValueError(f"rounds={self.rounds} exceeds budget={self.budget}: every round trains at least one arch")
        if self.pool_size and self.pool_size < self.budget:
            raise ValueError(f"pool_size={self.pool_size} is smaller than budget={self.budget}; "
                             "the search trains distinct cells of the pool (0: the whole space)")
        if not isinstance(self.device, str) or not self.device:
            raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {self.device!r}")
        if self.address is not None and (not isinstance(self.address, str) or not self.address):
            raise ValueError(f"address must be a Ray address string or None, got {self.address!r}")
        if self.progress is not None and not isinstance(self.progress, bool):
            raise ValueError(f"progress must be True, False or None (auto), got {self.progress!r}")

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PipelineConfig":
        """Build from a mapping (``config.json``); unknown keys are an error naming them."""
        return cls(**known_fields(cls, d, "pipeline config"))

    def differences(self, other: "PipelineConfig", include_runtime: bool = False) -> dict[str, tuple]:
        """``{key: (self value, other value)}`` for the keys that differ (runtime keys skipped)."""
        a, b = self.to_dict(), other.to_dict()
        return {k: (a[k], b[k]) for k in a
                if a[k] != b[k] and (include_runtime or k not in RUNTIME_KEYS)}

    def split_limits(self) -> dict[str, int | None]:
        """``load_dataset`` limits (``0`` means no limit)."""
        return {"limit_train": self.train_size or None, "limit_valid": self.valid_size or None,
                "limit_test": self.test_size or None}

    def round_sizes(self) -> list[int]:
        """How many finalists each round trains (the budget split as evenly as possible).

        >>> PipelineConfig(budget=8, rounds=3).round_sizes()
        [3, 3, 2]
        """
        q, r = divmod(self.budget, self.rounds)
        return [q + (1 if i < r else 0) for i in range(self.rounds)]


def load_config(path: str | os.PathLike) -> PipelineConfig:
    """Read a ``config.json`` written by the pipeline."""
    p = Path(path)
    try:
        with open(p) as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{str(p)!r} is not valid JSON ({e}); delete it or use another --out") from None
    return PipelineConfig.from_dict(data)
