"""``ray-nasrank bench objectives``: see :mod:`ray_nasrank.benchmarks._objectives` (``bench_objectives``).

Example::

    ray-nasrank bench objectives --table ../shared/data/nb201/nb201_cifar10.parquet \\
        --target test_acc --weak supernet_oneshot_acc --devices gold_6226,pixel3 --seeds 10 \\
        --out results/objectives/nb201_latency.json
"""

from __future__ import annotations

from ray_nasrank.benchmarks._objectives import ObjectivesBenchConfig
from ray_nasrank.cli import register_bench

__all__ = ["register"]


def register(subparsers) -> None:
    """Add ``bench objectives`` to the ``bench`` subparsers."""
    register_bench(subparsers, "objectives", "accuracy against latency: hypervolume and a latency cap, NASRank "
                   "vs Optuna's samplers", ObjectivesBenchConfig, "ray_nasrank.benchmarks._objectives",
                   "bench_objectives", "format_objectives")
