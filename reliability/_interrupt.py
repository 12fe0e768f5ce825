"""Interruption at every 10 % of the budget, then resume: nothing lost, nothing repeated.

Three ways to run a search are interrupted and resumed:

- :func:`asktell_interrupt`: a :class:`~ray_nasrank.search.Strategy` ask/tell loop whose state is
  saved, dropped and loaded from disk at every checkpoint, with asked-but-untold archs pending;
- :func:`tune_interrupt`: a Ray Tune run with :class:`NASRankSearcher` stopped by ``SIGINT``
  (Tune's graceful Ctrl-C) after every 10 % of its trials and brought back with
  ``Tuner.restore(..., resume_unfinished=True)``;
- :func:`cli_search_interrupt` (in ``_cli_resume``): ``ray-nasrank search`` re-run on its output
  directory.

Each interrupted run must end with exactly the budget's trials, no two architectures sharing an
isomorphism key, and every result finished before an interruption kept with the same value.

>>> from reliability import asktell_interrupt
>>> asktell_interrupt(strategies=("random",), budget=20).failures
0
"""

from __future__ import annotations

import functools
import math
import os
import signal
import tempfile
from pathlib import Path
from typing import Any, Sequence

from ._core import CaseLog, ScenarioResult

#: fractions of the budget at which a run is interrupted
EVERY_10_PERCENT = tuple(round(0.1 * k, 1) for k in range(1, 10))


def synthetic_value(arch: Sequence[str]) -> float:
    """A deterministic objective over NB201 cells (no data needed): convs good, 'none' bad.

    Isomorphic cells may score differently; only de-duplication by key is under test here.
    """
    weights = {"nor_conv_3x3": 3.0, "nor_conv_1x1": 2.0, "skip_connect": 1.0, "avg_pool_3x3": 0.5}
    return float(sum(weights.get(op, 0.0) * (1 + 0.1 * i) for i, op in enumerate(arch)))


@functools.lru_cache(maxsize=2)
def reliability_bench(use_shared: bool = True):
    """The NB201 CIFAR-10 table when ../shared is present, else every NB201 cell with
    :func:`synthetic_value` as target (so the scenarios run anywhere).

    Cached: scenarios only read it (``lookup``, never the query-counting ``evaluate``)."""
    import pandas as pd

    from ray_nasrank.benchmarks import TabularBenchmark, find_shared_data
    from ray_nasrank.spaces import NB201Space

    path = find_shared_data() if use_shared else None
    if path is not None:
        return TabularBenchmark.nb201(path, weak=())
    space = NB201Space()
    archs = list(space.enumerate())
    df = pd.DataFrame({"arch": [space.to_string(a) for a in archs], "value": [synthetic_value(a) for a in archs]})
    return TabularBenchmark.from_frame(df, space="nb201", target="value")


def checkpoints(budget: int, fractions: Sequence[float] = EVERY_10_PERCENT) -> list[int]:
    """Trial counts at which to interrupt: ``ceil(f * budget)``, distinct, inside (0, budget)."""
    out = sorted({math.ceil(f * budget - 1e-9) for f in fractions})
    return [k for k in out if 0 < k < budget]


# ====================================================================== ask/tell
def mixed_space():
    """A mixed, conditional space for the ask/tell scenarios: choices, a log-integer, a
    log-uniform float, a stepped float, a normal, and two decisions that exist for one optimizer."""
    from ray_nasrank.spaces import Condition, Decision, Float, Integer, Normal, SearchSpace

    return SearchSpace([
        Decision(("op",), ["conv3", "conv5", "skip", "pool"]),
        Decision(("width",), Integer(8, 256, log=True)),
        Decision(("opt",), ["sgd", "adam"]),
        Decision(("momentum",), Float(0.0, 0.99, step=0.01), Condition("opt", ("sgd",))),
        Decision(("beta",), Integer(1, 4), Condition("opt", ("adam",))),
        Decision(("lr",), Float(1e-5, 1e-1, log=True)),
        Decision(("noise",), Normal(0.0, 1.0, step=0.5)),
    ], name="mixed")


def mixed_value(arch: Sequence[Any]) -> float:
    """A deterministic objective over :func:`mixed_space` configurations."""
    op, width, opt, momentum, beta, lr, noise = arch
    v = {"conv3": 1.0, "conv5": 0.8, "skip": 0.3, "pool": 0.1}[op] + 0.1 * math.log2(width)
    v += 0.5 * momentum if opt == "sgd" else 0.1 * beta
    return v - (math.log10(lr) + 2.5) ** 2 - 0.1 * noise ** 2


def _asktell_run(name: str, space: Any, bench: Any, budget: int, batch: int, seed: int,
                 stops: Sequence[int], workdir: Path, log_prefix: str,
                 evaluate: Any = None) -> tuple[list, list, int]:
    """Run ``budget`` trials, saving/dropping/loading the strategy at each of ``stops``.

    At every stop the current batch is only half told, so the saved state holds pending archs.
    Returns (history, snapshots of the history at each stop, number of reloads).
    """
    from ray_nasrank.search import Strategy, make_strategy

    strategy = make_strategy(name, space, seed=seed, candidates=bench.archs if bench is not None else None)
    path = workdir / f"{log_prefix}.state.pkl"
    stops = list(stops)
    snapshots: list[list] = []
    reloads = 0
    if evaluate is None:
        evaluate = (lambda a: bench.lookup(a)) if bench is not None else synthetic_value
    while len(strategy.history) < budget:
        # re-run archs that were pending when the state was saved (their results were lost)
        todo = list(strategy.pending)
        if not todo:
            todo = strategy.ask(min(batch, budget - len(strategy.history)))
            if not todo:
                break
        # results come back in a fixed order, as from workers that finish in arch order
        todo.sort(key=space.to_string)
        for a in todo:
            strategy.tell(a, evaluate(a))
            if stops and len(strategy.history) >= stops[0]:
                stops.pop(0)
                snapshots.append(strategy.history)
                strategy.save(path)
                del strategy
                strategy = Strategy.from_file(path)
                reloads += 1
                break
    return strategy.history, snapshots, reloads


def asktell_interrupt(strategies: Sequence[str] = ("random", "rea"), budget: int = 50, batch: int = 4,
                      seed: int = 0, use_shared: bool = False,
                      fractions: Sequence[float] = EVERY_10_PERCENT, mixed: bool = False) -> ScenarioResult:
    """Ask/tell loops interrupted (state saved, dropped, loaded) at every 10 % of ``budget``;
    with ``mixed`` on :func:`mixed_space` (numeric and conditional decisions) instead of NB201."""
    log = CaseLog("interrupt_asktell_mixed" if mixed else "interrupt_asktell")
    bench = None if mixed else reliability_bench(use_shared)
    space = mixed_space() if mixed else bench.space
    evaluate = mixed_value if mixed else None
    stops = checkpoints(budget, fractions)
    with tempfile.TemporaryDirectory(prefix="rn_rel_asktell_") as tmp:
        for name in strategies:
            with log.case(f"{name}: budget {budget}, interrupted at {stops}", timeout_s=300) as c:
                hist, snaps, reloads = _asktell_run(name, space, bench, budget, batch, seed, stops, Path(tmp), name,
                                                    evaluate)
                c.check(reloads == len(stops), f"{reloads} reloads for {len(stops)} stops")
                c.check(len(hist) == budget, f"{len(hist)} trials told for a budget of {budget}")
                keys = [space.iso_key(h["arch"]) for h in hist]
                c.check(len(set(keys)) == len(keys), f"{len(keys) - len(set(keys))} iso-duplicate trial(s)")
                final = {h["arch"]: h["value"] for h in hist}
                for snap in snaps:
                    for h in snap:
                        c.check(final.get(h["arch"]) == h["value"],
                                f"result of {space.to_string(h['arch'])} lost or changed after a resume")
                c.check(all(h["status"] == "ok" for h in hist), "a trial ended failed")
                ref, _, _ = _asktell_run(name, space, bench, budget, batch, seed, [], Path(tmp), name + "_ref", evaluate)
                # with the same seed, the resumed run asks what an uninterrupted run asks
                c.check(sorted(map(space.to_string, (h["arch"] for h in ref))) ==
                        sorted(map(space.to_string, final)), "resumed run asked other archs than an uninterrupted run")
    log.details.update({"strategies": list(strategies), "budget": budget, "batch": batch,
                        "interruptions_per_run": len(stops),
                        "table": "mixed" if mixed else "nb201" if use_shared else "synthetic-nb201"})
    return log.result()


# ====================================================================== Ray Tune
class _InterruptAt:
    """Tune callback: SIGINT (graceful Ctrl-C) once the experiment holds ``k`` finished trials.

    ``k`` is read from a file at each completion, because Tune restores callbacks from the
    pickle it made when the Tuner was built, so state kept on the object would be stale. The
    segment cannot overshoot ``k``: trials finish only with a permit (see
    :func:`_gated_table_trainable`), and the driver grants exactly ``k`` in all, so where an
    interruption lands does not depend on timing or load.
    """

    def __init__(self, control: str) -> None:
        self.control = control

    def __call__(self, trials: list, trial: Any) -> None:
        p = Path(self.control)
        if not p.exists():
            return
        target = int(p.read_text().strip() or 0)
        # Tune calls back before it marks ``trial`` finished: count it too
        done = len({t.trial_id for t in trials if t.status in ("TERMINATED", "ERROR")} | {trial.trial_id})
        if 0 < target <= done:
            p.write_text("0")  # fire once per segment
            os.kill(os.getpid(), signal.SIGINT)


def _grant(permits: Path, n: int) -> None:
    """Let ``n`` trials in all (over every segment) finish."""
    permits.mkdir(parents=True, exist_ok=True)
    tmp = permits / "allowed.tmp"
    tmp.write_text(str(n))
    os.replace(tmp, permits / "allowed")


def _gated_table_trainable(config: dict, bench: Any, sleep_s: float, permits: str) -> None:
    """The table trainable, reporting only once it holds a permit.

    The driver grants permits up to the next interruption mark (``allowed``); a trial claims one
    by creating ``claimed_<trial id>`` (a trial re-run after a restore keeps its claim) while
    fewer than ``allowed`` are claimed, and otherwise waits. So exactly as many trials finish
    before each interruption as the mark says, however fast or slow Tune, the trials and the
    machine are; a waiting trial is stopped by the interruption and resumed after the restore.
    """
    import fcntl
    import time

    from ray import tune

    from ray_nasrank.integrations.tune._trainables import _table_trainable

    folder = Path(permits)
    mine = folder / f"claimed_{tune.get_context().get_trial_id()}"
    while not mine.exists():
        # one claimer at a time (the count and the claim must not interleave); flock is released
        # by the kernel if Tune kills this worker meanwhile
        with open(folder / "lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if len(list(folder.glob("claimed_*"))) < int((folder / "allowed").read_text()):
                mine.touch()
        if not mine.exists():
            time.sleep(0.05)
    _table_trainable(config, bench=bench, sleep_s=sleep_s)


def _make_callback(control: str):
    from ray import tune

    class InterruptCallback(tune.Callback):
        def __init__(self) -> None:
            self.interrupt = _InterruptAt(control)

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.interrupt(trials, trial)

        def on_trial_error(self, iteration, trials, trial, **info):
            self.interrupt(trials, trial)

    return InterruptCallback()


def tune_interrupt(budget: int = 20, fractions: Sequence[float] = EVERY_10_PERCENT, strategy: str = "random",
                   concurrency: int = 2, seed: int = 0, use_shared: bool = False,
                   storage: str | None = None, sleep_s: float = 0.0) -> ScenarioResult:
    """A Tune run interrupted by SIGINT at every 10 % of ``budget`` and restored each time.

    Needs a running Ray (the caller's ``ray.init`` or test fixture).
    """
    from ray import tune

    from ray_nasrank.integrations.tune import NASRankSearcher

    log = CaseLog("interrupt_tune")
    bench = reliability_bench(use_shared)
    metric = bench.target_name
    stops = checkpoints(budget, fractions)
    own_tmp = tempfile.TemporaryDirectory(prefix="rn_rel_tune_") if storage is None else None
    root = Path(storage or own_tmp.name)
    root.mkdir(parents=True, exist_ok=True)
    control = root / "interrupt_at.txt"
    permits = root / "permits"
    trainable = tune.with_parameters(_gated_table_trainable, bench=bench, sleep_s=float(sleep_s),
                                     permits=str(permits))
    segments: list[dict[str, tuple]] = []
    try:
        with log.case(f"tune {strategy}: budget {budget}, SIGINT at {stops}", timeout_s=120 + 45 * (len(stops) + 1)) as c:
            searcher = NASRankSearcher(bench.space, strategy=strategy, metric=metric, mode=bench.mode, seed=seed,
                                       strategy_kwargs={"candidates": bench.archs})
            control.write_text(str(stops[0]) if stops else "0")
            _grant(permits, stops[0] if stops else budget)
            tuner = tune.Tuner(
                trainable, param_space=bench.space.to_tune(),
                tune_config=tune.TuneConfig(search_alg=searcher, num_samples=budget,
                                            max_concurrent_trials=concurrency, reuse_actors=True),
                run_config=tune.RunConfig(name="interrupted", storage_path=str(root), verbose=0,
                                          callbacks=[_make_callback(str(control))]),
            )
            results = tuner.fit()
            path = str(root / "interrupted")
            restores = 0
            ends: list[int] = []  # finished trials when each segment ended
            while True:
                segments.append(_metrics_of(results, metric))
                ends.append(len(segments[-1]))
                if ends[-1] >= budget or restores > len(stops) + 1:
                    break
                c.check(tune.Tuner.can_restore(path), f"no restorable experiment at {path}")
                ahead = [k for k in stops if k > ends[-1]]
                control.write_text(str(ahead[0]) if ahead else "0")
                _grant(permits, ahead[0] if ahead else budget)  # waiting trials go on after the restore
                results = tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True).fit()
                restores += 1
            c.check(ends[:-1] == stops, f"segments ended at {ends[:-1]}, not at the marks {stops}")
            final = _metrics_of(results, metric)
            c.check(len(final) == budget, f"{len(final)} finished trials for a budget of {budget}")
            c.check(not results.errors, f"errored trials: {results.errors[:2]}")
            archs = [bench.space.from_string(a) for a, _ in final.values()]
            keys = {bench.space.iso_key(a) for a in archs}
            c.check(len(keys) == len(archs), f"{len(archs) - len(keys)} iso-duplicate trial(s)")
            for seg in segments:
                for tid, (a, v) in seg.items():
                    c.check(final.get(tid) == (a, v), f"trial {tid} ({a}={v}) lost or changed after a restore")
            for tid, (a, v) in final.items():
                c.check(v == bench.lookup(bench.space.from_string(a)), f"trial {tid} reports a wrong value")
            log.details.update({"restores": restores, "finished_at_each_interruption": ends[:-1]})
    finally:
        if own_tmp is not None:
            own_tmp.cleanup()
    log.details.update({"budget": budget, "interrupt_at": stops, "strategy": strategy, "concurrency": concurrency,
                        "table": "nb201" if use_shared else "synthetic-nb201"})
    return log.result()


def _metrics_of(results, metric: str) -> dict[str, tuple[str, float]]:
    """trial_id -> (arch, value) of the finished trials of a ResultGrid."""
    out = {}
    for r in results:
        m = r.metrics or {}
        if metric in m and "arch" in m:
            out[m["trial_id"]] = (m["arch"], float(m[metric]))
    return out
