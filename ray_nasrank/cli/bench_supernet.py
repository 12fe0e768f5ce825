"""``ray-nasrank bench supernet``: see :mod:`ray_nasrank.benchmarks._supernet` (``bench_supernet``)."""

from __future__ import annotations

import argparse
import sys

from ray_nasrank.benchmarks._supernet import SupernetBenchConfig
from ray_nasrank.cli import add_options, log_to, options_from_args


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "supernet", help="train an NB201 supernet (SPOS / landmark / RD-NAS / few-shot) and write weak labels",
        description="Train an NB201 weight-sharing supernet, write weak labels for the cells and "
                    "(with --ground-truth) Kendall tau and NDCG@50 against stand-alone accuracies.")
    add_options(p, SupernetBenchConfig)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ray_nasrank.benchmarks import bench_supernet

    cfg = options_from_args(SupernetBenchConfig, args)
    with log_to(sys.stdout):
        bench_supernet(cfg)
    return 0
