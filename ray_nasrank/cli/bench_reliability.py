"""``ray-nasrank bench reliability``: interruption, faults, bad input and load scenarios -> JSON.

The scenarios are a test harness, not part of the installed package: they live in the
``reliability/`` folder of a source checkout of ray_nasrank, and this command runs them when
ray_nasrank is imported from such a checkout (``pip install -e '.[dev]'``); so does
``python -m reliability`` from the repository root.

Example::

    ray-nasrank bench reliability --scenarios all --out results/reliability/reliability.json
    ray-nasrank bench reliability --scenarios fuzz,faults_output --quick --out /tmp/rel.json
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from ray_nasrank._checks import ConfigError
from ray_nasrank._config import option

from . import UsageError, add_options, log_to, options_from_args


@dataclass
class ReliabilityBenchConfig:
    """One ``bench reliability`` run (the scenarios are listed by ``reliability.SCENARIOS``)."""

    scenarios: str = option("all", "'all' or a comma-separated list of scenarios")
    out: str = option("results/reliability/reliability.json", "JSON file to write")
    quick: bool = option(False, "the small variants the tests use (minutes, not an hour)")
    seed: int = option(0, "seed of every scenario")
    keep_passed: bool = option(False, "if --out exists, keep its scenarios that passed (same --quick) and run "
                                      "only the others")

    def __post_init__(self) -> None:
        if not self.scenarios.strip():
            raise ConfigError("`scenarios` is empty; use 'all' or names such as fuzz,interrupt_tune")


def checkout_root() -> Path | None:
    """The source checkout ray_nasrank is imported from (it holds ``reliability/``), or ``None``."""
    import ray_nasrank

    root = Path(ray_nasrank.__file__).resolve().parent.parent
    if (root / "setup.cfg").is_file() and (root / "reliability" / "__init__.py").is_file():
        return root
    return None


def harness() -> ModuleType:
    """The ``reliability`` package of the checkout.

    Raises:
        UsageError: ray_nasrank is installed from a wheel or sdist, which ship no test harness.
    """
    root = checkout_root()
    if root is None:
        raise UsageError(
            "bench reliability runs the scenarios of a source checkout (its reliability/ folder), which an "
            "installed ray_nasrank does not ship: clone the repository, pip install -e '.[dev]' there and run "
            "'ray-nasrank bench reliability' or 'python -m reliability' from it")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return importlib.import_module("reliability")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "reliability", help="resume, faults, bad input and load scenarios (cases and failures as JSON)",
        description="Run the reliability scenarios (from a source checkout: its reliability/ folder) and write, "
                    "per scenario, cases tried, failures, seconds and details.")
    add_options(p, ReliabilityBenchConfig)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = options_from_args(ReliabilityBenchConfig, args)
    rel = harness()
    with log_to(sys.stdout):
        report = rel.bench_reliability(cfg)
    t = report["totals"]
    print(f"total: {t['cases']} cases, {t['failures']} failures -> {cfg.out}")
    return 0 if t["failures"] == 0 else 1
