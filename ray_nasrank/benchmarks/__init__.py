"""Tabular benchmarks (query oracles over measured tables) and their ranking metrics."""

from ray_nasrank import metrics
from ._table import TabularBenchmark, find_shared_data, read_table

__all__ = ["TabularBenchmark", "find_shared_data", "read_table", "metrics"]
