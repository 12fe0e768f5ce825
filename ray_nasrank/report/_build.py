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

from ._html import frame_table, image, kv_table, render_html
from ._results import best_row, check_results, weak_columns, weak_taus
from .plots import (
    is_cell_space,
    plot_accuracy_vs_cost,
    plot_best_so_far,
    plot_decisions,
    plot_op_distribution,
    plot_predicted_vs_true,
    save_figure,
)

__all__ = ["Report", "build_report", "summarise", "RESULTS_FILE", "BEST_FILE", "BASELINE_FILE", "RANDOM_FILE",
           "FINAL_FILE"]

RESULTS_FILE = "results.parquet"
BEST_FILE = "best.json"
#: optional random-search baseline: columns ``n`` and ``expected_best``
BASELINE_FILE = "baseline.parquet"
#: optional random arm of a pipeline run (a results table without ranker scores)
RANDOM_FILE = "random.parquet"
#: optional rungs of successive halving above the search (columns arm, rung, arch, ..., test_acc)
RUNGS_FILE = "rungs.parquet"
#: optional full-fidelity retraining of each arm's winner (columns arm, arch, ..., test_acc)
FINAL_FILE = "final.parquet"


@dataclass
class Report:
    """Where a report's files are, plus its headline numbers.

    Args:
        folder: the ``report/`` folder.
        plots: path of each PNG, by plot name (``best_so_far``, ``predicted_vs_true``, ...).
        html: path of ``index.html`` (``None`` when no page was written).
        summary: the headline numbers (see :func:`summarise`).
    """

    folder: Path
    plots: dict[str, Path]
    html: Path | None
    summary: dict = field(default_factory=dict)


def summarise(df: pd.DataFrame, metric: str = "valid_acc", mode: str = "max") -> dict:
    """Headline numbers of a results table: best arch, its metrics, counts, ranker agreement.

    Args:
        df: a results table (see :func:`check_results`).
        metric: the column trainings are scored by.
        mode: ``"max"`` or ``"min"``: which direction of ``metric`` is better.

    Returns:
        ``best_arch``, ``best_<metric>``, ``evaluated``, ``failed``, ``rounds``, ``found_at_training``,
        ``best_test_acc`` (when the table has it), and Kendall's tau of the predicted scores and of
        each ``weak_*`` column against ``metric`` (``None`` with fewer than 2 finite rows).

    Raises:
        ValueError: an unknown ``mode``, a malformed table, or no finite ``metric``.
        TypeError: ``df`` is not a DataFrame.
    """
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


def _tau_reading(tau: float | None) -> str:
    if tau is None:
        return "not enough distinct values to tell"
    if abs(tau) < 0.1:
        return "about 0: no better than a random order here; it gives the ranker no information on this data"
    if tau < 0:
        return "negative: it tends to order these cells the wrong way round"
    if tau < 0.3:
        return "weakly informative"
    return "informative: it orders these cells much like their true accuracy"


def _optional_table(folder: Path, name: str) -> pd.DataFrame | None:
    path = folder / name
    return pd.read_parquet(path) if path.is_file() else None


def _space_of(folder: Path, space: SearchSpace | str | None, recorded: str | None = None) -> SearchSpace:
    """The space ``build_report`` reads the ``arch`` strings with (see its ``space``);
    ``recorded``: the family ``best.json`` names."""
    if isinstance(space, SearchSpace):
        return space
    if isinstance(space, str):
        from ray_nasrank.families import load_family

        return load_family(space).space
    if space is not None:
        raise TypeError(f"space must be a SearchSpace or a model family's name, got {type(space).__name__}")
    from ray_nasrank.pipeline import load_config
    from ray_nasrank.pipeline._steps import ARTEFACTS, report_space

    if (folder / ARTEFACTS["config"]).is_file() and (folder / ARTEFACTS["data"]).is_file():
        return report_space(load_config(folder / ARTEFACTS["config"]), folder)
    if isinstance(recorded, str):
        return _space_of(folder, recorded)
    raise ValueError(f"{str(folder)!r} holds no search's config.json and data.json, nor a best.json naming its "
                     "space: say which space the arch strings belong to (space= or --space, e.g. 'nb201' or "
                     "MODULE:FUNCTION)")


def build_report(folder: str | os.PathLike, results: pd.DataFrame | str | os.PathLike | None = None,
                 metric: str | None = None, mode: str | None = None,
                 baseline: Sequence[float] | np.ndarray | None = None, space: SearchSpace | str | None = None,
                 top_k: int = 10, html: bool = True, title: str = "ray-nasrank search report",
                 artefacts: Mapping[str, str] | None = None) -> Report:
    """Write ``report/*.png`` (and ``report/index.html``) for a results table into ``folder``.

    ``results`` is a DataFrame, a parquet path, or ``None`` for ``folder/results.parquet``.
    ``metric``/``mode`` default to what ``folder/best.json`` says, else ``valid_acc``/``max``.
    ``baseline`` defaults to ``folder/baseline.parquet`` when that exists. When the folder holds
    the pipeline's ``random.parquet`` (the random arm) and ``final.parquet`` (both arms' winners
    retrained at full fidelity), the page sets them side by side with the search.

    Args:
        folder: the search's output folder; the report goes to ``folder/report/``.
        results: the results table, a parquet path, or ``None`` for ``folder/results.parquet``.
        metric: the column trainings are scored by (default: ``best.json``'s, else ``valid_acc``).
        mode: ``"max"`` or ``"min"`` (default: ``best.json``'s, else ``"max"``).
        baseline: expected best of random search after ``n`` trainings, ``n = 1, 2, ...``
            (default: ``folder/baseline.parquet`` when it exists).
        space: the space the ``arch`` strings belong to: a :class:`SearchSpace`, a model family's
            name (``"nb201"`` or ``MODULE:FUNCTION``, :func:`ray_nasrank.families.load_family`), or
            ``None`` for the space of the search that wrote ``folder`` (its ``config.json``, else
            the family its ``best.json`` names). A
            cell space (:func:`~ray_nasrank.report.plots.is_cell_space`, e.g. NB201) gets the op
            per edge of the top cells, any other space one panel per decision.
        top_k: at most this many archs make the top set of the op or decision plot and the table.
        html: also write ``index.html``.
        title: the page's title.
        artefacts: extra files to list on the page, name -> path.

    Returns:
        The :class:`Report` (folder, plot paths, page path, headline numbers).

    Raises:
        FileNotFoundError: ``results`` is ``None`` and ``folder`` has no ``results.parquet``.
        ValueError: a malformed results or baseline table, an unknown ``mode``, a bad ``top_k``,
            an ``arch`` not in ``space``, or no ``space`` for a folder no search wrote.
        TypeError: ``space`` is not a :class:`~ray_nasrank.spaces.SearchSpace`.

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
    space = _space_of(folder, space, best_meta.get("space"))
    if baseline is None and (folder / BASELINE_FILE).is_file():
        b = pd.read_parquet(folder / BASELINE_FILE)
        if not {"n", "expected_best"} <= set(b.columns):
            raise ValueError(f"{folder / BASELINE_FILE} needs columns 'n' and 'expected_best', has {list(b.columns)}")
        baseline = b.sort_values("n")["expected_best"].to_numpy(dtype=np.float64)
    random_arm = _optional_table(folder, RANDOM_FILE)
    final = _optional_table(folder, FINAL_FILE)
    rungs = _optional_table(folder, RUNGS_FILE)
    out = check_writable_dir(folder / "report")

    # every trained cell (both arms) for the weak-label taus and the op distribution
    trained = df
    compare = None
    if random_arm is not None and metric in random_arm.columns:
        compare = {"random arm (same recipe)": random_arm.sort_values("order")[metric].to_numpy(dtype=np.float64)}
        extra = random_arm.assign(order=random_arm["order"] + int(df["order"].max()), round=-1,
                                  predicted=np.nan)
        trained = pd.concat([df, extra[[c for c in extra.columns if c in df.columns]]], ignore_index=True)
    n_trained = int(len(trained))
    plots = {
        "best_so_far": ("Best so far", "Best validation accuracy after n trainings from scratch (search fidelity)"
                        + (", NASRank against the random arm" if compare else "") + "; grey dots: each training.",
                        plot_best_so_far(df, metric, mode, baseline=baseline, compare=compare)),
        "predicted_vs_true": ("Predicted vs true rank",
                              "Each NASRank finalist's rank by the ranker's score when it was proposed against its "
                              "rank by the trained accuracy; on the dashed line the ranker was right.",
                              plot_predicted_vs_true(df, metric, mode)),
    }
    if is_cell_space(space):
        plots["op_distribution"] = (
            "Operations of the top architectures",
            f"Left: how often each op sits on each edge among the best quarter of the {n_trained} trained cells; "
            "right: op shares of that top set against all trained cells.",
            plot_op_distribution(trained, metric, mode, top_k=top_k, space=space))
    else:
        plots["decisions"] = (
            "Decisions of the top architectures",
            f"One panel per decision of the space: bars, each value's share among the best quarter of the "
            f"{n_trained} trained architectures against all of them; dots, a numeric value against the accuracy.",
            plot_decisions(trained, space, metric, mode, top_k=top_k))
    panel = "op_distribution" if "op_distribution" in plots else "decisions"
    caps = _cap_plots(df, random_arm, best_meta)
    plots.update(caps)
    paths = {name: Path(save_figure(fig, out / f"{name}.png")) for name, (_, _, fig) in plots.items()}
    summary = summarise(df, metric, mode)
    taus = weak_taus(trained, metric)
    summary["weak_label_tau"] = taus
    page = None
    if html:
        sections = [("Summary", "", kv_table(_headline(summary, best_meta, metric)))]
        if final is not None:
            cols = {"arm": "arm", "arch": "architecture", "search_valid_acc": "search valid %",
                    metric: "full-fidelity valid %", "test_acc": "full-fidelity test %",
                    "found_at_training": "found at training"}
            tab = final[[c for c in cols if c in final.columns]].rename(columns=cols)
            retrained = bool(final["retrained"].all()) if "retrained" in final.columns else True
            sections.append(("At full fidelity: the search against random",
                             ("Each arm's winner of successive halving, trained at the full fidelity"
                              if retrained else "Each arm's best at the search fidelity, which is the full one here "
                              "(no retraining: it would repeat the search training)")
                             + "; the test accuracy of this table is the run's result.", frame_table(tab)))
        if rungs is not None and len(rungs):
            cols = {"arm": "arm", "rung": "rung", "arch": "architecture", "image_size": "image side",
                    "train_images": "training images", "epochs": "epochs", metric: "valid %", "test_acc": "test %"}
            tab = rungs[[c for c in cols if c in rungs.columns]].rename(columns=cols)
            sections.append(("Successive halving",
                             "Every training above the first rung (the search): each rung trains the best of each "
                             "arm's rung below at a higher fidelity, the top one at the full fidelity.",
                             frame_table(tab)))
        for name in ("best_so_far", "predicted_vs_true"):
            sections.append((plots[name][0], plots[name][1], image(paths[name], plots[name][0])))
        if taus:
            rows = pd.DataFrame({"weak label": [c.removeprefix("weak_") for c in taus],
                                 "Kendall tau": [taus[c] for c in taus],
                                 "reading": [_tau_reading(taus[c]) for c in taus]})
            sections.append(("Weak labels against the truth",
                             f"Kendall's tau of each weak label against the validation accuracy of the {n_trained} "
                             "trained cells: 1 = the same order, 0 = unrelated (the label tells the ranker nothing "
                             "here), -1 = reversed.", frame_table(rows)))
        sections.append((plots[panel][0], plots[panel][1], image(paths[panel], plots[panel][0])))
        for name in caps:
            sections.append((plots[name][0], plots[name][1], image(paths[name], plots[name][0])))
        sign = -1.0 if mode == "max" else 1.0
        top = df.assign(_k=sign * df[metric].astype(float)).sort_values("_k", na_position="last").head(top_k)
        keep = [c for c in ("arch", "round", "order", "predicted", metric, "test_acc") if c in top.columns]
        top = top[keep].assign(**({"round": top["round"] + 1} if "round" in keep else {}))
        top = top.rename(columns={"arch": "architecture", "order": "trained as #", "predicted": "ranker score",
                                  metric: f"{metric} %" if metric.endswith("_acc") else metric,
                                  "test_acc": "test_acc %"})
        sections.append(("Top architectures of the search",
                         f"The {len(top)} best NASRank finalists by {metric} at the search fidelity "
                         "(order: when it was trained; predicted: the ranker's score).", frame_table(top)))
        arts = {k: str(v) for k, v in (artefacts or {}).items()}
        arts.setdefault("results table", str(folder / RESULTS_FILE))
        sections.append(("Artefacts", "Files of this run.", kv_table(arts)))
        page = atomic_write_text(out / "index.html", render_html(title, sections))
    return Report(folder=out, plots=paths, html=page, summary=summary)


def _cap_plots(df: pd.DataFrame, random_arm: pd.DataFrame | None, best_meta: dict) -> dict:
    """``{"cost_<quantity>": (title, caption, figure)}`` for each quantity a run capped, from the
    capped quantities ``best.json`` records for every training (empty without caps)."""
    rec = best_meta.get("constraints")
    if not isinstance(rec, dict) or not rec.get("caps") or not rec.get("finalists"):
        return {}
    from ray_nasrank.pipeline._caps import QUANTITIES

    arms = [df.assign(arm="nasrank")] + ([] if random_arm is None else [random_arm.assign(arm="random")])
    trained = pd.concat([a[[c for c in ("arch", "arm", "valid_acc", "test_acc") if c in a.columns]] for a in arms],
                        ignore_index=True)
    values = pd.DataFrame(rec["finalists"]).drop(columns="meets_caps", errors="ignore").drop_duplicates(["arm", "arch"])
    trained = trained.merge(values, on=["arm", "arch"], how="left")
    winner = (rec.get("winners") or {}).get("nasrank", {}).get("arch")
    method = (rec.get("latency_method") or {}).get("description")
    at = (rec.get("measured_at") or {}).get("input_shape")
    out = {}
    for name, cap in rec["caps"].items():
        q = QUANTITIES[name]
        label = {"params": "trainable parameters", "flops": "FLOPs (multiply-accumulates of one image)",
                 "latency_ms": "latency (ms)"}[name]
        pool = rec.get("pool") or {}
        caption = (f"Search-fidelity validation (left) and test (right) accuracy of every trained candidate against "
                   f"its {label}, measured on the model at the full-fidelity input {at}"
                   + (f" ({method})" if name == "latency_ms" and method else "")
                   + f"; black: the Pareto front of the trainings; red: the cap {q.flag} {cap:g} "
                   f"({pool.get('meet_caps', '?')} of the pool's {pool.get('candidates', '?')} candidates meet every "
                   "cap, and only those were trained); star: the search's winner.")
        out[f"cost_{name}"] = (f"Accuracy against {label}", caption,
                               plot_accuracy_vs_cost(trained, name, cap, label=label, winner=winner))
    return out


def _headline(summary: dict, best_meta: dict, metric: str) -> dict:
    """The summary a person reads first: rounded, named in words."""
    out: dict = {"best architecture": best_meta.get("arch", summary["best_arch"])}
    if best_meta.get("notes"):
        out["notes"] = " / ".join(best_meta["notes"])
    fid = best_meta.get("fidelity") or {}
    for name in ("search", "full"):
        f = fid.get(name)
        if isinstance(f, dict) and "steps" in f:
            out[f"{name} fidelity (actually trained)"] = (
                f"{f['image_size']}x{f['image_size']} images, {f['train_images']:,} of them, {f['epochs']} epochs "
                f"({f['steps']:,} steps of {f['batch_size']})")
    if best_meta.get("time_budget_s"):
        out["time budget (s)"] = best_meta["time_budget_s"]
    if best_meta.get("constraints"):
        from ray_nasrank.pipeline._caps import caps_line

        out["caps"] = caps_line(best_meta["constraints"]).removeprefix("caps: ")
    if best_meta.get("test_acc") is not None:
        out["its test accuracy (full fidelity, %)"] = best_meta["test_acc"]
        out["its validation accuracy (full fidelity, %)"] = best_meta.get(metric)
        out[f"its {metric} at the search fidelity"] = best_meta.get("search_valid_acc")
    else:
        out[f"its {metric}"] = summary[f"best_{metric}"]
        if "best_test_acc" in summary:
            out["its test_acc"] = summary["best_test_acc"]
    rnd = best_meta.get("random_baseline")
    if rnd:
        out["random arm's best, retrained: test accuracy (%)"] = rnd.get("test_acc")
    out["trained from scratch by the search"] = summary["evaluated"]
    if summary["failed"]:
        out["of which failed"] = summary["failed"]
    out["rounds"] = summary["rounds"]
    out["found at training"] = summary["found_at_training"]
    out["ranker's Kendall tau, predicted vs true (1 = perfect, 0 = none)"] = summary["kendall_tau_predicted_vs_true"]
    secs = best_meta.get("step_seconds")
    if secs:
        out["step times (s)"] = ", ".join(f"{k} {float(v):.0f}" for k, v in secs.items())
    return out
