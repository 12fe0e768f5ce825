"""``ray-nasrank bench search``: see :mod:`ray_nasrank.benchmarks._search` (``bench_search``).

Example::

    ray-nasrank bench search --table nb201_cifar10.parquet --space nb201 --target test_acc \\
        --weak supernet_oneshot_acc --budget 100 --seeds 30 \\
        --strategies nasrank,random,optuna-tpe,rea,opdist --out result.json
"""

from __future__ import annotations

import argparse
import sys

from ray_nasrank.benchmarks._search import SearchBenchConfig
from ray_nasrank.cli import add_options, log_to, options_from_args


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "search", help="compare search strategies on a table (each query is a lookup)",
        description="Run search strategies for --seeds seeds of --budget queries each on a table and write "
                    "the mean best-so-far, queries to the optimum and hit rate per strategy as JSON.")
    add_options(p, SearchBenchConfig)
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ray_nasrank.benchmarks import bench_search

    cfg = options_from_args(SearchBenchConfig, args)
    with log_to(sys.stderr, verbose=not args.quiet):
        bench_search(cfg)
    return 0
