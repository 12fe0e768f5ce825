"""``ray-nasrank bench ranking``: see :mod:`ray_nasrank.benchmarks._ranking` (``bench_ranking``).

Example::

    ray-nasrank bench ranking --table ../shared/data/nb201/nb201_cifar10.parquet --space nb201 \\
        --target test_acc --weak supernet_oneshot_acc --labels 50 --seeds 10 --out result.json

``python -m ray_nasrank.cli.bench_ranking a.json b.json ...`` prints their Markdown table.
"""

from __future__ import annotations

import argparse
import sys

from ray_nasrank.benchmarks._ranking import METHODS, METRICS, RankingBenchConfig, markdown_table
from ray_nasrank.cli import add_options, log_to, options_from_args

__all__ = ["METHODS", "METRICS", "markdown_table", "register", "run"]


def register(subparsers) -> None:
    from ray_nasrank.benchmarks import _ranking

    p = subparsers.add_parser(
        "ranking", help="rank a table from a few labels plus weak labels; compare methods",
        description=_ranking.__doc__.split("\n\n")[1].replace("\n", " ").replace("``", "") + " Writes one JSON file (--out).",
    )
    add_options(p, RankingBenchConfig)
    p.add_argument("--quiet", action="store_true", help="no per-seed progress lines on stderr")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ray_nasrank.benchmarks import bench_ranking, format_ranking_summary

    cfg = options_from_args(RankingBenchConfig, args)
    with log_to(sys.stderr, verbose=not args.quiet):
        result = bench_ranking(cfg)
    print(format_ranking_summary(result))
    return 0


if __name__ == "__main__":  # pragma: no cover  (python -m ray_nasrank.cli.bench_ranking a.json b.json ...)
    print(markdown_table(sys.argv[1:]))
