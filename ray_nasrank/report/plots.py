"""The report's three plots as matplotlib figures (no pyplot global state: safe in threads,
scripts and notebooks), each saved as a PNG.

- :func:`plot_predicted_vs_true`: rank by the ranker's score against rank by the true metric,
  with Kendall's tau (how far to trust the ranker on this run);
- :func:`plot_best_so_far`: best true metric after ``n`` trainings, against a random-search
  baseline when one is known;
- :func:`plot_accuracy_vs_cost` (a run with caps): accuracy of the trained candidates against a
  capped quantity (parameters, FLOPs, latency), with the Pareto front and the cap;
- :func:`plot_op_distribution` (a cell space, :func:`is_cell_space`, e.g. NB201): how often each
  op sits on each edge among the top archs, compared with all evaluated archs;
  :func:`plot_decisions` (any space): the values of each decision among the top archs against
  all evaluated archs.

>>> import pandas as pd
>>> df = pd.DataFrame({"arch": ["x"] * 3, "order": [1, 2, 3], "round": [0, 0, 1],
...                    "predicted": [0.1, 0.5, 0.9], "valid_acc": [70.0, 80.0, 75.0]})
>>> fig = plot_best_so_far(df, "valid_acc")
>>> fig.axes[0].get_xlabel()
'trainings from scratch'
"""

from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy.stats import rankdata

from ray_nasrank._checks import check_mode
from ray_nasrank.metrics import best_so_far, kendall_tau
from ray_nasrank.spaces import SearchSpace

from ._results import check_results

__all__ = ["plot_predicted_vs_true", "plot_best_so_far", "plot_op_distribution", "plot_decisions", "save_figure",
           "is_cell_space", "plot_accuracy_vs_cost"]


def is_cell_space(space: SearchSpace) -> bool:
    """Whether ``space`` is a cell: at least two decisions, each a categorical choice over the
    same operations (one op per edge, as in NB201), so an op-per-edge picture reads.

    >>> from ray_nasrank.spaces import NB201Space, SearchSpace
    >>> is_cell_space(NB201Space()), is_cell_space(SearchSpace({"width": [8, 16], "act": ["relu", "gelu"]}))
    (True, False)
    """
    decisions = space.decisions
    if len(decisions) < 2 or not all(d.categorical and d.condition is None for d in decisions):
        return False
    first = set(map(str, decisions[0].choices))
    return all(set(map(str, d.choices)) == first for d in decisions[1:])


def _figure(width: float = 6.0, height: float = 4.5) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike) -> str:
    """Write ``fig`` as PNG atomically (a reader never sees half a file).

    Args:
        fig: the matplotlib figure.
        path: where the PNG goes.

    Returns:
        ``path`` as a string.
    """
    import io

    from ray_nasrank._io import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())
    return str(path)


def plot_predicted_vs_true(df: pd.DataFrame, metric: str = "valid_acc", mode: str = "max") -> Figure:
    """Scatter of predicted rank (x) against true rank (y), 1 = best, coloured by round.

    Args:
        df: a results table (see :func:`check_results`).
        metric: the true metric.
        mode: ``"max"`` or ``"min"``: which direction is better.

    Returns:
        The matplotlib figure.

    Raises:
        ValueError: a malformed table or an unknown ``mode``.
    """
    check_mode(mode)
    df = check_results(df, metric)
    pred = df["predicted"].to_numpy(dtype=np.float64)
    true = df[metric].to_numpy(dtype=np.float64)
    ok = np.isfinite(pred) & np.isfinite(true)
    fig = _figure()
    ax = fig.add_subplot()
    ax.set_xlabel("predicted rank (1 = ranked best)")
    ax.set_ylabel(f"true rank by {metric} (1 = best)")
    if ok.sum() < 2:
        ax.set_title("predicted vs true rank: fewer than 2 ranked results")
        ax.text(0.5, 0.5, f"{int(ok.sum())} architecture(s) with both a predicted score and a {metric}",
                ha="center", va="center", transform=ax.transAxes)
        return fig
    sign = 1.0 if mode == "max" else -1.0
    pr = rankdata(-pred[ok], method="average")          # higher score = better = rank 1
    tr = rankdata(-sign * true[ok], method="average")
    tau = kendall_tau(true[ok], pred[ok], mode=mode)
    rounds = df["round"].to_numpy()[ok]
    # one marker colour per round with a legend entry: rounds are a few discrete values
    for i, r in enumerate(np.unique(rounds)):
        sel = rounds == r
        ax.scatter(pr[sel], tr[sel], s=40, color=f"C{i % 10}", edgecolors="k", linewidths=0.4,
                   label=f"round {int(r) + 1}")
    n = int(ok.sum())
    ax.plot([1, n], [1, n], color="grey", lw=0.8, ls="--", label="perfect ranking")
    ax.invert_xaxis()
    ax.invert_yaxis()
    ax.legend(loc="lower right")
    ax.set_title(f"predicted vs true rank of {n} trained archs (Kendall tau = {tau:.2f})")
    return fig


def plot_best_so_far(df: pd.DataFrame, metric: str = "valid_acc", mode: str = "max",
                     baseline: Sequence[float] | np.ndarray | None = None,
                     baseline_label: str = "random search (expected)",
                     compare: Mapping[str, Sequence[float]] | None = None) -> Figure:
    """Best ``metric`` after ``n`` trainings; ``baseline[n-1]`` is the baseline's best after ``n``;
    ``compare`` maps a label to another run's per-training values in order (e.g. the random
    arm), drawn as its own best-so-far curve.

    Args:
        df: a results table (see :func:`check_results`).
        metric: the metric whose best is drawn.
        mode: ``"max"`` or ``"min"``: which direction is better.
        baseline: expected best of the baseline after ``1, 2, ...`` trainings (``None``: not drawn).
        baseline_label: the baseline's legend entry.
        compare: other runs' per-training values in order, by legend label.

    Returns:
        The matplotlib figure.

    Raises:
        ValueError: a malformed table, an unknown ``mode`` or an empty ``baseline``.
    """
    check_mode(mode)
    df = check_results(df, metric)
    values = df[metric].to_numpy(dtype=np.float64)
    curve = best_so_far(values, mode)
    n = np.arange(1, len(values) + 1)
    fig = _figure()
    ax = fig.add_subplot()
    ax.step(n, curve, where="post", lw=2, label="this search" if not compare else "NASRank search")
    ok = np.isfinite(values)
    ax.scatter(n[ok], values[ok], s=14, color="grey", alpha=0.6, label="each training", zorder=1)
    if baseline is not None:
        b = np.asarray(baseline, dtype=np.float64).ravel()
        if b.size == 0:
            raise ValueError("baseline is empty")
        m = min(b.size, len(values))
        ax.plot(np.arange(1, m + 1), b[:m], ls="--", color="tab:red", lw=1.5, label=baseline_label)
    for i, (label, vals) in enumerate((compare or {}).items()):
        v = np.asarray(vals, dtype=np.float64).ravel()
        if v.size:
            ax.step(np.arange(1, v.size + 1), best_so_far(v, mode), where="post", lw=2, ls="-.",
                    color=("tab:orange", "tab:green", "tab:purple")[i % 3], label=label)
    rounds = df["round"].to_numpy()
    for pos in np.flatnonzero(np.diff(rounds) != 0):
        ax.axvline(pos + 1.5, color="lightgrey", lw=0.8, zorder=0)
    ax.set_xlabel("trainings from scratch")
    ax.set_ylabel(f"best {metric} so far")
    ax.set_title(f"best-so-far {metric} ({'higher' if mode == 'max' else 'lower'} is better)")
    ax.legend(loc="lower right" if mode == "max" else "upper right")
    return fig


def plot_accuracy_vs_cost(df: pd.DataFrame, quantity: str, cap: float | None = None,
                          metrics: Sequence[str] = ("valid_acc", "test_acc"), label: str | None = None,
                          winner: str | None = None) -> Figure:
    """Accuracy of trained candidates against a cost (one panel per metric in ``metrics``): each
    arm's trainings as dots, their Pareto front (no other training is both as cheap or cheaper
    and more accurate) as a step line, ``cap`` as a vertical line and ``winner`` as a star.

    Args:
        df: one row per training: ``arch``, ``quantity``, the ``metrics`` and optionally ``arm``.
        quantity: the cost column (lower is better), e.g. ``params`` or ``latency_ms``.
        cap: the limit drawn (``None``: none).
        metrics: accuracy columns (higher is better), one panel each; missing ones are skipped.
        label: the x axis label (default: ``quantity``).
        winner: the arch marked as the search's winner.

    Returns:
        The matplotlib figure.

    Raises:
        ValueError: ``df`` lacks ``quantity`` or every one of ``metrics``.

    >>> df = pd.DataFrame({"arch": list("abcd"), "params": [10.0, 20.0, 30.0, 25.0],
    ...                    "valid_acc": [70.0, 80.0, 85.0, 75.0], "test_acc": [69.0, 79.0, 86.0, 74.0]})
    >>> fig = plot_accuracy_vs_cost(df, "params", cap=28.0, winner="b")
    >>> len(fig.axes), fig.axes[0].get_xlabel()
    (2, 'params')
    """
    from ray_nasrank.search import non_dominated

    metrics = [m for m in metrics if m in df.columns]
    if quantity not in df.columns or not metrics:
        raise ValueError(f"plot_accuracy_vs_cost needs columns {quantity!r} and one of {list(metrics)}, the table "
                         f"has {list(df.columns)}")
    fig = _figure(5.0 * len(metrics), 4.2)
    arms = df["arm"].astype(str).to_numpy() if "arm" in df.columns else np.full(len(df), "trained")
    x_all = df[quantity].to_numpy(dtype=np.float64)
    for k, metric in enumerate(metrics):
        ax = fig.add_subplot(1, len(metrics), k + 1)
        y_all = df[metric].to_numpy(dtype=np.float64)
        ok = np.isfinite(x_all) & np.isfinite(y_all)
        for i, arm in enumerate(dict.fromkeys(arms)):
            sel = ok & (arms == arm)
            ax.scatter(x_all[sel], y_all[sel], s=36, color=f"C{i % 10}", marker="os^D"[i % 4], edgecolors="k",
                       linewidths=0.4, alpha=0.8, label=f"{arm} ({int(sel.sum())})", zorder=2)
        if ok.any():
            x, y = x_all[ok], y_all[ok]
            front = non_dominated(np.column_stack([y, -x]))
            order = np.argsort(x[front])
            fx, fy = x[front][order], y[front][order]
            # the front holds until the costliest training: a single point still shows as a line
            ax.step(np.append(fx, x.max()), np.append(fy, fy[-1]), where="post", color="k", lw=1.2,
                    label="Pareto front", zorder=1)
            ax.scatter(fx, fy, s=90, facecolors="none", edgecolors="k", linewidths=1.0, zorder=1)
        if winner is not None:
            sel = ok & (df["arch"].astype(str).to_numpy() == winner)
            if sel.any():
                ax.scatter(x_all[sel][:1], y_all[sel][:1], marker="*", s=220, color="gold", edgecolors="k",
                           label="winner", zorder=3)
        if cap is not None:
            ax.axvline(cap, color="tab:red", ls="--", lw=1.5, label=f"cap {cap:g}")
        ax.set_xlabel(label or quantity)
        ax.set_ylabel(f"{metric} %")
        ax.set_title(f"{metric} against {label or quantity}")
        ax.legend(loc="lower right", fontsize="small")
    return fig


def _op_frequencies(space: SearchSpace, archs: Sequence) -> tuple[list[str], list[str], np.ndarray]:
    names = [d.name for d in space.decisions]
    choices: list[str] = []
    for d in space.decisions:
        for c in d.choices:
            if str(c) not in choices:
                choices.append(str(c))
    freq = np.full((len(names), len(choices)), np.nan)
    for i, d in enumerate(space.decisions):
        for c in d.choices:
            freq[i, choices.index(str(c))] = 0.0
    for a in archs:
        for i, c in enumerate(a):
            freq[i, choices.index(str(c))] += 1.0
    if len(archs):
        freq /= len(archs)
    return names, choices, freq


def _top_set(df: pd.DataFrame, metric: str, mode: str, top_k: int, space: SearchSpace):
    """``(space, archs, values, ok_idx, k)``: every row's arch, its metric, the rows with a finite
    metric best first, and the size of the top set: the best quarter (at least 1, at most
    ``top_k``), so it never silently equals every arch."""
    check_mode(mode)
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
    df = check_results(df, metric)
    if not isinstance(space, SearchSpace):
        raise TypeError(f"space must be a SearchSpace, got {type(space).__name__}")
    values = df[metric].to_numpy(dtype=np.float64)
    ok = np.isfinite(values)
    archs_all = []
    for i, s in enumerate(df["arch"].tolist()):
        try:
            archs_all.append(space.from_string(s))
        except ValueError as e:
            raise ValueError(f"results row {i}: arch {s!r} is not in {space!r}: {e}") from None
    order = np.argsort(-(values if mode == "max" else -values)[ok], kind="stable")
    ok_idx = np.flatnonzero(ok)[order]
    return space, archs_all, values, ok_idx, min(int(top_k), max(1, len(ok_idx) // 4))


def plot_decisions(df: pd.DataFrame, space: SearchSpace, metric: str = "valid_acc", mode: str = "max",
                   top_k: int = 10) -> Figure:
    """One panel per decision of ``space`` (any space, e.g. your own model family): for a
    categorical decision the share of each value among the top archs against all evaluated
    archs (bars); for a numeric one each arch's value against its ``metric``, the top ones marked.

    The top set is the best quarter of the evaluated archs (at least 1, at most ``top_k``).

    Args:
        df: a results table (see :func:`check_results`).
        space: the space the ``arch`` strings belong to.
        metric: the metric the top set is chosen by.
        mode: ``"max"`` or ``"min"``: which direction is better.
        top_k: the most archs in the top set.

    Returns:
        The figure, one axis per decision (four to a row).

    Raises:
        ValueError: a malformed table, ``top_k`` below 1, an unknown ``mode``, or a row whose
            ``arch`` does not parse in ``space`` (named in the message).
        TypeError: ``space`` is no :class:`~ray_nasrank.spaces.SearchSpace`.
    """
    from ray_nasrank.spaces import INACTIVE

    space, archs_all, values, ok_idx, k = _top_set(df, metric, mode, top_k, space)
    top = set(int(i) for i in ok_idx[:k])
    n = space.num_decisions
    cols = min(4, n)
    rows = -(-n // cols)
    fig = _figure(3.2 * cols, 2.8 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for j, d in enumerate(space.decisions):
        ax = axes[j]
        col = [a[j] for a in archs_all]
        if d.categorical:
            labels = [str(c) for c in d.choices]
            share = {}
            for name, idx in (("top", sorted(top)), ("all", range(len(col)))):
                vals = [str(col[i]) for i in idx if col[i] is not INACTIVE]
                share[name] = np.array([vals.count(c) / max(1, len(vals)) for c in labels])
            x = np.arange(len(labels))
            ax.bar(x - 0.2, share["top"], width=0.4, label=f"top {k}")
            ax.bar(x + 0.2, share["all"], width=0.4, label=f"all {len(col)}", color="lightgrey")
            ax.set_xticks(x, labels, rotation=30, ha="right")
            ax.set_ylim(0, 1)
            ax.set_ylabel("share of archs")
        else:
            pts = [(i, float(col[i])) for i in range(len(col)) if col[i] is not INACTIVE and np.isfinite(values[i])]
            xs = np.array([v for _, v in pts])
            ys = np.array([values[i] for i, _ in pts])
            mark = np.array([i in top for i, _ in pts], dtype=bool)
            ax.scatter(xs[~mark], ys[~mark], s=14, color="grey", label="others")
            ax.scatter(xs[mark], ys[mark], s=22, label=f"top {k}")
            if getattr(d.domain, "log", False):
                ax.set_xscale("log")
            ax.set_ylabel(metric)
        ax.set_title(d.name)
        if j == 0:
            ax.legend(fontsize=7)
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig


def plot_op_distribution(df: pd.DataFrame, metric: str = "valid_acc", mode: str = "max", top_k: int = 10, *,
                         space: SearchSpace) -> Figure:
    """Per-edge op frequency among the top archs by ``metric`` (heatmap), and overall op shares of
    the top archs against all evaluated archs (bars).

    The top set is the best quarter of the evaluated archs (at least 1, at most ``top_k``), so
    it never silently equals every arch: with 8 evaluated it is the top 2.

    Args:
        df: a results table (see :func:`check_results`).
        metric: the metric the top set is chosen by.
        mode: ``"max"`` or ``"min"``: which direction is better.
        top_k: the most archs in the top set.
        space: the space the ``arch`` strings belong to (a cell space, :func:`is_cell_space`).

    Returns:
        The matplotlib figure.

    Raises:
        ValueError: ``top_k`` is not a positive integer, a malformed table, an unknown ``mode``,
            or an ``arch`` that is not in ``space`` (the message names the row).
        TypeError: ``space`` is not a :class:`~ray_nasrank.spaces.SearchSpace`.
    """
    space, archs_all, values, ok_idx, k = _top_set(df, metric, mode, top_k, space)
    top = [archs_all[i] for i in ok_idx[:k]]
    names, choices, freq_top = _op_frequencies(space, top)
    _, _, freq_all = _op_frequencies(space, archs_all)

    fig = _figure(10.0, 4.5)
    ax_h, ax_b = fig.subplots(1, 2, width_ratios=[1.3, 1.0])
    im = ax_h.imshow(np.nan_to_num(freq_top, nan=0.0), cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    ax_h.set_xticks(range(len(choices)), choices, rotation=30, ha="right")
    ax_h.set_yticks(range(len(names)), names)
    for i in range(len(names)):
        for j in range(len(choices)):
            if np.isfinite(freq_top[i, j]) and freq_top[i, j] > 0:
                ax_h.text(j, i, f"{freq_top[i, j]:.0%}", ha="center", va="center", fontsize=7,
                          color="white" if freq_top[i, j] > 0.6 else "black")
    fig.colorbar(im, ax=ax_h, label="share of top archs")
    ax_h.set_title(f"op per edge, top {k} of {len(ok_idx)} by {metric}")
    share_top = np.nanmean(freq_top, axis=0) if k else np.zeros(len(choices))
    share_all = np.nanmean(freq_all, axis=0)
    x = np.arange(len(choices))
    ax_b.bar(x - 0.2, share_top, width=0.4, label=f"top {k}")
    ax_b.bar(x + 0.2, share_all, width=0.4, label=f"all {len(archs_all)} evaluated", color="lightgrey")
    ax_b.set_xticks(x, choices, rotation=30, ha="right")
    ax_b.set_ylabel("share of edges")
    ax_b.set_title("op distribution")
    ax_b.legend()
    return fig
