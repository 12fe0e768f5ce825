"""Reports of a search: the results table, its plots (PNG) and a self-contained HTML page.

>>> import pandas as pd, tempfile
>>> df = pd.DataFrame({"arch": ["|nor_conv_3x3~0|+|skip_connect~0|none~1|+|none~0|none~1|none~2|",
...                             "|none~0|+|none~0|none~1|+|none~0|none~1|nor_conv_1x1~2|"],
...                    "order": [1, 2], "round": [0, 0], "predicted": [0.9, 0.1],
...                    "valid_acc": [81.0, 42.0]})
>>> rep = build_report(tempfile.mkdtemp(), results=df, space="nb201")
>>> sorted(rep.plots), rep.summary["best_valid_acc"]
(['best_so_far', 'op_distribution', 'predicted_vs_true'], 81.0)
"""

from ray_nasrank.metrics import best_so_far

from ._build import BASELINE_FILE, BEST_FILE, RESULTS_FILE, Report, build_report, summarise
from ._results import REQUIRED_COLUMNS, WEAK_PREFIX, best_row, check_results, weak_columns, weak_taus
from .baseline import expected_random_best
from .plots import (
    plot_accuracy_vs_cost,
    plot_best_so_far,
    plot_decisions,
    plot_op_distribution,
    plot_predicted_vs_true,
    save_figure,
)

__all__ = [
    "Report", "build_report", "summarise", "RESULTS_FILE", "BEST_FILE", "BASELINE_FILE",
    "REQUIRED_COLUMNS", "WEAK_PREFIX", "check_results", "best_row", "best_so_far", "weak_columns", "weak_taus",
    "expected_random_best", "plot_predicted_vs_true", "plot_best_so_far", "plot_op_distribution", "plot_decisions",
    "plot_accuracy_vs_cost", "save_figure",
]
