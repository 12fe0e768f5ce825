"""What the main job checks once the data and the family are loaded, before any training.

A run that cannot finish right is refused here with one error, instead of failing minutes later
inside a Ray actor or finishing with a silently wrong result:

- the family's model, run on one batch, must return one logit per class of the data (8 logits
  for 3 classes trains to 0 % accuracy; 1 logit breaks the weak labels);
- each fidelity's splits must hold at least one training batch (the supernet and the finalists
  drop incomplete batches) and a validation and a test image;
- the budget must fit the candidate pool (both arms draw distinct candidates), and the time
  the trainings would take is estimated from one timed training step.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Sequence

from ._config import PipelineConfig


class PrecheckError(ValueError):
    """A run that cannot finish right (the message names the flag or the family to change)."""


def check_logits(family: Any, config: Any, x: Any, num_classes: int) -> None:
    """The family's model of ``config`` on the batch ``x`` must return ``(batch, num_classes)`` logits.

    Raises:
        PrecheckError: another number of logits per input (the message names both numbers).
    """
    import torch

    net = family.check_input(config, x, "one batch of the data")
    with torch.no_grad():
        out = net.eval()(x)
    got = int(out.shape[1])
    if got != num_classes:
        raise PrecheckError(
            f"--space {family.spec!r}: the model of config {dict(config)!r} returns {got} logit"
            f"{'s' if got != 1 else ''} per image, but the data has {num_classes} classes; its last layer must have "
            f"num_classes outputs (the family function receives num_classes={num_classes})")


def check_splits(cfg: PipelineConfig, splits: Any, fidelity: str) -> None:
    """Each split of ``splits`` (the ``fidelity`` of the run) large enough for one batch.

    Raises:
        PrecheckError: too few training, validation or test images (the message names the flags).
    """
    n_train, n_valid, n_test = (int(getattr(splits, s).y.shape[0]) for s in ("train", "valid", "test"))
    flags = "--train-size/--valid-size/--test-size" if fidelity == "search" else \
        "--final-train-size/--final-valid-size/--final-test-size"
    if n_train < cfg.batch_size:
        raise PrecheckError(
            f"the {fidelity}-fidelity training split holds {n_train} images, fewer than one batch "
            f"(--batch-size {cfg.batch_size}): the supernet and the finalists would train on nothing; "
            f"lower --batch-size to at most {n_train}, or give more data (or larger {flags})")
    if n_valid < 1 or n_test < 1:
        raise PrecheckError(f"the {fidelity}-fidelity splits hold {n_valid} validation and {n_test} test images; "
                            f"each needs at least one (give more data, or larger {flags})")


@dataclass
class TimeEstimate:
    """How long the search's trainings would take, from one timed training step."""

    step_seconds: float
    steps_per_training: int
    trainings: int
    concurrency: int

    @property
    def training_seconds(self) -> float:
        return self.step_seconds * self.steps_per_training

    @property
    def seconds(self) -> float:
        return self.training_seconds * math.ceil(self.trainings / self.concurrency)

    def describe(self) -> str:
        return (f"{self.trainings:,} trainings would take {_duration(self.seconds)} "
                f"(~{self.training_seconds:.1f} s each, {self.concurrency} at a time; estimated from one timed "
                "training step)")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"about {seconds:.0f} s"
    if seconds < 7200:
        return f"about {seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"about {seconds / 3600:.1f} h"
    return f"about {seconds / 86400:.0f} days"


def estimate_time(cfg: PipelineConfig, splits: Any, model: Any, trainings: int) -> TimeEstimate:
    """Time one SGD step of ``model`` on one training batch (the best of three) and scale it to
    ``trainings`` trainings of the search recipe, ``cfg.concurrency`` at a time."""
    import torch

    x = splits.train.x[: cfg.batch_size].float()
    y = splits.train.y[: cfg.batch_size].long()
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: the timing leaves the weights as they were
    best = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        best = min(best, time.perf_counter() - t0)
    steps = max(1, int(splits.train.y.shape[0]) // cfg.batch_size) * cfg.finalist_epochs
    return TimeEstimate(step_seconds=best, steps_per_training=steps, trainings=trainings,
                        concurrency=max(1, cfg.concurrency))


def check_budget(cfg: PipelineConfig, pool: Sequence[Any], estimate: TimeEstimate) -> None:
    """The budget (twice with the random arm) must fit the pool of distinct candidates.

    Raises:
        PrecheckError: it does not (the message gives the pool's size, the largest budget and the
            time the asked budget would take).
    """
    arms = 2 if cfg.baseline == "random" else 1
    # a time budget sizes the search itself (its plan fits the pool); it needs one candidate per arm
    if (1 if cfg.time_budget else cfg.budget) * arms > len(pool):
        most = len(pool) // arms
        raise PrecheckError(
            f"--budget {cfg.budget} asks for {cfg.budget * arms:,} distinct trainings"
            f"{' (both arms)' if arms == 2 else ''}, but the candidate pool holds {len(pool):,}; give --budget "
            f"{most:,} or less{' (or --baseline none)' if arms == 2 else ''}. At this fidelity "
            f"{estimate.describe()}")


def check_run(cfg: PipelineConfig, splits: Any, final_splits: Any, family: Any, pool: Sequence[Any]) -> TimeEstimate:
    """Every check above, on the loaded data, family and pool; returns the time estimate of the
    search's trainings (both arms).

    Raises:
        PrecheckError: the first check that fails.
        SpaceError: the family's model does not run on the data (from ``family.check_input``).
    """
    import torch

    check_splits(cfg, splits, "search")
    check_splits(cfg, final_splits, "full")

    if not pool:
        raise PrecheckError(f"--space {family.spec!r}: the candidate pool is empty")
    x = splits.train.x[: cfg.batch_size].float().cpu()
    config = family.config(pool[0])
    arms = 2 if cfg.baseline == "random" else 1
    with torch.random.fork_rng(devices=[]):  # the caller's random state stays as it was
        torch.manual_seed(cfg.seed)
        check_logits(family, config, x, int(splits.num_classes))
        estimate = estimate_time(cfg, splits, family.check_input(config, x, "one batch of the data"),
                                 cfg.budget * arms)
    check_budget(cfg, pool, estimate)
    return estimate


__all__ = ["PrecheckError", "TimeEstimate", "check_budget", "check_logits", "check_run", "check_splits",
           "estimate_time"]
