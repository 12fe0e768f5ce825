"""``build_report``: the plots and the HTML page of a results table, written into a folder."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ray_nasrank._checks import check_mode
from ray_nasrank._io import atomic_write_text, check_writable_dir
from ray_nasrank.metrics import kendall_tau
from ray_nasrank.spaces import SearchSpace

from ._html import render_html
from ._results import best_row, check_results, weak_columns
from .plots import plot_best_so_far, plot_op_distribution, plot_predicted_vs_true, save_figure

__all__ = ["Report", "build_report", "summarise", "RESULTS_FILE", "BEST_FILE", "BASELINE_FILE"]

RESULTS_FILE = "results.parquet"
BEST_FILE = "best.json"
#: optional random-search baseline: columns ``n`` and ``expected_best``
BASELINE_FILE = "baseline.parquet"


@dataclass
class Report:
    """Where a report's files are, plus its headline numbers."""

    folder: Path
    plots: dict[str, Path]
    html: Path | None
    summary: dict = field(default_factory=dict)


def summarise(df: pd.DataFrame, metric: str = "valid_acc", mode: str = "max") -> dict:
    """Headline numbers of a results table: best arch, its metrics, counts, ranker agreement."""
    check_mode(mode)
    df = check_results(df, metric)
    best = best_row(df, metric, mode)
    values = df[metric].to_numpy(dtype=np.float64)
    pred = df["predicted"].to_numpy(dtype=np.float64)
    ok = np.isfinite(values) & np.isfinite(pred)
    out: dict = {
        "best_arch": str(best["arch"]),
        f"best_{metric}": float(best[metric]),
        "evaluated": int(len(df)),
        "failed": int((~np.isfinite(values)).sum()),
        "rounds": int(df["round"].nunique()),
        "found_at_training": int(best["order"]),
    }
    if "test_acc" in df.columns and metric != "test_acc" and np.isfinite(float(best["test_acc"])):
        out["best_test_acc"] = float(best["test_acc"])
    out["kendall_tau_predicted_vs_true"] = float(kendall_tau(values[ok], pred[ok], mode)) if ok.sum() >= 2 else None
    for col in weak_columns(df):
        w = df[col].to_numpy(dtype=np.float64)
        okw = np.isfinite(values) & np.isfinite(w)
        out[f"kendall_tau_{col}_vs_true"] = float(kendall_tau(values[okw], w[okw], mode)) if okw.sum() >= 2 else None
    return out


def build_report(folder: str | os.PathLike, results: pd.DataFrame | str | os.PathLike | None = None,
                 metric: str | None = None, mode: str | None = None,
                 baseline: Sequence[float] | np.ndarray | None = None, space: SearchSpace | None = None,
                 top_k: int = 10, html: bool = True, title: str = "ray-nasrank search report",
                 artefacts: Mapping[str, str] | None = None) -> Report:
    """Write ``report/*.png`` (and ``report/index.html``) for a results table into ``folder``.

    ``results`` is a DataFrame, a parquet path, or ``None`` for ``folder/results.parquet``.
    ``metric``/``mode`` default to what ``folder/best.json`` says, else ``valid_acc``/``max``.
    ``baseline`` defaults to ``folder/baseline.parquet`` when that exists.

    Example::

        rep = build_report("runs/demo")            # rebuilds runs/demo/report/
        rep.plots["best_so_far"], rep.html
    """
    folder = Path(folder)
    best_meta: dict = {}
    if (folder / BEST_FILE).is_file():
        with open(folder / BEST_FILE) as f:
            best_meta = json.load(f)
    metric = metric or best_meta.get("metric") or "valid_acc"
    mode = check_mode(mode or best_meta.get("mode") or "max")
    if results is None:
        path = folder / RESULTS_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no {RESULTS_FILE} in {str(folder)!r}: run 'ray-nasrank search --out {folder}' first")
        results = pd.read_parquet(path)
    elif not isinstance(results, pd.DataFrame):
        results = pd.read_parquet(results)
    df = check_results(results, metric)
    if baseline is None and (folder / BASELINE_FILE).is_file():
        b = pd.read_parquet(folder / BASELINE_FILE)
        if not {"n", "expected_best"} <= set(b.columns):
            raise ValueError(f"{folder / BASELINE_FILE} needs columns 'n' and 'expected_best', has {list(b.columns)}")
        baseline = b.sort_values("n")["expected_best"].to_numpy(dtype=np.float64)
    out = check_writable_dir(folder / "report")

    plots = {
        "predicted_vs_true": ("Predicted vs true rank", plot_predicted_vs_true(df, metric, mode)),
        "best_so_far": ("Best so far vs trainings", plot_best_so_far(df, metric, mode, baseline=baseline)),
        "op_distribution": ("Operations of the top architectures",
                            plot_op_distribution(df, metric, mode, top_k=top_k, space=space)),
    }
    paths = {name: Path(save_figure(fig, out / f"{name}.png")) for name, (_, fig) in plots.items()}
    summary = summarise(df, metric, mode)
    page = None
    if html:
        sign = -1.0 if mode == "max" else 1.0
        top = df.assign(_k=sign * df[metric].astype(float)).sort_values("_k", na_position="last").drop(columns="_k").head(top_k)
        arts = {k: str(v) for k, v in (artefacts or {}).items()}
        arts.setdefault("results table", str(folder / RESULTS_FILE))
        page = atomic_write_text(out / "index.html", render_html(
            title, summary, [(plots[n][0], paths[n]) for n in plots], top, arts))
    return Report(folder=out, plots=paths, html=page, summary=summary)
