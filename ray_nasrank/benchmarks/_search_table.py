"""Running strategies against a tabular benchmark and summarizing the best-so-far curves.

Each "training" is a table lookup, so a search of 100 queries takes well under a second for the
simple strategies; the searcher's own wall-clock cost per trial is measured on the side.

>>> import pandas as pd
>>> from ray_nasrank.tabular import TabularBenchmark
>>> from ray_nasrank.search import make_strategy
>>> df = pd.DataFrame({"k": [3, 5, 3, 5], "w": [8, 8, 16, 16], "acc": [0.5, 0.6, 0.7, 0.9]})
>>> bench = TabularBenchmark.from_frame(df, space="columns", arch_cols=["k", "w"], target="acc")
>>> run = run_on_table(make_strategy("random", bench.space, seed=0, candidates=bench.archs), bench, 4)
>>> run["best_so_far"][-1]
0.9
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

from ray_nasrank._checks import check_int
from ray_nasrank.metrics import best_so_far
from ray_nasrank.search import Strategy

#: the budgets the benchmark reports the mean best-so-far at
DEFAULT_CHECKPOINTS = (10, 20, 50, 100)


def _curve(values: Sequence[float | None], mode: str) -> list[float | None]:
    """:func:`ray_nasrank.metrics.best_so_far` as JSON: ``None`` until the first success."""
    return [None if np.isnan(b) else float(b) for b in best_so_far(values, mode)]


def queries_to_reach(values: Sequence[float | None], target: float, mode: str = "max",
                     tol: float = 1e-9) -> int | None:
    """1-based number of queries until a value at least as good as ``target``; None if never."""
    for i, v in enumerate(values):
        if v is None:
            continue
        if (v >= target - tol) if mode == "max" else (v <= target + tol):
            return i + 1
    return None


def run_on_table(strategy: Strategy, bench: Any, budget: int, batch: int = 1) -> dict[str, Any]:
    """Ask/tell ``strategy`` on ``bench`` (a ``TabularBenchmark``) for ``budget`` queries.

    Returns the values in evaluation order, the best-so-far curve, the queries needed to reach
    the table's optimum and the searcher's own time per trial (ask + tell, lookups excluded).
    """
    budget = check_int("budget", budget, low=1)
    batch = check_int("batch", batch, low=1)
    values: list[float | None] = []
    archs = []
    overhead = 0.0
    while len(values) < budget:
        t0 = time.perf_counter()
        asked = strategy.ask(min(batch, budget - len(values)))
        overhead += time.perf_counter() - t0
        if not asked:
            break  # pool exhausted
        for a in asked:
            v = bench.evaluate(a)
            t0 = time.perf_counter()
            strategy.tell(a, v)
            overhead += time.perf_counter() - t0
            values.append(v)
            archs.append(a)
    return {
        "values": values,
        "archs": [bench.space.to_string(a) for a in archs],
        "best_so_far": _curve(values, bench.mode),
        "queries_to_optimum": queries_to_reach(values, bench.optimum, bench.mode),
        "overhead_s_per_trial": overhead / max(1, len(values)),
    }


def summarise_curves(curves: Sequence[Sequence[float | None]], optimum: float, budget: int, mode: str = "max",
                     checkpoints: Sequence[int] = DEFAULT_CHECKPOINTS) -> dict[str, Any]:
    """Per-strategy summary of several seeds' value sequences (in evaluation order).

    ``best_at[k]``: mean over seeds of the best value among the first ``k`` queries (a run that
    stopped early keeps its last best); ``median_queries_to_optimum``: median of the queries
    needed to reach ``optimum``, a miss counting as ``budget + 1``; ``hit_rate``: share of
    seeds that reached it.
    """
    if not curves:
        raise ValueError("summarise_curves needs at least one run")
    best_at: dict[str, float | None] = {}
    for k in sorted({c for c in checkpoints if c <= budget} | {budget}):
        vals = []
        for values in curves:
            bsf = _curve(list(values)[:k], mode)
            last = next((b for b in reversed(bsf) if b is not None), None)
            if last is not None:
                vals.append(last)
        best_at[str(k)] = float(np.mean(vals)) if vals else None
    hits = [queries_to_reach(v, optimum, mode) for v in curves]
    counted = [h if h is not None else budget + 1 for h in hits]
    return {
        "best_at": best_at,
        "median_queries_to_optimum": float(np.median(counted)),
        "hit_rate": float(np.mean([h is not None for h in hits])),
    }
