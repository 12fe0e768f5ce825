"""The benchmarks of the ``ray-nasrank bench`` commands as library functions: each takes a config
dataclass and returns its result (and writes it as JSON to the config's ``out``). The tabular
oracle they run on, :class:`~ray_nasrank.tabular.TabularBenchmark`, lives in
:mod:`ray_nasrank.tabular` and is re-exported here, with the ranking metrics.

Heavy libraries (torch, scikit-learn, Ray) are imported when a benchmark runs, not here.
"""

from ray_nasrank import metrics
from ray_nasrank.tabular import TabularBenchmark, find_shared_data, read_table

from ._config import TableConfig, table_weak_labels
from ._fit_time import FitTimeBenchConfig, bench_fit_time
from ._overhead import OverheadBenchConfig, bench_overhead
from ._proxies import ProxiesBenchConfig, bench_proxies, format_proxies_summary
from ._ranking import RankingBenchConfig, bench_ranking, markdown_table, weak_baseline_scores
from ._ranking import format_summary as format_ranking_summary
from ._search import SearchBenchConfig, bench_search
from ._supernet import SupernetBenchConfig, bench_supernet

__all__ = ["TabularBenchmark", "find_shared_data", "read_table", "metrics", "TableConfig",
           "RankingBenchConfig", "bench_ranking", "format_ranking_summary", "markdown_table", "table_weak_labels",
           "weak_baseline_scores",
           "SearchBenchConfig", "bench_search", "ProxiesBenchConfig", "bench_proxies",
           "format_proxies_summary", "FitTimeBenchConfig", "bench_fit_time", "OverheadBenchConfig",
           "bench_overhead", "SupernetBenchConfig", "bench_supernet"]
