"""The experiment of ``ray-nasrank search`` as one dataclass, saved as ``config.json``.

Defaults are the **embedded default run** (``make demo``, a few minutes on 2 CPU cores): the
search runs at *low fidelity* (images resampled to 14x14, 10,000 training images, 2 epochs per
finalist), and the winner is retrained at *full fidelity* (the dataset's own image size, every
training image, ``final_epochs``), the usual practice of multi-fidelity NAS. With ``baseline=
"random"`` the same number of architectures drawn uniformly from the candidate pool is trained
under the identical recipe, and its best is retrained the same way, so the report shows what
the search adds over picking at random.

``space`` names the model family searched: a built-in one (:data:`ray_nasrank.families.FAMILIES`,
``nb201`` by default) or your own (``MODULE:FUNCTION``, see :mod:`ray_nasrank.families`);
``channels`` and ``cells_per_stage`` size the networks of a family whose function takes them.

Networks: one NB201 cell per stage with 8 channels (C=8). Weak labels come from a supernet
trained at the search fidelity inside a Ray actor; the ranker is pretrained on them plus the
cells' params, FLOPs and SynFlow. To scale up, raise ``pool_size`` (``0`` = one cell per
isomorphism class of NB201, 6,466), ``channels``, ``cells_per_stage``, ``image_size`` (``0``:
native), the ``*_size`` limits (``0`` = the whole split), the epochs and ``budget``; use
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

from ._caps import LATENCY_REPEATS, LATENCY_WARMUP, parse_count, parse_ms

__all__ = ["PipelineConfig", "ConfigMismatchError", "RUNTIME_KEYS", "load_config", "CUSTOM", "BASELINES"]

#: keys that may change between a run and its resumption (where it runs, not what it computes; a
#: time budget only shapes the plan, which ``plan.json`` keeps from the moment the search starts)
RUNTIME_KEYS: frozenset[str] = frozenset({"address", "progress", "concurrency", "device", "time_budget"})
BASELINES = ("random", "none")
#: ``dataset`` of a run on the user's own ``data``
CUSTOM = "custom"
_SIZE = "search fidelity and sizes (0 = no limit / native size)"
_FINAL = "full-fidelity retraining of the winners (0 = no limit / native size)"
_CAPS = ("caps (none by default) on each candidate's model, as retrained and tested (the full-fidelity input "
         "size): a candidate over a cap is never trained (docs/concepts/multi_objective.md)")


class ConfigMismatchError(ValueError):
    """Resuming an output directory with a different experiment configuration.

    Args:
        message: every key whose value differs, with both values.
    """


@dataclass
class PipelineConfig:
    """Everything the end-to-end search depends on (see the module docstring for scale).

    ``*_size`` limits are numbers of images kept from a split (``0``: the whole split).
    ``rounds``: the budget is spent in this many rounds; the ranker is fine-tuned on the
    finalists' true accuracies between rounds.

    The fields that are command-line options (``ray-nasrank search --help``) are documented by
    their help text; the others:

    Args:
        supernet_lr: learning rate of the supernet training.
        weak_batch: batch size when the supernet scores the candidate pool.
        weak_calib_batches: training batches that recalibrate BatchNorm before each weak label.
        weak_eval_batches: validation batches each weak label is measured on.
        finalist_lr: learning rate of the finalists trained from scratch.
        ranker_fit_epochs: epochs of each fine-tuning of the ranker on true accuracies.
        progress: show progress bars (``None``: when the output is a terminal).

    Raises:
        ValueError: an unknown dataset, baseline or space, both ``dataset`` and ``data`` given, a
            value out of range (the message names the key), ``rounds > budget``, a pool too small
            for the budget, or a malformed ``device``, ``address`` or ``progress``.
    """

    dataset: str = option("fashion-mnist", "fashion-mnist (Debian package dataset-fashion-mnist) or digits "
                                           "(quick CPU run)")
    data: str | None = option(None, "your own data instead of --dataset: an image-folder tree (one subfolder "
                                    "per class, optionally under train/ and test/), an .npz file with x and y "
                                    "arrays (optionally x_test, y_test, classes), or MODULE:FUNCTION returning "
                                    "torch datasets (train[, test])", metavar="PATH|MODULE:FUNCTION")
    space: str = option("nb201", "model family searched: a built-in one (nb201: the NAS-Bench-201 cell), or "
                                 "your own as MODULE:FUNCTION or path/to/file.py:FUNCTION returning a "
                                 "ModelFamily, a ChoiceSupernet or a pair (param_space, model_fn) (see "
                                 "docs/howto/own_model_family.md)",
                        metavar="NAME|MODULE:FUNCTION")
    budget: int = option(8, "finalists trained from scratch at the search fidelity (per arm)")
    rounds: int = option(2, "rounds the budget is spent in; the ranker is fine-tuned between rounds")
    time_budget: str | None = option(None, "wall-time budget of the whole job, in seconds or as 30m, 2h: sets "
                                           "--budget, --rounds and the rungs to what fits (estimated from a quick "
                                           "measurement of training steps); refused when shorter than the smallest "
                                           "search", metavar="SECONDS|30m|2h")
    rungs: int = option(0, "successive-halving rungs from the search fidelity to the full one, each keeping the "
                           "best 1/--halving of every arm (0: 2 without --time-budget, as many as fit with it; 1: "
                           "every training at the full fidelity)")
    halving: int = option(3, "successive-halving factor: each rung keeps the best 1/halving of the rung below")
    min_steps: int = option(150, "fewest optimiser steps of any training (epochs are added on small data; the "
                                 "full-fidelity training takes --halving times as many)")
    baseline: str = option("random", "random: also train --budget random pool cells under the same recipe and "
                                     "retrain their best, to compare; none: skip (saves half the search time)",
                           choices=BASELINES)
    concurrency: int = option(2, "trials at a time (one CPU each); the full-fidelity retraining runs one "
                                 "winner at a time on this many CPUs")
    device: str = option("cpu", "cpu, cuda, cuda:N or auto")
    seed: int = option(0, "seed of the data split, supernet, pool and ranker")
    # search fidelity: supernet, weak labels and every search training (both arms)
    image_size: int = option(14, "image side the search trains at (images are resampled)", group=_SIZE)
    train_size: int = option(10000, "training images of the search", group=_SIZE)
    valid_size: int = option(2000, "validation images of the search", group=_SIZE)
    test_size: int = option(2000, "test images of the search trainings", group=_SIZE)
    # networks
    channels: int = option(8, "stem channels C (of a family that takes channels, e.g. nb201)", group=_SIZE)
    cells_per_stage: int = option(1, "cells per stage N (of a family that takes cells_per_stage, e.g. nb201)",
                                  group=_SIZE)
    batch_size: int = option(128, "training batch size", group=_SIZE)
    # supernet and weak labels
    supernet_epochs: int = option(2, "supernet training epochs", group=_SIZE)
    supernet_lr: float = 0.05
    pool_size: int = option(200, "candidates with weak labels (nb201: one per isomorphism class); 0: every "
                                 "candidate (nb201: 6,466; a finite space of at most 2**20 configs)",
                            group=_SIZE)
    weak_batch: int = 64
    weak_calib_batches: int = 1
    weak_eval_batches: int = 2
    # finalists trained from scratch at the search fidelity
    finalist_epochs: int = option(2, "epochs of each finalist trained from scratch", group=_SIZE)
    finalist_lr: float = 0.05
    # the winners retrained at full fidelity
    final_epochs: int = option(2, "epochs of the full-fidelity retraining", group=_FINAL)
    final_image_size: int = option(0, "image side of the retraining", group=_FINAL)
    final_train_size: int = option(0, "training images of the retraining", group=_FINAL)
    final_valid_size: int = option(0, "validation images of the retraining", group=_FINAL)
    final_test_size: int = option(0, "test images the final accuracy is measured on", group=_FINAL)
    # caps: candidates whose model exceeds one are dropped from the pool before anything trains
    max_params: float | None = option(None, "most trainable parameters a candidate's model may have (50000, 5e4, "
                                            "250k, 1.5M)", parse=parse_count, metavar="N", group=_CAPS)
    max_flops: float | None = option(None, "most FLOPs of one image's forward pass, counted as NAS-Bench-201 counts "
                                           "them (multiply-accumulates; 20M, 1.5G)", parse=parse_count,
                                     metavar="N", group=_CAPS)
    max_latency_ms: float | None = option(None, "most milliseconds of one forward pass of --latency-batch-size "
                                                "images, measured on this machine before the search: median of "
                                                f"{LATENCY_REPEATS} timed passes after {LATENCY_WARMUP} warm-up ones, "
                                                "eval mode, one torch thread, on --device", parse=parse_ms,
                                          metavar="MS", group=_CAPS)
    latency_batch_size: int = option(1, "images per forward pass when --max-latency-ms is measured", metavar="N",
                                     group=_CAPS)
    # ranker
    ranker_epochs: int = option(30, "ranker pretraining epochs on the weak labels", group=_SIZE)
    ranker_fit_epochs: int = 100
    # where it runs
    address: str | None = option(None, "Ray cluster address (default: start a local Ray)")
    progress: bool | None = None

    def __post_init__(self) -> None:
        from ray_nasrank.data import DATASETS

        if self.data is not None:
            if not isinstance(self.data, str) or not self.data.strip():
                raise ValueError(f"data must be a folder, an .npz file or MODULE:FUNCTION, got {self.data!r}")
            if self.dataset not in (CUSTOM, "fashion-mnist"):
                raise ValueError(f"give either dataset={self.dataset!r} or data={self.data!r}, not both")
            self.dataset = CUSTOM
        elif self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; choose from {list(DATASETS)} "
                             "or pass data= (your own image folder, .npz or MODULE:FUNCTION)")
        if self.baseline not in BASELINES:
            raise ValueError(f"unknown baseline {self.baseline!r}; choose from {list(BASELINES)}")
        from ray_nasrank.families import FAMILIES, is_family_spec

        if self.space not in FAMILIES and not is_family_spec(self.space):
            raise ValueError(f"unknown space {self.space!r}; give a built-in model family {sorted(FAMILIES)} or "
                             "your own as MODULE:FUNCTION (or path/to/file.py:FUNCTION)")
        if self.time_budget is not None:
            from ._budget import parse_duration

            try:
                parse_duration(self.time_budget)
            except ValueError as e:
                raise ValueError(f"time_budget: {e}") from None
        for name, lo in (("budget", 1), ("rounds", 1), ("rungs", 0), ("halving", 2), ("min_steps", 0),
                         ("concurrency", 1), ("seed", 0), ("train_size", 0),
                         ("valid_size", 0), ("test_size", 0), ("channels", 1), ("cells_per_stage", 1),
                         ("batch_size", 1), ("supernet_epochs", 1), ("finalist_epochs", 1),
                         ("ranker_epochs", 1), ("ranker_fit_epochs", 1), ("pool_size", 0), ("weak_batch", 2),
                         ("weak_calib_batches", 1), ("weak_eval_batches", 1), ("image_size", 0),
                         ("final_epochs", 1), ("final_image_size", 0), ("final_train_size", 0),
                         ("final_valid_size", 0), ("final_test_size", 0), ("latency_batch_size", 1)):
            check_int(name, getattr(self, name), low=lo)
        for name in ("max_params", "max_flops", "max_latency_ms"):
            if getattr(self, name) is not None:
                setattr(self, name, check_number(name, getattr(self, name), 0, low_open=True))
        for name in ("supernet_lr", "finalist_lr"):
            check_number(name, getattr(self, name), 0, low_open=True)
        # with a time budget, the plan sets the budget and rounds to what fits (and the pool allows)
        budget = 1 if self.time_budget is not None else self.budget
        if self.time_budget is None and self.rounds > self.budget:
            raise ValueError(f"rounds={self.rounds} exceeds budget={self.budget}: every round trains at least one arch")
        if self.baseline == "random" and self.pool_size and self.pool_size < 2 * budget:
            raise ValueError(f"pool_size={self.pool_size} is smaller than 2 x budget={self.budget}; the random "
                             "baseline draws its cells from the pool too (or pass baseline='none')")
        if self.pool_size and self.pool_size < budget:
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

    @property
    def data_source(self) -> str:
        """What :func:`ray_nasrank.data_sources.read_source` reads: ``data`` when given, else ``dataset``."""
        return self.data if self.data is not None else self.dataset

    def split_limits(self, final: bool = False) -> dict[str, int | None]:
        """Limits and image size of the search fidelity (or, ``final=True``, of the retraining)
        (``0`` means no limit / native size)."""
        if final:
            return {"limit_train": self.final_train_size or None, "limit_valid": self.final_valid_size or None,
                    "limit_test": self.final_test_size or None, "image_size": self.final_image_size or None}
        return {"limit_train": self.train_size or None, "limit_valid": self.valid_size or None,
                "limit_test": self.test_size or None, "image_size": self.image_size or None}

    def round_sizes(self) -> list[int]:
        """How many finalists each round trains (the budget split as evenly as possible).

        >>> PipelineConfig(budget=8, rounds=3).round_sizes()
        [3, 3, 2]
        """
        q, r = divmod(self.budget, self.rounds)
        return [q + (1 if i < r else 0) for i in range(self.rounds)]


def load_config(path: str | os.PathLike) -> PipelineConfig:
    """Read a ``config.json`` written by the pipeline.

    Args:
        path: the ``config.json`` file.

    Returns:
        The :class:`PipelineConfig` it holds.

    Raises:
        ValueError: the file is not valid JSON, has unknown keys, or holds invalid values.
        FileNotFoundError: no such file.
    """
    p = Path(path)
    try:
        with open(p) as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{str(p)!r} is not valid JSON ({e}); delete it or use another --out") from None
    return PipelineConfig.from_dict(data)
