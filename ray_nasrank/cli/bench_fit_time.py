"""``ray-nasrank bench fit-time``: see :mod:`ray_nasrank.benchmarks._fit_time` (``bench_fit_time``).

Example::

    ray-nasrank bench fit-time --table ../shared/data/nb201/nb201_cifar10.parquet \\
        --target test_acc --weak supernet_oneshot_acc --labels 100 --threads 2 --out fit_time.json
"""

from __future__ import annotations

from ray_nasrank.benchmarks._fit_time import FitTimeBenchConfig
from ray_nasrank.cli import register_bench

__all__ = ["register"]


def register(subparsers) -> None:
    """Add ``bench fit-time`` to the ``bench`` subparsers."""
    register_bench(subparsers, "fit-time", "seconds per ranker refit on a whole table (pretrain once, refit and score N times)", FitTimeBenchConfig,
                   "ray_nasrank.benchmarks._fit_time", "bench_fit_time", "format_fit_time")
