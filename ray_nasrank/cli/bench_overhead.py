"""``ray-nasrank bench overhead``: see :mod:`ray_nasrank.benchmarks._overhead` (``bench_overhead``).

Example::

    ray-nasrank bench overhead --decisions 5,10,30 --options 5,32,128 --trials 1000 --out overhead.json
"""

from __future__ import annotations

import argparse
import sys

from ray_nasrank.benchmarks._overhead import OverheadBenchConfig
from ray_nasrank.cli import add_options, log_to, options_from_args

__all__ = ["register", "run"]


def register(subparsers) -> None:
    from ray_nasrank.benchmarks import _overhead

    p = subparsers.add_parser(
        "overhead", help="searcher construction, first proposal, memory and seconds per trial on large/mixed spaces",
        description=_overhead.__doc__.split("\n\n")[1].replace("\n", " ") + " Writes one JSON file (--out).",
    )
    add_options(p, OverheadBenchConfig)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ray_nasrank.benchmarks._overhead import bench_overhead, format_overhead

    cfg = options_from_args(OverheadBenchConfig, args)
    with log_to(sys.stderr):
        result = bench_overhead(cfg)
    print(format_overhead(result))
    return 0
