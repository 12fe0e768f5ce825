"""Searcher overhead on large and mixed spaces (``ray-nasrank bench overhead``).

For each space of ``decisions`` x ``options`` (categorical: every decision a choice of
``options`` values; mixed: a third log-uniform floats, a third integers in ``[1, options]``, a
third choices), each strategy is built, asked for its first proposal, then driven through
``trials`` ask/tell steps on a cheap synthetic objective. Measured: construction seconds,
first-proposal seconds, the peak of Python allocations (``tracemalloc``) and the growth of the
process's resident memory over construction and first proposal, and the strategy's own seconds
per trial (ask + tell, the objective excluded), overall and over the last 100 trials, as wall-clock
and as CPU seconds of the process (the figure that holds on a shared machine).
"""

from __future__ import annotations

import hashlib
import logging
import math
import shlex
import time
import tracemalloc
from dataclasses import asdict, dataclass
from pathlib import Path

from ray_nasrank._checks import ConfigError, check_int
from ray_nasrank._config import option

log = logging.getLogger(__name__)

KINDS = ("categorical", "mixed")


@dataclass
class OverheadBenchConfig:
    """One ``bench overhead`` run: the spaces, strategies and trials to time.

    Raises:
        ConfigError: a bad value; the message names its key.

    >>> OverheadBenchConfig(out="o.json").trials
    200
    >>> OverheadBenchConfig(out="o.json", kinds=["graph"])
    Traceback (most recent call last):
    ...
    ray_nasrank._checks.ConfigError: unknown kinds ['graph']; choose from ['categorical', 'mixed']
    """

    decisions: list[int] = option(default_factory=lambda: [5, 10, 30], help="numbers of decisions, comma-separated")
    options: list[int] = option(default_factory=lambda: [5, 32, 128],
                                help="options per decision (choices; integer range), comma-separated")
    kinds: list[str] = option(default_factory=lambda: list(KINDS), help="categorical and/or mixed spaces")
    strategies: list[str] = option(default_factory=lambda: ["nasrank", "random"], help="strategies to time")
    trials: int = option(200, "ask/tell steps per space and strategy (up to 1,000 and more)")
    batch: int = option(1, "configurations per ask (a Tune searcher asks for its free slots)")
    threads: int = option(1, "torch CPU threads of the predictor")
    seed: int = option(0, "seed of the strategies and of the objective")
    out: str | None = option(None, "JSON file to write", required=True)

    def __post_init__(self) -> None:
        from ray_nasrank.search import STRATEGIES

        self.decisions, self.options = [int(x) for x in self.decisions], [int(x) for x in self.options]
        self.kinds, self.strategies = list(self.kinds), list(self.strategies)
        for key in ("decisions", "options"):
            for v in getattr(self, key):
                check_int(key, v, low=1 if key == "decisions" else 2)
        bad = [k for k in self.kinds if k not in KINDS]
        if bad:
            raise ConfigError(f"unknown `kinds` {bad}; choose from {list(KINDS)}")
        bad = [s for s in self.strategies if s not in STRATEGIES]
        if bad:
            raise ConfigError(f"unknown `strategies` {bad}; choose from {sorted(STRATEGIES)}")
        check_int("trials", self.trials, low=1)
        check_int("batch", self.batch, low=1)
        check_int("threads", self.threads, low=1)
        check_int("seed", self.seed, low=0)

    def command(self) -> str:
        """The ``ray-nasrank`` command line of this run."""
        parts = ["--decisions", ",".join(map(str, self.decisions)), "--options", ",".join(map(str, self.options)),
                 "--kinds", ",".join(self.kinds), "--strategies", ",".join(self.strategies),
                 "--trials", str(self.trials), "--batch", str(self.batch), "--threads", str(self.threads),
                 "--seed", str(self.seed), "--out", str(self.out)]
        return "ray-nasrank bench overhead " + shlex.join(parts)


def overhead_space(kind: str, decisions: int, options: int):
    """The benchmark's space: ``decisions`` decisions of ``options`` choices (mixed: a third
    log-uniform floats, a third integers ``1..options``, a third choices)."""
    from ray_nasrank.spaces import CategoricalSpace, Decision, Float, Integer, SearchSpace

    if kind == "categorical":
        return CategoricalSpace({f"d{i}": list(range(options)) for i in range(decisions)})
    out = []
    for i in range(decisions):
        if i % 3 == 0:
            out.append(Decision((f"d{i}",), Float(1e-5, 1e-1, log=True)))
        elif i % 3 == 1:
            out.append(Decision((f"d{i}",), Integer(1, options)))
        else:
            out.append(Decision((f"d{i}",), list(range(options))))
    return SearchSpace(out, name=f"mixed-{decisions}x{options}")


def _objective(space, seed: int):
    """A cheap deterministic score: per-decision terms (a hashed value per choice, smooth bumps
    for numbers), so the search has structure to find."""
    def term(i: int, d, v) -> float:
        if d.categorical:
            h = hashlib.blake2b(f"{seed}:{i}:{v!r}".encode(), digest_size=4).digest()
            return int.from_bytes(h, "little") / 2 ** 32
        u = d.domain.to_unit(v)
        return 1.0 - (u - (0.3 + 0.4 * ((i * 7919 + seed) % 10) / 10)) ** 2

    return lambda arch: sum(term(i, d, v) for i, (d, v) in enumerate(zip(space.decisions, arch)))


def _rss_mb() -> float:
    """Resident memory of this process in MB (Linux /proc; NaN elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        import os

        return pages * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, IndexError):
        return float("nan")


def _time_one(kind: str, d: int, o: int, name: str, cfg: OverheadBenchConfig) -> dict:
    from ray_nasrank.search import make_strategy, strategy_accepts

    space = overhead_space(kind, d, o)
    f = _objective(space, cfg.seed)
    kwargs = {"torch_threads": cfg.threads} if strategy_accepts(name, "torch_threads") else {}
    rss0 = _rss_mb()
    tracemalloc.start()
    t0 = time.perf_counter()
    s = make_strategy(name, space, seed=cfg.seed, **kwargs)
    t1 = time.perf_counter()
    first = s.ask(cfg.batch)
    t2 = time.perf_counter()
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    rss1 = _rss_mb()
    per_trial: list[float] = []
    cpu: list[float] = []
    best = -math.inf
    pending = list(first)
    spent, spent_cpu = t2 - t1, 0.0
    while len(per_trial) < cfg.trials:
        if not pending:
            t, tc = time.perf_counter(), time.process_time()
            pending = s.ask(min(cfg.batch, cfg.trials - len(per_trial)))
            spent += time.perf_counter() - t
            spent_cpu += time.process_time() - tc
            if not pending:
                break
        a = pending.pop(0)
        v = f(a)
        best = max(best, v)
        t, tc = time.perf_counter(), time.process_time()
        s.tell(a, v)
        spent += time.perf_counter() - t
        spent_cpu += time.process_time() - tc
        per_trial.append(spent)
        cpu.append(spent_cpu)
        spent = spent_cpu = 0.0
    last = per_trial[-100:]
    return {"kind": kind, "decisions": d, "options": o, "size": "inf" if space.size == math.inf else f"{space.size:.3g}",
            "strategy": name, "construct_s": t1 - t0, "first_proposal_s": t2 - t1, "peak_traced_mb": peak,
            "rss_growth_mb": rss1 - rss0, "trials": len(per_trial),
            "searcher_s_per_trial": sum(per_trial) / max(len(per_trial), 1),
            "searcher_s_per_trial_last100": sum(last) / max(len(last), 1),
            "searcher_s_max_trial": max(per_trial, default=0.0),
            # CPU seconds of this process: what the searcher costs when other jobs share the cores
            "searcher_cpu_s_per_trial": sum(cpu) / max(len(cpu), 1),
            "searcher_cpu_s_per_trial_last100": sum(cpu[-100:]) / max(len(cpu[-100:]), 1), "best": best}


def bench_overhead(config: OverheadBenchConfig) -> dict:
    """Time every (kind, decisions, options, strategy) of ``config``; write the JSON to ``config.out``.

    Args:
        config: the run.

    Returns:
        ``{"config", "command", "runs": [one dict per combination]}``.
    """
    from ray_nasrank._io import atomic_write_json

    runs = []
    for kind in config.kinds:
        for d in config.decisions:
            for o in config.options:
                for name in config.strategies:
                    r = _time_one(kind, d, o, name, config)
                    log.info("%s %dx%d %s: construct %.3f s, first %.3f s, %.1f MB traced, %.4f s/trial",
                             kind, d, o, name, r["construct_s"], r["first_proposal_s"], r["peak_traced_mb"],
                             r["searcher_s_per_trial"])
                    runs.append(r)
    result = {"config": asdict(config), "command": config.command(), "runs": runs}
    if config.out:
        atomic_write_json(Path(config.out), result)
    return result


def format_overhead(result: dict) -> str:
    """A table: one line per run."""
    lines = [f"{'space':<24}{'strategy':<12}{'construct_s':>12}{'first_s':>10}{'traced_MB':>11}{'rss_MB':>9}"
             f"{'s/trial':>10}{'last100':>10}{'cpu_last100':>12}"]
    for r in result["runs"]:
        lines.append(f"{r['kind'] + ' ' + str(r['decisions']) + 'x' + str(r['options']):<24}{r['strategy']:<12}"
                     f"{r['construct_s']:>12.3f}{r['first_proposal_s']:>10.3f}{r['peak_traced_mb']:>11.1f}"
                     f"{r['rss_growth_mb']:>9.1f}{r['searcher_s_per_trial']:>10.4f}{r['searcher_s_per_trial_last100']:>10.4f}"
                     f"{r['searcher_cpu_s_per_trial_last100']:>12.4f}")
    return "\n".join(lines)
