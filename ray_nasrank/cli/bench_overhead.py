"""``ray-nasrank bench overhead``: see :mod:`ray_nasrank.benchmarks._overhead` (``bench_overhead``).

Example::

    ray-nasrank bench overhead --decisions 5,10,30 --options 5,32,128 --trials 1000 --out overhead.json
"""

from __future__ import annotations

from ray_nasrank.benchmarks._overhead import OverheadBenchConfig
from ray_nasrank.cli import register_bench

__all__ = ["register"]


def register(subparsers) -> None:
    """Add ``bench overhead`` to the ``bench`` subparsers."""
    register_bench(subparsers, "overhead", "searcher construction, first proposal, memory and seconds per trial on large/mixed spaces", OverheadBenchConfig,
                   "ray_nasrank.benchmarks._overhead", "bench_overhead", "format_overhead")
