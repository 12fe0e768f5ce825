"""``ray-nasrank report DIR``: rebuild the plots and HTML page of a search's output folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import UsageError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "report", help="rebuild the report (plots, HTML) of a search output folder",
        description=("Rebuild DIR/report/ (predicted-vs-true rank, best-so-far, op distribution PNGs and "
                     "index.html) from DIR/results.parquet. --baseline-table adds the exact expected "
                     "random-search curve computed from a table of true values (e.g. NB201)."))
    p.add_argument("dir", help="a search output folder holding results.parquet")
    p.add_argument("--metric", default=None, help="metric column (default: from best.json, else valid_acc)")
    p.add_argument("--mode", default=None, choices=["max", "min"], help="default: from best.json, else max")
    p.add_argument("--top-k", type=int, default=10, help="top archs in the op-distribution plot (default 10)")
    p.add_argument("--baseline-table", default=None,
                   help="parquet/CSV whose --baseline-column holds every candidate's true value")
    p.add_argument("--baseline-column", default=None, help="column of --baseline-table (default: --metric)")
    p.add_argument("--space", default=None, metavar="NAME|MODULE:FUNCTION",
                   help="model family the arch strings belong to (default: the search's, from DIR/config.json)")
    p.add_argument("--no-html", action="store_true", help="PNG plots only")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from ray_nasrank.report import build_report, expected_random_best

    folder = Path(args.dir)
    if not (folder / "results.parquet").is_file():
        raise UsageError(f"ray-nasrank report: {str(folder)!r} has no results.parquet "
                         f"(run 'ray-nasrank search --out {folder}' first)")
    if args.top_k < 1:
        raise UsageError(f"ray-nasrank report: --top-k must be >= 1, got {args.top_k}")
    baseline = None
    if args.baseline_table:
        from ray_nasrank.tabular import read_table

        table = read_table(args.baseline_table)
        col = args.baseline_column or args.metric
        if col is None or col not in table.columns:
            raise UsageError(f"ray-nasrank report: --baseline-column {col!r} is not a column of "
                             f"{args.baseline_table} ({list(table.columns)[:12]})")
        n = len(pd.read_parquet(folder / "results.parquet"))
        values = pd.to_numeric(table[col], errors="coerce").dropna().to_numpy(dtype=np.float64)
        baseline = expected_random_best(values, min(n, len(values)), mode=args.mode or "max")
    rep = build_report(folder, metric=args.metric, mode=args.mode, baseline=baseline, top_k=args.top_k,
                       html=not args.no_html, space=args.space)
    for name, path in rep.plots.items():
        print(f"{name}: {path}")
    if rep.html:
        print(f"report: {rep.html}")
    return 0
