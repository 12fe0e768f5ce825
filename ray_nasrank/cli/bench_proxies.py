"""``ray-nasrank bench proxies``: see :mod:`ray_nasrank.benchmarks._proxies` (``bench_proxies``)."""

from __future__ import annotations

import argparse

from ray_nasrank.benchmarks._proxies import ProxiesBenchConfig
from ray_nasrank.cli import add_options, options_from_args


def register(subparsers) -> None:
    from ray_nasrank.benchmarks import _proxies

    p = subparsers.add_parser(
        "proxies", help="zero-cost proxies vs a published proxy table (rank agreement, cost)",
        description=_proxies.__doc__)
    add_options(p, ProxiesBenchConfig)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ray_nasrank.benchmarks import bench_proxies, format_proxies_summary

    result = bench_proxies(options_from_args(ProxiesBenchConfig, args))
    print(format_proxies_summary(result))
    print(f"wrote {args.out} and {result['scores_csv']}")
    return 0
