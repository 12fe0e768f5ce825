"""The reliability benchmark: run scenarios, write cases and failures per scenario as JSON.

Run it from the repository root as ``python -m reliability`` (:func:`main`); the installed
``ray-nasrank`` command does not ship it, because the scenarios are a test harness of the
checkout, not part of the package.

Each scenario reports the cases it tried, its failures (all zero when the promises hold), its
wall-clock seconds and details; the JSON is rewritten atomically after every scenario, so an
interrupted benchmark keeps what it measured. Ray scenarios share one local
``ray.cluster_utils.Cluster`` (2-CPU head; the node-removal scenario adds and removes a worker).
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from ray_nasrank._checks import ConfigError
from ray_nasrank._config import option

from ._core import start_cluster

log = logging.getLogger("ray_nasrank.reliability")

#: scenario -> whether it needs Ray; the order is the run order
SCENARIOS: dict[str, bool] = {
    "fuzz": False,
    "fuzz_mixed": False,
    "interrupt_asktell": False,
    "interrupt_asktell_mixed": False,
    "interrupt_mixed": False,
    "faults_trials_asktell": False,
    "faults_output": False,
    "faults_atomic": False,
    "load_driver": False,
    "interrupt_tune": True,
    "faults_trials_tune": True,
    "faults_actor": True,
    "faults_node": True,
    "interrupt_cli": True,
    "load_tune": True,
    # the run folder (issue 22): payloads, corrupt artefacts, concurrent runs, input refused up front
    "prechecks": False,
    "optuna_non_finite": False,
    "security": True,
    "concurrent_out": True,
    "truncated_artefacts": True,
}


@dataclass
class ReliabilityBenchConfig:
    """One reliability run (the scenarios are listed by :data:`SCENARIOS`)."""

    scenarios: str = option("all", "'all' or a comma-separated list of scenarios")
    out: str = option("results/reliability/reliability.json", "JSON file to write")
    quick: bool = option(False, "the small variants the tests use (minutes, not an hour)")
    seed: int = option(0, "seed of every scenario")
    keep_passed: bool = option(False, "if --out exists, keep its scenarios that passed (same --quick) and run "
                                      "only the others")

    def __post_init__(self) -> None:
        if not self.scenarios.strip():
            raise ConfigError("`scenarios` is empty; use 'all' or names such as fuzz,interrupt_tune")


def select(text: str) -> list[str]:
    """The scenarios named by ``text`` (``all`` or a comma-separated list), in run order.

    Raises:
        ConfigError: an empty or unknown name.
    """
    names = list(SCENARIOS) if text.strip() == "all" else [p.strip() for p in text.split(",") if p.strip()]
    if not names:
        raise ConfigError("`scenarios` is empty; use 'all' or names such as fuzz,interrupt_tune")
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise ConfigError(f"unknown scenario(s) {unknown} in `scenarios`; choose from {list(SCENARIOS)} or 'all'")
    return [n for n in SCENARIOS if n in names]


def _plan(quick: bool, seed: int, cluster: Any, tmp: str) -> dict[str, Callable[[], list]]:
    import reliability as rel

    q = quick
    return {
        "fuzz": lambda: rel.fuzz_all(1100),
        "interrupt_asktell": lambda: [rel.asktell_interrupt(("random", "rea"), budget=30 if q else 200,
                                                             batch=4 if q else 8, seed=seed, use_shared=not q)],
        "interrupt_asktell_mixed": lambda: [rel.asktell_interrupt(("random", "rea", "optuna-tpe"),
                                                                   budget=30 if q else 100, batch=4, seed=seed,
                                                                   mixed=True)],
        "fuzz_mixed": lambda: [rel.fuzz_mixed_configs(200 if q else 600)],
        "interrupt_mixed": lambda: [rel.interrupt_mixed(("random", "rea", "optuna-tpe") if q else
                                                        ("random", "rea", "optuna-tpe", "nasrank"),
                                                        budget=20 if q else 40, seed=seed)],
        "faults_trials_asktell": lambda: [rel.asktell_trial_faults(budget=120 if q else 1000, seed=seed)],
        "faults_output": lambda: [rel.unwritable_output()],
        "faults_atomic": lambda: [rel.atomic_write_kill(kills=2 if q else 6, seed=seed, control=True)],
        "load_driver": lambda: [rel.searcher_load(trials=300 if q else 1000, concurrency=8,
                                                  strategies=("random", "rea"), seed=seed)],
        "interrupt_tune": lambda: [rel.tune_interrupt(budget=10 if q else 20,
                                                      fractions=(0.3, 0.7) if q else rel.EVERY_10_PERCENT,
                                                      seed=seed, storage=os.path.join(tmp, "tune_interrupt"))],
        "faults_trials_tune": lambda: [rel.tune_trial_faults(budget=12 if q else 24, seed=seed)],
        "faults_actor": lambda: [rel.supernet_actor_kill(pool_size=24 if q else 48, kill_races=2 if q else 6, seed=seed)],
        "faults_node": lambda: [rel.node_removal(cluster, budget=6 if q else 10, remove_after=2 if q else 3, seed=seed)],
        "load_tune": lambda: [rel.searcher_load(trials=100 if q else 500, concurrency=8, strategies=("random",),
                                                via="tune", seed=seed)],
        "interrupt_cli": lambda: [rel.cli_search_interrupt(cluster.address, budget=4 if q else 6,
                                                           fractions=(0.5,) if q else rel.EVERY_10_PERCENT)],
        "prechecks": lambda: [rel.prechecks()],
        "optuna_non_finite": lambda: [rel.optuna_non_finite(trials=12 if q else 60)],
        "security": lambda: [rel.state_payloads(),
                             rel.run_dir_payloads(cluster.address, states=("final",) if q else ("final", "tune"),
                                                  workdir=tmp)],
        "concurrent_out": lambda: [rel.concurrent_runs(cluster.address, delays=(0.0,) if q else (0.0, 5.0))],
        "truncated_artefacts": lambda: [rel.run_dir_truncation(
            cluster.address, states=("tune", "final") if q else ("data", "weak_labels", "ranker", "tune", "final"),
            workdir=tmp)],
    }


def _start_cluster():
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    cluster = start_cluster()
    ray.init(address=cluster.address, log_to_driver=False)
    return cluster


def _totals(report: dict, t0: float) -> None:
    entries = report["scenarios"].values()
    report["totals"] = {"cases": sum(e["cases"] for e in entries), "failures": sum(e["failures"] for e in entries),
                        "scenarios": len(report["scenarios"]), "seconds": round(time.perf_counter() - t0, 1)}


def bench_reliability(config: ReliabilityBenchConfig) -> dict:
    """Run the scenarios of ``config`` and write the report to ``config.out`` after each one.

    One line per scenario goes to the ``ray_nasrank`` logger at INFO.

    Args:
        config: the run.

    Returns:
        The report: ``{"scenarios": {name: {"cases", "failures", "seconds", "parts"}}, "totals": {...}, ...}``.

    Raises:
        ConfigError: an unknown scenario.
        OSError: ``out`` cannot be written (checked before any work).
    """
    from ray_nasrank._io import atomic_write_json, check_writable_dir

    names = select(config.scenarios)
    out = Path(config.out)
    check_writable_dir(out.parent if str(out.parent) else Path("."))  # fail before any work
    os.environ.setdefault("TQDM_DISABLE", "1")
    import torch

    torch.set_num_threads(1)
    report: dict[str, Any] = {
        "benchmark": "reliability", "quick": bool(config.quick), "seed": config.seed,
        "command": "python -m reliability --scenarios " + ",".join(names)
                   + (" --quick" if config.quick else "") + f" --out {config.out}",
        "host": {"python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.machine()},
        "scenarios": {}, "totals": {},
    }
    if config.keep_passed and out.is_file():
        import json

        old = json.loads(out.read_text())
        if bool(old.get("quick")) == bool(config.quick):
            kept = {n: e for n, e in old.get("scenarios", {}).items() if n in names and e.get("failures") == 0
                    and e.get("cases", 0) > 0}
            report["scenarios"].update({n: {**e, "kept_from_previous_run": True} for n, e in kept.items()})
            names = [n for n in names if n not in kept]
            report["command"] += " --keep-passed"
    cluster = None
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rn_bench_rel_") as tmp:
        try:
            if any(SCENARIOS[n] for n in names):
                cluster = _start_cluster()
            plan = _plan(config.quick, config.seed, cluster, tmp)
            for name in names:
                t0 = time.perf_counter()
                try:
                    results = plan[name]()
                    entry = {"cases": sum(r.cases for r in results), "failures": sum(r.failures for r in results),
                             "parts": [r.as_dict() for r in results]}
                except Exception as e:  # a crashed scenario is a failure to report, not a lost benchmark
                    entry = {"cases": 1, "failures": 1, "parts": [], "crash": f"{type(e).__name__}: {e}"[:1000]}
                entry["seconds"] = round(time.perf_counter() - t0, 2)
                report["scenarios"][name] = entry
                _totals(report, t_all)
                atomic_write_json(out, report)
                log.info(f"{name}: {entry['cases']} cases, {entry['failures']} failures, {entry['seconds']} s"
                         + (f" ({entry['crash']})" if "crash" in entry else ""))
        finally:
            if cluster is not None:
                import ray

                ray.shutdown()
                cluster.shutdown()
    _totals(report, t_all)
    atomic_write_json(out, report)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m reliability [flags]``: parse the flags, run :func:`bench_reliability`, print the totals.

    Args:
        argv: the flags (``sys.argv[1:]`` by default).

    Returns:
        0 when every scenario passed, 1 when one failed, 2 on a bad flag value (one line on stderr).
    """
    import argparse

    from ray_nasrank.cli import add_options, flag, log_to, options_from_args

    parser = argparse.ArgumentParser(
        prog="python -m reliability",
        description="Run the reliability scenarios (interruption and resume, faults, bad input, load) and "
                    "write, per scenario, cases tried, failures, seconds and details as JSON. "
                    f"Scenarios: {', '.join(SCENARIOS)}.")
    add_options(parser, ReliabilityBenchConfig)
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        cfg = options_from_args(ReliabilityBenchConfig, args)
        with log_to(sys.stdout):
            report = bench_reliability(cfg)
    except ConfigError as e:
        print(f"error: {e.render(flag)}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    t = report["totals"]
    print(f"total: {t['cases']} cases, {t['failures']} failures -> {cfg.out}")
    return 0 if t["failures"] == 0 else 1
