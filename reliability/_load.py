"""Load: many trials through :class:`NASRankSearcher` at concurrency 8 on the tabular trainable.

Two drivers measure the same searcher:

- ``via="driver"`` plays Tune's part in-process (``suggest`` until 8 trials are live, complete a
  random live one with the table's value, repeat): the searcher's own overhead per
  ``suggest``/``on_trial_complete`` with nothing else on the clock;
- ``via="tune"`` runs the real ``Tuner`` with ``make_table_trainable`` (needs a running Ray).

Both check the budget, the iso-uniqueness of the archs, and that the driver's resident memory
stays flat (growth from the 20 % mark to the end below ``max_growth_mb``).

>>> from reliability import searcher_load
>>> searcher_load(trials=40, strategies=("random",)).failures
0
"""

from __future__ import annotations

import gc
import tempfile
import time
from typing import Sequence

import numpy as np

from ._core import CaseLog, ScenarioResult, rss_bytes


def _drive(searcher, bench, trials: int, concurrency: int, seed: int) -> dict:
    """Tune's loop without Tune: returns timings (s) per call and RSS samples (MB)."""
    rng = np.random.default_rng(seed)
    searcher.set_search_properties(bench.target_name, bench.mode, bench.space.to_tune(), num_samples=trials)
    searcher.set_max_concurrency(concurrency)
    searcher.wait_until_ready()
    live: list[str] = []
    suggest_t: list[float] = []
    complete_t: list[float] = []
    rss: list[tuple[int, float]] = []
    started = done = 0
    while done < trials:
        while started < trials and len(live) < concurrency:
            tid = f"t{started:05d}"
            t0 = time.perf_counter()
            cfg = searcher.suggest(tid)
            suggest_t.append(time.perf_counter() - t0)
            if cfg is None:
                break
            if isinstance(cfg, str):  # Searcher.FINISHED
                raise RuntimeError(f"searcher finished after {started} of {trials} trials")
            live.append(tid)
            started += 1
        tid = live.pop(int(rng.integers(len(live))))
        arch = searcher.arch_of(tid)
        result = {bench.target_name: bench.lookup(arch), "arch": bench.space.to_string(arch)}
        t0 = time.perf_counter()
        searcher.on_trial_complete(trial_id=tid, result=result)
        complete_t.append(time.perf_counter() - t0)
        done += 1
        if done % max(1, trials // 20) == 0 or done == trials:
            gc.collect()
            rss.append((done, rss_bytes() / 2**20))
    return {"suggest": suggest_t, "complete": complete_t, "rss": rss}


def _stats_ms(xs: Sequence[float]) -> dict:
    a = np.asarray(xs, dtype=np.float64) * 1e3
    return {"mean_ms": round(float(a.mean()), 4), "p50_ms": round(float(np.median(a)), 4),
            "p99_ms": round(float(np.percentile(a, 99)), 4), "max_ms": round(float(a.max()), 3), "calls": int(a.size)}


def searcher_load(trials: int = 1000, concurrency: int = 8, strategies: Sequence[str] = ("random", "rea"),
                  via: str = "driver", seed: int = 0, max_growth_mb: float = 50.0,
                  storage: str | None = None) -> ScenarioResult:
    """``trials`` trials per strategy through the searcher at ``concurrency``; overhead and memory."""
    from ray_nasrank.integrations.tune import NASRankSearcher

    from ._interrupt import reliability_bench

    if via not in ("driver", "tune"):
        raise ValueError(f"via must be 'driver' or 'tune', got {via!r}")
    log = CaseLog(f"load_{via}")
    bench = reliability_bench(use_shared=False)
    per: dict = {}
    for name in strategies:
        with log.case(f"{name}: {trials} trials at concurrency {concurrency} ({via})", timeout_s=3000) as c:
            searcher = NASRankSearcher(bench.space, strategy=name, metric=bench.target_name, mode=bench.mode, seed=seed,
                                       strategy_kwargs={"candidates": bench.archs})
            t0 = time.perf_counter()
            if via == "driver":
                m = _drive(searcher, bench, trials, concurrency, seed)
                completed = searcher.completed
                info = {"suggest": _stats_ms(m["suggest"]), "complete": _stats_ms(m["complete"])}
                rss = m["rss"]
            else:
                completed, info, rss = _tune_run(searcher, bench, trials, concurrency, storage)
            wall = time.perf_counter() - t0
            archs = [x["arch"] for x in completed]
            c.check(len(archs) == trials, f"{len(archs)} trials completed for {trials}")
            keys = {bench.space.iso_key(a) for a in archs}
            c.check(len(keys) == len(archs), f"{len(archs) - len(keys)} iso-duplicate trial(s)")
            c.check(all(x["value"] == bench.lookup(x["arch"]) for x in completed), "a result was recorded wrongly")
            start = next((mb for n, mb in rss if n >= 0.2 * trials), rss[0][1]) if rss else 0.0
            growth = (rss[-1][1] - start) if rss else 0.0
            c.check(growth < max_growth_mb, f"RSS grew {growth:.1f} MB from 20% to the end (limit {max_growth_mb} MB)")
            per[name] = {**info, "wall_s": round(wall, 2), "searcher_overhead_s": round(searcher.overhead_s, 3),
                         "overhead_per_trial_ms": round(1e3 * searcher.overhead_s / max(1, trials), 4),
                         "rss_mb": [[n, round(mb, 1)] for n, mb in rss], "rss_growth_mb": round(growth, 1)}
    log.details.update({"trials": trials, "concurrency": concurrency, "via": via, "per_strategy": per,
                        "max_growth_mb": max_growth_mb})
    return log.result()


def _tune_run(searcher, bench, trials: int, concurrency: int, storage: str | None):
    import warnings

    from ray import tune

    from ray_nasrank.integrations.tune import make_table_trainable

    rss: list[tuple[int, float]] = []
    step = max(1, trials // 20)

    class Memory(tune.Callback):
        def __init__(self) -> None:
            self.done = 0

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.done += 1
            if self.done % step == 0:
                rss.append((self.done, rss_bytes() / 2**20))

    with tempfile.TemporaryDirectory(prefix="rn_rel_load_") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = tune.Tuner(
            make_table_trainable(bench), param_space=bench.space.to_tune(),
            tune_config=tune.TuneConfig(search_alg=searcher, num_samples=trials,
                                        max_concurrent_trials=concurrency, reuse_actors=True),
            run_config=tune.RunConfig(name="load", storage_path=storage or tmp, verbose=0, callbacks=[Memory()]),
        ).fit()
        n_results = len(results)
    info = {"tune_trials": n_results,
            "searcher_calls_ms_per_trial": round(1e3 * searcher.overhead_s / max(1, trials), 4)}
    return searcher.completed, info, rss
