"""``ray-nasrank bench fit-time``: see :mod:`ray_nasrank.benchmarks._fit_time` (``bench_fit_time``).

Example::

    ray-nasrank bench fit-time --table ../shared/data/nb201/nb201_cifar10.parquet \\
        --target test_acc --weak supernet_oneshot_acc --labels 100 --threads 2 --out fit_time.json
"""

from __future__ import annotations

import argparse
import sys

from ray_nasrank.benchmarks._fit_time import FitTimeBenchConfig
from ray_nasrank.cli import add_options, log_to, options_from_args

__all__ = ["register", "run"]


def register(subparsers) -> None:
    from ray_nasrank.benchmarks import _fit_time

    p = subparsers.add_parser(
        "fit-time", help="seconds per ranker refit on a whole table (pretrain once, refit and score N times)",
        description=_fit_time.__doc__.split("\n\n")[1].replace("\n", " ") + " Writes one JSON file (--out).",
    )
    add_options(p, FitTimeBenchConfig)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ray_nasrank.benchmarks._fit_time import bench_fit_time, format_fit_time

    cfg = options_from_args(FitTimeBenchConfig, args)
    with log_to(sys.stderr):
        result = bench_fit_time(cfg)
    print(format_fit_time(result))
    return 0
