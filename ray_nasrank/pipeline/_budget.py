"""How the main job spends its budget: fidelities, successive halving and a time budget.

The search trains candidates at a low *search fidelity* and ends with each arm's winner at the
*full fidelity*; in between, successive halving keeps the best ``1/halving`` of each rung for
the next, higher one (:func:`ladder`, :func:`rung_sizes`). A fidelity is what a training
costs and sees: image side, training images and epochs (:class:`Fidelity`).

The recipe adapts to the data: every training takes at least ``min_steps`` optimiser steps,
the full-fidelity one ``halving`` times as many (:func:`adapt`), so 1,294 small images are not
trained for 22 steps only. Everything here is plain arithmetic and imports neither Ray nor torch
(except :func:`measure_step_seconds`, which times a few real training steps).

With a time budget (:func:`parse_duration`: ``300``, ``"30m"``, ``"2h"``), :func:`plan_for_time`
chooses how many candidates the first rung trains, the rungs and the rounds so that the
estimated wall time (:class:`CostModel`, from measured seconds per step) fits; a budget shorter
than the smallest search is :class:`BudgetTooSmall`, which names the estimated minimum.

>>> search = Fidelity(image_size=8, train_images=1294, epochs=2, batch_size=128)
>>> full = Fidelity(image_size=8, train_images=1294, epochs=2, batch_size=128)
>>> search, full = adapt(search, full, min_steps=150, halving=3)
>>> search.epochs, search.steps, full.epochs, full.steps
(14, 154, 41, 451)
>>> [f.epochs for f in ladder(search, full, 2)]
[14, 41]
>>> plan = plan_fixed(search, full, budget=8, rounds=2, rungs=2, halving=3, arms=2)
>>> [(r.configs, r.fidelity.epochs) for r in plan.rungs]
[(8, 14), (1, 41)]
>>> parse_duration("30m"), parse_duration("2h"), parse_duration(300)
(1800.0, 7200.0, 300.0)
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

from ray_nasrank._checks import check_int

__all__ = ["Fidelity", "Rung", "Plan", "CostModel", "BudgetTooSmall", "parse_duration", "epochs_for_steps",
           "adapt", "ladder", "rung_sizes", "rounds_for", "plan_fixed", "plan_for_time",
           "measure_step_seconds", "stage_limit"]

_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([smhd]?)")


def parse_duration(value: str | float | int) -> float:
    """Seconds of a duration: a number of seconds or a string such as ``"300"``, ``"90s"``,
    ``"30m"``, ``"2h"`` or ``"1h30m"``.

    Args:
        value: the duration.

    Returns:
        The duration in seconds (> 0).

    Raises:
        ValueError: not a positive duration (the message shows the accepted forms).

    >>> parse_duration("1h30m"), parse_duration("90s"), parse_duration("2.5m")
    (5400.0, 90.0, 150.0)
    """
    form = "a time budget is seconds or a duration such as 300, 90s, 30m, 2h or 1h30m"
    if isinstance(value, bool):
        raise ValueError(f"{form}, got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        parts = list(_DURATION.finditer(text))
        if not text or not parts or "".join(m.group(0) for m in parts) != text:
            raise ValueError(f"{form}, got {value!r}")
        if len(parts) > 1 and any(not m.group(2) for m in parts):
            raise ValueError(f"{form} (every part of a compound duration needs its unit), got {value!r}")
        seconds = sum(float(m.group(1)) * _UNITS[m.group(2)] for m in parts)
    else:
        raise ValueError(f"{form}, got {type(value).__name__} {value!r}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{form}, and positive, got {value!r}")
    return seconds


def epochs_for_steps(train_images: int, batch_size: int, min_steps: int) -> int:
    """The fewest epochs that give at least ``min_steps`` optimiser steps (at least 1).

    >>> epochs_for_steps(1294, 128, 150), epochs_for_steps(10000, 128, 150)
    (14, 2)
    """
    per_epoch = math.ceil(check_int("train_images", train_images, low=1) / check_int("batch_size", batch_size,
                                                                                       low=1))
    return max(1, math.ceil(check_int("min_steps", min_steps, low=0) / per_epoch))


@dataclass(frozen=True)
class Fidelity:
    """What one training sees and costs: image side, training images, epochs, batch size, and
    the validation and test images it is scored on.

    Args:
        image_size: image side in pixels (the images are square after resampling; the native
            side when the data is not resampled).
        train_images: training images.
        epochs: training epochs.
        batch_size: training batch size.
        valid_images: validation images (0: not counted in the cost).
        test_images: test images (0: not counted in the cost).
    """

    image_size: int
    train_images: int
    epochs: int
    batch_size: int
    valid_images: int = 0
    test_images: int = 0

    def __post_init__(self) -> None:
        for name in ("image_size", "train_images", "epochs", "batch_size"):
            check_int(name, getattr(self, name), low=1)
        for name in ("valid_images", "test_images"):
            check_int(name, getattr(self, name), low=0)

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.train_images / self.batch_size)

    @property
    def steps(self) -> int:
        """Optimiser steps of one training."""
        return self.epochs * self.steps_per_epoch

    def same_training(self, other: "Fidelity") -> bool:
        """Whether a training at ``other`` repeats one at this fidelity (same images, size,
        epochs and batches; what it is scored on may differ)."""
        return (self.image_size, self.train_images, self.epochs, self.batch_size) == \
            (other.image_size, other.train_images, other.epochs, other.batch_size)

    def describe(self) -> str:
        """``"8x8, 1,294 training images, 14 epochs (154 steps of 128)"``."""
        return (f"{self.image_size}x{self.image_size}, {self.train_images:,} training images, {self.epochs} "
                f"epoch{'s' if self.epochs != 1 else ''} ({self.steps:,} steps of {self.batch_size})")

    def to_dict(self) -> dict:
        return {**asdict(self), "steps": self.steps}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Fidelity":
        return cls(**{k: int(d[k]) for k in ("image_size", "train_images", "epochs", "batch_size",
                                             "valid_images", "test_images") if k in d})


def adapt(search: Fidelity, full: Fidelity, min_steps: int, halving: int) -> tuple[Fidelity, Fidelity]:
    """The fidelities with the adaptive recipe: every search training takes at least
    ``min_steps`` optimiser steps and the full-fidelity one ``halving * min_steps`` (never fewer
    epochs than the search), by adding epochs.

    Args:
        search: the search fidelity as configured.
        full: the full fidelity as configured.
        min_steps: optimiser steps of the shortest training (0: no minimum).
        halving: the successive-halving factor.

    Returns:
        ``(search, full)`` with their epochs raised where needed.
    """
    check_int("min_steps", min_steps, low=0)
    check_int("halving", halving, low=2)
    s = replace(search, epochs=max(search.epochs, epochs_for_steps(search.train_images, search.batch_size,
                                                                   min_steps)))
    f_epochs = max(full.epochs, epochs_for_steps(full.train_images, full.batch_size, halving * min_steps))
    if full.train_images == s.train_images and full.image_size == s.image_size:
        f_epochs = max(f_epochs, s.epochs)
    return s, replace(full, epochs=f_epochs)


def _geo(lo: int, hi: int, t: float) -> int:
    return int(round(math.exp((1 - t) * math.log(lo) + t * math.log(hi))))


def ladder(search: Fidelity, full: Fidelity, rungs: int) -> list[Fidelity]:
    """The fidelities of ``rungs`` rungs from ``search`` to ``full``, each axis (image side,
    training images, epochs) interpolated geometrically; the validation and test images of the
    search apply below the top rung. Rungs that would repeat the training of the rung below are
    merged, so the ladder may be shorter (one rung when the search fidelity is the full one).
    One rung: every candidate trains at the full fidelity.

    >>> s = Fidelity(image_size=14, train_images=10000, epochs=2, batch_size=128)
    >>> f = Fidelity(image_size=28, train_images=54000, epochs=2, batch_size=128)
    >>> [(r.image_size, r.train_images) for r in ladder(s, f, 3)]
    [(14, 10000), (20, 23238), (28, 54000)]
    >>> len(ladder(s, s, 3))
    1
    """
    check_int("rungs", rungs, low=1)
    if rungs == 1 or search.same_training(full):
        return [full]  # one rung: every candidate trains at the full fidelity
    out: list[Fidelity] = []
    for k in range(rungs):
        t = k / (rungs - 1)
        if k == rungs - 1:
            fid = full
        elif k == 0:
            fid = search
        else:
            fid = replace(search, image_size=_geo(search.image_size, full.image_size, t),
                          train_images=_geo(search.train_images, full.train_images, t),
                          epochs=_geo(search.epochs, full.epochs, t))
        if out and out[-1].same_training(fid):
            out[-1] = fid  # the higher rung's scoring (e.g. the full test set) wins
            continue
        out.append(fid)
    return out


def rung_sizes(first: int, rungs: int, halving: int) -> list[int]:
    """Candidates per arm at each rung: ``first`` at the bottom, ``1/halving`` of the rung
    below at each next one, and each arm's single winner at the top.

    >>> rung_sizes(27, 4, 3), rung_sizes(8, 3, 3), rung_sizes(8, 2, 3), rung_sizes(5, 1, 3)
    ([27, 9, 3, 1], [8, 2, 1], [8, 1], [5])
    """
    check_int("first", first, low=1)
    check_int("rungs", rungs, low=1)
    check_int("halving", halving, low=2)
    if rungs == 1:
        return [first]
    sizes = [first] + [max(1, first // halving ** k) for k in range(1, rungs - 1)] + [1]
    return [min(s, sizes[i - 1]) if i else s for i, s in enumerate(sizes)]


def rounds_for(first: int, concurrency: int, min_rounds: int) -> int:
    """Rounds of a time-planned search of ``first`` trainings: about ``4 x concurrency``
    trainings per round (the ranker is refit between rounds), at least ``min_rounds``, but never
    fewer trainings in a round than run at a time (a round of one would leave CPUs idle).

    >>> rounds_for(45, 2, 2), rounds_for(8, 2, 2), rounds_for(2, 2, 2), rounds_for(1, 2, 2)
    (6, 2, 1, 1)
    """
    c = max(1, concurrency)
    return max(1, min(first // c, max(min_rounds, math.ceil(first / (4 * c)))))


class BudgetTooSmall(ValueError):
    """A time budget that cannot hold the smallest search.

    Args:
        message: the budget, the estimated minimum and what it is made of.
        minimum_s: the estimated minimum in seconds.
    """

    def __init__(self, message: str, minimum_s: float) -> None:
        super().__init__(message)
        self.minimum_s = float(minimum_s)


@dataclass(frozen=True)
class CostModel:
    """Estimated seconds of the main job's parts on this machine.

    A training costs its optimiser steps times the measured seconds per step (on one CPU
    thread; interpolated log-linearly in the image area between the two measured fidelities)
    plus the forward passes over its validation and test images (a third of a training step
    per image), plus ``trial_s``. The search fidelity's trainings run ``concurrency`` at a time;
    the top rung trains one winner at a time on all ``concurrency`` CPUs (``thread_speedup``
    per extra thread). Every Tune experiment adds ``experiment_s`` (starting its workers).

    Args:
        step_s: seconds per optimiser step at ``step_size`` (image side), one thread.
        step_size: the image side ``step_s`` was measured at.
        full_step_s: seconds per step at ``full_size``.
        full_size: the image side ``full_step_s`` was measured at.
        concurrency: trainings at a time.
        trial_s: overhead of one Tune trial.
        experiment_s: overhead of one Tune experiment.
        thread_speedup: speed-up per extra torch thread of a single training (0.7: two threads
            run 1.7x as fast as one).
        top_threads: threads of each top-rung training (``0``: all ``concurrency`` CPUs, one
            winner at a time, for large data; ``1``: the winners side by side).
    """

    step_s: float
    step_size: int
    full_step_s: float
    full_size: int
    concurrency: int = 2
    trial_s: float = 0.5
    experiment_s: float = 12.0
    thread_speedup: float = 0.7
    top_threads: int = 0

    def seconds_per_step(self, image_size: int) -> float:
        if self.full_size == self.step_size or self.full_step_s <= 0 or self.step_s <= 0:
            return max(self.step_s, self.full_step_s) if image_size >= self.full_size else self.step_s
        slope = math.log(self.full_step_s / self.step_s) / math.log(self.full_size / self.step_size)
        return self.step_s * (image_size / self.step_size) ** slope

    def training_s(self, fid: Fidelity, threads: int = 1) -> float:
        """Estimated wall seconds of one training at ``fid`` on ``threads`` CPUs."""
        per_step = self.seconds_per_step(fid.image_size)
        evals = (fid.valid_images + fid.test_images) / fid.batch_size / 3.0
        one = (fid.steps + evals) * per_step
        return one / (1.0 + self.thread_speedup * (max(1, threads) - 1)) + self.trial_s

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "CostModel":
        return cls(**dict(d))


@dataclass(frozen=True)
class Rung:
    """One rung of successive halving: each arm trains ``configs`` candidates at ``fidelity``
    (the best of the rung below; the first rung's come from the search / the random draws).

    Args:
        configs: candidates per arm.
        fidelity: the fidelity they train at.
        estimated_s: estimated wall seconds of the rung (``None``: not estimated).
    """

    configs: int
    fidelity: Fidelity
    estimated_s: float | None = None

    def to_dict(self) -> dict:
        return {"configs": self.configs, "fidelity": self.fidelity.to_dict(), "estimated_s": self.estimated_s}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Rung":
        return cls(int(d["configs"]), Fidelity.from_dict(d["fidelity"]), d.get("estimated_s"))


@dataclass(frozen=True)
class Plan:
    """How the job spends its budget (saved as ``plan.json``, so a resumed run keeps it).

    Args:
        rungs: the rungs, lowest first; the top one is the full fidelity.
        rounds: rounds of the first rung's NASRank search (the ranker is refit between them).
        arms: 2 with the random arm, else 1.
        full: the full fidelity (the top rung's, kept for the record when the ladder has one rung).
        time_budget_s: the time budget it was planned for (``None``: planned from ``budget``).
        estimated_s: estimated wall seconds of the whole job (``None``: not estimated).
        cost: the :class:`CostModel` the estimates came from, as a dict.
        notes: sentences on how the plan came about.
    """

    rungs: tuple[Rung, ...]
    rounds: int
    arms: int
    full: Fidelity
    time_budget_s: float | None = None
    estimated_s: float | None = None
    cost: dict | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def budget(self) -> int:
        """Trainings of the first rung, per arm."""
        return self.rungs[0].configs

    @property
    def search(self) -> Fidelity:
        return self.rungs[0].fidelity

    @property
    def retrains(self) -> bool:
        """Whether a rung above the first exists; ``False`` when the first rung already trains at
        the full fidelity, so retraining the winners would repeat their training."""
        return len(self.rungs) > 1

    def round_sizes(self) -> list[int]:
        q, r = divmod(self.budget, self.rounds)
        return [q + (1 if i < r else 0) for i in range(self.rounds)]

    def trainings(self) -> int:
        """Trainings of the whole plan (every arm, every rung)."""
        return sum(r.configs for r in self.rungs) * self.arms

    def to_dict(self) -> dict:
        return {"rungs": [r.to_dict() for r in self.rungs], "rounds": self.rounds, "arms": self.arms,
                "full": self.full.to_dict(), "time_budget_s": self.time_budget_s, "estimated_s": self.estimated_s,
                "cost": self.cost, "notes": list(self.notes)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Plan":
        return cls(rungs=tuple(Rung.from_dict(r) for r in d["rungs"]), rounds=int(d["rounds"]), arms=int(d["arms"]),
                   full=Fidelity.from_dict(d["full"]), time_budget_s=d.get("time_budget_s"),
                   estimated_s=d.get("estimated_s"), cost=d.get("cost"), notes=tuple(d.get("notes", ())))

    def describe(self) -> list[str]:
        """One line per rung: ``"rung 1: 8 candidates per arm at 8x8, ... (est. 40 s)"``."""
        lines = []
        for i, r in enumerate(self.rungs):
            what = ("the winner" if i else "1 candidate") if r.configs == 1 else f"{r.configs} candidates"
            est = f" (est. {r.estimated_s:.0f} s)" if r.estimated_s is not None else ""
            lines.append(f"rung {i + 1}: {what} per arm at {r.fidelity.describe()}{est}")
        return lines


def _rung_seconds(cost: CostModel, rungs: Sequence[Rung], arms: int) -> list[float]:
    """Estimated wall seconds of each rung (see :class:`CostModel`)."""
    c = max(1, cost.concurrency)
    out = []
    for i, r in enumerate(rungs):
        if i == 0:  # the NASRank search and the random arm: one experiment each
            out.append(arms * (cost.experiment_s + math.ceil(r.configs / c) * cost.training_s(r.fidelity)))
        elif i == len(rungs) - 1 and cost.top_threads != 1:  # the winners, one at a time on every CPU
            out.append(cost.experiment_s + arms * r.configs * cost.training_s(r.fidelity, threads=c))
        else:
            out.append(cost.experiment_s + math.ceil(arms * r.configs / c) * cost.training_s(r.fidelity))
    return out


def _with_estimates(rungs: Sequence[Rung], cost: CostModel | None, arms: int) -> tuple[tuple[Rung, ...], float | None]:
    if cost is None:
        return tuple(rungs), None
    secs = _rung_seconds(cost, rungs, arms)
    return tuple(replace(r, estimated_s=round(s, 1)) for r, s in zip(rungs, secs)), float(sum(secs))


def plan_fixed(search: Fidelity, full: Fidelity, *, budget: int, rounds: int, rungs: int, halving: int, arms: int,
               cost: CostModel | None = None) -> Plan:
    """The plan of a job without a time budget: ``budget`` candidates per arm at the search
    fidelity, halved by ``halving`` over ``rungs`` rungs up to each arm's winner at the full
    fidelity (fewer rungs when they would repeat a training; see :func:`ladder`).

    Args:
        search: the (adapted) search fidelity.
        full: the (adapted) full fidelity.
        budget: candidates per arm of the first rung.
        rounds: rounds of the NASRank search.
        rungs: rungs from the search fidelity to the full one (>= 1).
        halving: the successive-halving factor.
        arms: 2 with the random arm, else 1.
        cost: a cost model, for the estimates (``None``: none).

    Returns:
        The :class:`Plan`.
    """
    fids = ladder(search, full, rungs)
    sizes = rung_sizes(budget, len(fids), halving)
    planned, est = _with_estimates([Rung(n, f) for n, f in zip(sizes, fids)], cost, arms)
    notes = [] if len(fids) > 1 else [f"the search fidelity is the full one ({full.describe()}): the winners "
                                      "are not retrained, their search training is their full-fidelity result"]
    return Plan(rungs=planned, rounds=min(rounds, budget), arms=arms, full=fids[-1], estimated_s=est,
                cost=None if cost is None else cost.to_dict(), notes=tuple(notes))


def _fidelity_rungs(search: Fidelity, full: Fidelity, cost: CostModel, halving: int) -> int:
    """Rungs that make each step up cost about ``halving`` times the one below."""
    if search.same_training(full):
        return 1
    ratio = cost.training_s(full) / max(1e-9, cost.training_s(search))
    return 1 + max(1, int(round(math.log(max(ratio, 1.0)) / math.log(halving))))


def plan_for_time(seconds: float, search: Fidelity, full: Fidelity, *, cost: CostModel, halving: int, arms: int,
                  overhead_s: float, max_configs: int, min_rounds: int = 2, rungs: int | None = None,
                  safety: float = 0.9) -> Plan:
    """The largest successive-halving search that fits ``seconds``.

    The first rung trains as many candidates per arm as fit (at most ``max_configs``); the
    rungs step up from the search fidelity to the full one, each costing about ``halving``
    times the one below, while each arm keeps ``1/halving`` of its candidates per rung, down to
    its winner at the full fidelity. The estimate (:class:`CostModel`) plus ``overhead_s`` must
    stay within ``safety * seconds``.

    Args:
        seconds: the time budget.
        search: the (adapted) search fidelity.
        full: the (adapted) full fidelity.
        cost: the cost model (measured seconds per step).
        halving: the successive-halving factor.
        arms: 2 with the random arm, else 1.
        overhead_s: seconds the job spends besides the trainings (already spent and still to come).
        max_configs: most candidates per arm (the pool's limit).
        min_rounds: fewest rounds of the NASRank search.
        rungs: the number of rungs (``None``: steps of about ``halving`` in cost, no more than
            the first rung's candidates can be halved).
        safety: share of the budget the estimate may fill.

    Returns:
        The :class:`Plan`.

    Raises:
        BudgetTooSmall: not even one candidate per arm fits; the message names the estimated minimum.
    """
    check_int("max_configs", max_configs, low=1)
    room = safety * seconds - overhead_s
    max_rungs = _fidelity_rungs(search, full, cost, halving)

    def build(n: int) -> tuple[Plan, float]:
        if rungs is not None:
            r = rungs
        else:
            r = min(max_rungs, 1 + int(math.floor(math.log(n) / math.log(halving) + 1e-9)))
            if max_rungs > 1:
                r = max(r, 2)  # the winner is always retrained at the full fidelity
        fids = ladder(search, full, r)
        planned, est = _with_estimates([Rung(k, f) for k, f in zip(rung_sizes(n, len(fids), halving), fids)], cost,
                                       arms)
        plan = Plan(rungs=planned, rounds=rounds_for(n, cost.concurrency, min_rounds), arms=arms, full=fids[-1],
                    time_budget_s=float(seconds), estimated_s=round(overhead_s + est, 1), cost=cost.to_dict())
        return plan, est

    smallest, smallest_s = build(1)
    if smallest_s > room:
        minimum = (overhead_s + smallest_s) / safety
        parts = "; ".join(smallest.describe())
        hint = " (or --baseline none: no random arm)" if arms > 1 else ""
        raise BudgetTooSmall(
            f"a time budget of {seconds:.0f} s is shorter than the smallest search: about {minimum:.0f} s "
            f"(start-up, supernet, weak labels and report about {overhead_s:.0f} s; {parts}; measured "
            f"{cost.step_s * 1000:.1f} ms per training step at the search fidelity, on one thread). "
            f"Give at least --time-budget {math.ceil(minimum)}{hint}", minimum)
    lo, hi = 1, max_configs
    if build(hi)[1] <= room:
        lo = hi
    while lo < hi:  # the estimate grows with the first rung's size: the largest that fits
        mid = (lo + hi + 1) // 2
        if build(mid)[1] <= room:
            lo = mid
        else:
            hi = mid - 1
    plan, _ = build(lo)
    notes = [f"planned for a time budget of {seconds:.0f} s: {plan.trainings()} trainings, estimated "
             f"{plan.estimated_s:.0f} s in all"]
    if lo == max_configs:
        notes.append(f"the first rung is capped at {max_configs} candidates per arm (the pool's limit)")
    if not plan.retrains:
        notes.append(f"the search fidelity is the full one ({full.describe()}): the winners are not retrained")
    return replace(plan, notes=tuple(notes))


def stage_limit(remaining_s: float, stage_s: float, later_s: float, floor_s: float) -> float:
    """Seconds a stage of a time-budgeted job may take: its estimated share of the time left
    (``stage_s`` against ``later_s``, the estimates of the stages after it), at least ``floor_s``
    (one training must finish). The estimates can be off (another job loads the machine); the
    limits keep the whole job near its budget by cutting the stages short instead.

    >>> stage_limit(100, 30, 70, 5), stage_limit(50, 30, 70, 5), stage_limit(-10, 30, 70, 5)
    (30.0, 15.0, 5.0)
    """
    total = max(stage_s, 0.0) + max(later_s, 0.0)
    share = remaining_s * (stage_s / total if total > 0 else 1.0)
    return float(max(floor_s, share))


def measure_step_seconds(model_fn: Callable[[], Any], x: Any, y: Any, batch_size: int, *, steps: int = 6,
                         warmup: int = 2, lr: float = 0.05) -> float:
    """Median seconds of one SGD training step of ``model_fn()`` on batches of ``x, y`` in this
    process's torch threads (the first ``warmup`` steps are not timed).

    Args:
        model_fn: builds the model to time.
        x: input images ``[N, C, H, W]`` (cycled when fewer than a batch).
        y: labels ``[N]``.
        batch_size: the batch size timed.
        steps: timed steps.
        warmup: untimed steps first.
        lr: learning rate of the SGD steps.

    Returns:
        Seconds per step.

    >>> import torch
    >>> s = measure_step_seconds(lambda: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)),
    ...                          torch.randn(50, 1, 8, 8), torch.randint(0, 10, (50,)), 32, steps=2, warmup=1)
    >>> 0 < s < 1
    True
    """
    import statistics

    import torch
    from torch.nn import functional as F

    check_int("steps", steps, low=1)
    idx = torch.arange(batch_size) % len(x)
    xb, yb = x[idx].float(), y[idx]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = model_fn().train()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(xb), yb).backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return float(statistics.median(times))
