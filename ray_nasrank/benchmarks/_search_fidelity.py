"""Search under a scheduler on a learning-curve table, at an equal epoch budget
(``ray-nasrank bench search --curve-cols ...``).

Each table row holds a config's validation accuracy after every epoch of one training
(``scripts/learning_curve_table.py``). A "training" reads the row's curve one epoch at a time,
and a scheduler stops it early or lets it go on:

- ``tune-asha``: Ray Tune's own ``ASHAScheduler`` (its object, its promotion rule) with
  ``workers`` concurrent trials. The searchers see it through Tune's ``Searcher`` API exactly as
  Tune calls it: ``on_trial_result`` for every result the scheduler lets continue, and
  ``on_trial_complete`` with the last result (a STOP passes that result to
  ``on_trial_complete`` only). NASRank is ``NASRankSearcher``, TPE is Ray's ``OptunaSearch``
  (TPE), random is ``NASRankSearcher(strategy="random")``. The loop runs in-process: epochs
  advance in lockstep over the running trials, so a run is repeatable and takes seconds, not the
  minutes a Ray cluster's actors take.
- ``optuna-hyperband``: an Optuna study with ``HyperbandPruner`` (ask/tell,
  ``trial.report(acc, epoch)``, ``should_prune``); NASRank is ``NASRankSampler``, TPE Optuna's
  ``TPESampler``, random Optuna's ``RandomSampler``.
- ``hpbandster``: Hyperband's brackets as HpBandSter (BOHB's own implementation) runs them, one
  job at a time; BOHB is its config generator, random its ``RandomSampling`` (plain Hyperband),
  NASRank a core strategy told each result at its budget
  (:mod:`ray_nasrank.benchmarks._search_bohb`).

Every method spends the same number of epochs (``epoch_budget``). The incumbent of a run is the
config with the best target among those trained to the last epoch (a partial curve never
counts). Its normalised regret is ``(best - incumbent) / (best - median)`` over the table's
target (0: the table's best config, 1: its median). A suggestion that is no table row (TPE's
floats) is evaluated as the nearest unseen row (:func:`~ray_nasrank.search.nearest_first`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: schedulers (``--scheduler``) and the strategies each compares
SCHEDULERS = ("tune-asha", "optuna-hyperband", "hpbandster")
SCHEDULED_STRATEGIES = ("nasrank", "optuna-tpe", "random", "bohb")


class _Trial:
    """What Tune's ASHA reads of a trial: its id."""

    def __init__(self, trial_id: str) -> None:
        self.trial_id = trial_id


class CurveTable:
    """The learning curves of a table's rows, and the nearest-unseen-row lookup for suggestions.

    Args:
        bench: the table (its ``target`` is the last epoch's value).
        curves: one row per arch, one column per epoch.
    """

    def __init__(self, bench: Any, curves: np.ndarray) -> None:
        self.bench = bench
        self.curves = np.asarray(curves, dtype=np.float64)
        self.epochs = self.curves.shape[1]
        self._features: np.ndarray | None = None
        target = bench.signed(bench.targets)
        self.best = float(np.max(target))
        self.median = float(np.median(target))

    def row(self, arch: Any, taken: set[int]) -> int:
        """The row of ``arch``, or the nearest row not in ``taken`` when it is no row (or a taken one)."""
        from ray_nasrank.search import nearest_first

        space = self.bench.space
        with contextlib.suppress(KeyError, ValueError):  # no row of the table: the nearest one below
            i = self.bench.index(arch)
            if i not in taken:
                return i
        if self._features is None:
            self._features = space.features(self.bench.archs)
        for j in nearest_first(space, self._features, arch):
            if int(j) not in taken:
                return int(j)
        raise RuntimeError("every row of the table was evaluated")

    def regret(self, value: float | None) -> float:
        """Normalised regret of a target value (higher-is-better units; ``None``: 1, the median)."""
        if value is None:
            return 1.0
        return (self.best - float(self.bench.signed(value))) / (self.best - self.median)


def _incumbent(full: dict[int, float], table: CurveTable) -> tuple[int | None, float | None]:
    if not full:
        return None, None
    i = max(full, key=lambda k: table.bench.signed(full[k]))
    return i, full[i]


# ------------------------------------------------------------------ Tune + ASHA
def run_tune_asha(searcher: Any, table: CurveTable, epoch_budget: int, workers: int,
                  reduction_factor: float, grace: int = 1, metric: str = "acc") -> dict:
    """One search under Ray Tune's ``ASHAScheduler``, driven through the ``Searcher`` API.

    Args:
        searcher: a Tune ``Searcher`` whose metric is ``metric`` (set up for the table's space).
        table: the curves.
        epoch_budget: epochs to spend in all.
        workers: trials running at once.
        reduction_factor: ASHA's reduction factor.
        grace: ASHA's grace period (epochs).
        metric: the result key.

    Returns:
        ``rows`` (row per trial), ``epochs`` (per trial), ``full`` (row -> target of trials
        trained to the end), ``incumbent``, ``regret``, ``epochs_used``, ``searcher_s``.
    """
    from ray.tune.schedulers import ASHAScheduler

    mode = table.bench.mode
    sched = ASHAScheduler(time_attr="training_iteration", metric=metric, mode=mode, max_t=table.epochs,
                          grace_period=grace, reduction_factor=reduction_factor)
    running: dict[str, dict] = {}
    taken: set[int] = set()
    rows, reached, full = [], [], {}
    used, n, searcher_s = 0, 0, 0.0
    exhausted = False

    def finish(tid: str, result: dict) -> None:
        nonlocal searcher_s
        st = running.pop(tid)
        sched.on_trial_complete(None, st["trial"], result)
        t0 = time.perf_counter()
        searcher.on_trial_complete(tid, result)
        searcher_s += time.perf_counter() - t0
        reached.append(st["epoch"])
        if st["epoch"] >= table.epochs:
            full[st["row"]] = float(table.curves[st["row"], -1])

    while used < epoch_budget:
        while len(running) < workers and not exhausted:
            tid = f"t{n:05d}"
            t0 = time.perf_counter()
            config = searcher.suggest(tid)
            while config is None:  # a refit in flight: in a real run time passes meanwhile
                time.sleep(0.01)
                config = searcher.suggest(tid)
            searcher_s += time.perf_counter() - t0
            if config == "FINISHED":
                exhausted = True
                break
            arch = table.bench.space.from_config(config)
            i = table.row(arch, taken)
            taken.add(i)
            rows.append(i)
            trial = _Trial(tid)
            sched.on_trial_add(None, trial)
            running[tid] = {"trial": trial, "row": i, "epoch": 0}
            n += 1
        if not running:
            break
        for tid in list(running):
            if used >= epoch_budget:
                break
            st = running[tid]
            st["epoch"] += 1
            used += 1
            result = {metric: float(table.curves[st["row"], st["epoch"] - 1]), "training_iteration": st["epoch"]}
            action = sched.on_trial_result(None, st["trial"], result)
            if action == "STOP" or st["epoch"] >= table.epochs:
                finish(tid, result)  # Tune skips on_trial_result for a stopping result
            else:
                t0 = time.perf_counter()
                searcher.on_trial_result(tid, result)
                searcher_s += time.perf_counter() - t0
    for tid in list(running):  # the budget ran out: Tune ends the running trials with their last result
        st = running[tid]
        last = {metric: float(table.curves[st["row"], st["epoch"] - 1]), "training_iteration": st["epoch"]}
        finish(tid, last)
    inc, value = _incumbent(full, table)
    return {"rows": rows, "epochs": reached, "full": {int(k): v for k, v in full.items()}, "incumbent": inc,
            "incumbent_value": value, "regret": table.regret(value), "epochs_used": used, "searcher_s": searcher_s}


# ------------------------------------------------------------------ Optuna + HyperbandPruner
def run_optuna_hyperband(sampler: Any, table: CurveTable, epoch_budget: int, reduction_factor: int,
                         seed: int) -> dict:
    """One Optuna study with ``HyperbandPruner`` (ask/tell, one report per epoch).

    Args:
        sampler: the Optuna sampler.
        table: the curves.
        epoch_budget: epochs to spend in all.
        reduction_factor: the pruner's reduction factor.
        seed: seeds the study's bracket assignment (the study name).

    Returns:
        As :func:`run_tune_asha`.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    bench = table.bench
    pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=table.epochs,
                                            reduction_factor=reduction_factor)
    study = optuna.create_study(direction="maximize" if bench.mode == "max" else "minimize", sampler=sampler,
                                pruner=pruner, study_name=f"bench-{seed}")
    dists = bench.space.to_optuna()
    taken: set[int] = set()
    rows, reached, full = [], [], {}
    used = 0
    t_sampler = 0.0
    while used < epoch_budget and len(taken) < len(bench.archs):
        t0 = time.perf_counter()
        trial = study.ask(dists)
        t_sampler += time.perf_counter() - t0
        arch = bench.space.from_config(trial.params)
        i = table.row(arch, taken)
        taken.add(i)
        rows.append(i)
        state, value = optuna.trial.TrialState.COMPLETE, None
        epoch = 0
        for epoch in range(1, table.epochs + 1):
            used += 1
            value = float(table.curves[i, epoch - 1])
            trial.report(value, epoch)
            if epoch < table.epochs and (trial.should_prune() or used >= epoch_budget):
                state = optuna.trial.TrialState.PRUNED
                break
        reached.append(epoch)
        t0 = time.perf_counter()
        if state == optuna.trial.TrialState.PRUNED:
            study.tell(trial, state=state)
        else:
            study.tell(trial, value)
            full[i] = value
        t_sampler += time.perf_counter() - t0
    inc, val = _incumbent(full, table)
    return {"rows": rows, "epochs": reached, "full": {int(k): v for k, v in full.items()}, "incumbent": inc,
            "incumbent_value": val, "regret": table.regret(val), "epochs_used": used, "searcher_s": t_sampler}


def bench_search_scheduled(cfg: Any) -> dict:
    """``bench search`` with ``curve_cols``: every strategy of ``cfg`` under ``cfg.scheduler``,
    ``cfg.seeds`` seeds at ``cfg.epoch_budget`` epochs each; writes the JSON to ``cfg.out``.

    Args:
        cfg: a :class:`~ray_nasrank.benchmarks.SearchBenchConfig` with ``curve_cols``.

    Returns:
        ``{"config", "table": {"rows", "epochs", "best", "median"}, "strategies": {name: summary
        with "per_seed"}}``.
    """
    import torch

    from ray_nasrank._io import atomic_write_json, check_writable_dir
    torch.set_num_threads(1)
    out = cfg.out
    if out:
        from pathlib import Path

        check_writable_dir(Path(out).parent if str(Path(out).parent) else ".")
    bench = cfg.load_table(keep=list(cfg.curve_cols))
    curves = bench.extra[list(cfg.curve_cols)].to_numpy(dtype=np.float64)
    table = CurveTable(bench, curves)
    weak = {name: bench.weak[name] for name in cfg.weak}
    weak.update(cfg.intrinsic_labels(bench))
    started = time.time()

    def say(msg: str) -> None:
        log.info(f"[bench search {cfg.scheduler} {time.time() - started:7.1f}s] {msg}")

    shared = None
    if "nasrank" in cfg.strategies:
        from ._search import shared_pretraining

        shared, _ = shared_pretraining(bench, weak, cfg.strategy_args.get("nasrank", {}), say)
    strategies = {}
    for name in cfg.strategies:
        per_seed = []
        t0 = time.time()
        for seed in range(cfg.seed, cfg.seed + cfg.seeds):
            kwargs = dict(cfg.strategy_args.get(name, {}))
            if name == "nasrank" and isinstance(kwargs.get("predictor"), dict):
                from ray_nasrank.search._nasrank import search_predictor_config

                kwargs["predictor"] = search_predictor_config(bench.space, **kwargs["predictor"])
            if cfg.scheduler == "tune-asha":
                searcher = _tune_searcher(name, bench, table, seed, weak, shared, kwargs, cfg.workers)
                r = run_tune_asha(searcher, table, cfg.epoch_budget, cfg.workers, cfg.reduction_factor)
            elif cfg.scheduler == "hpbandster":
                from ._search_bohb import make_generator, run_hpbandster

                generator = make_generator(name, bench, seed, weak, shared, kwargs, table.epochs)
                r = run_hpbandster(generator, table, cfg.epoch_budget, int(cfg.reduction_factor), seed)
            else:
                sampler = _optuna_sampler(name, bench, table, seed, weak, shared, kwargs)
                r = run_optuna_hyperband(sampler, table, cfg.epoch_budget, int(cfg.reduction_factor), seed)
            per_seed.append({"seed": seed, **r})
            say(f"{name} seed {seed}: regret {r['regret']:.3f} ({len(r['rows'])} trials, {len(r['full'])} "
                f"trained fully, searcher {r['searcher_s']:.1f}s)")
        summary = summarise_regrets(per_seed)
        summary["mean_trials"] = float(np.mean([len(p["rows"]) for p in per_seed]))
        summary["mean_full_trainings"] = float(np.mean([len(p["full"]) for p in per_seed]))
        summary["wall_s"] = round(time.time() - t0, 1)
        summary["per_seed"] = per_seed
        strategies[name] = summary
        say(f"{name}: mean regret {summary['mean_regret']:.3f} +- {summary['se_regret']:.3f}")
    result = {
        "config": {"table": str(cfg.table), "space": cfg.space, "arch_cols": cfg.arch_cols, "num_cols": cfg.num_cols,
                   "target": cfg.target, "mode": cfg.mode, "curve_cols": list(cfg.curve_cols),
                   "scheduler": cfg.scheduler, "epoch_budget": cfg.epoch_budget, "workers": cfg.workers,
                   "reduction_factor": cfg.reduction_factor, "seeds": cfg.seeds, "first_seed": cfg.seed,
                   "strategies": list(cfg.strategies), "strategy_args": cfg.strategy_args, "weak": list(weak),
                   "model": cfg.model, "wall_s": round(time.time() - started, 1)},
        "table": {"rows": len(bench.archs), "epochs": table.epochs, "best": table.best, "median": table.median},
        "strategies": strategies,
    }
    if out:
        atomic_write_json(out, result)
        say(f"wrote {out}")
    return result


def _tune_searcher(name: str, bench: Any, table: CurveTable, seed: int, weak: dict, shared: Any, kwargs: dict,
                   workers: int) -> Any:
    if name == "optuna-tpe":  # Ray's OptunaSearch with its default TPE sampler
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        searcher = OptunaSearch(space=bench.space.to_optuna(), metric="acc", mode=bench.mode,
                                sampler=optuna.samplers.TPESampler(seed=seed, **kwargs), seed=seed)
        searcher.set_max_concurrency(workers)
        return searcher
    from ray_nasrank.integrations.tune import NASRankSearcher

    skw = {"candidates": bench.archs, **kwargs}
    if name == "nasrank":
        if weak:
            skw.setdefault("weak", weak)
        if shared is not None:
            skw.setdefault("predictor", shared)
    searcher = NASRankSearcher(bench.space, metric="acc", mode=bench.mode, strategy=name, strategy_kwargs=skw,
                               seed=seed, max_fidelity=table.epochs)
    searcher.set_search_properties("acc", bench.mode, {})
    searcher.set_max_concurrency(workers)
    searcher.wait_until_ready()
    return searcher


def _optuna_sampler(name: str, bench: Any, table: CurveTable, seed: int, weak: dict, shared: Any,
                    kwargs: dict) -> Any:
    import optuna

    if name == "optuna-tpe":
        return optuna.samplers.TPESampler(seed=seed, **kwargs)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    from ray_nasrank.integrations.optuna import NASRankSampler

    skw = {"candidates": bench.archs, **kwargs}
    if weak:
        skw.setdefault("weak", weak)
    if shared is not None:
        skw.setdefault("predictor", shared)
    return NASRankSampler(bench.space, strategy=name, seed=seed, strategy_kwargs=skw)


def summarise_regrets(per_seed: list[dict]) -> dict:
    """Mean normalised regret and its standard error over seeds.

    Args:
        per_seed: runs with a ``regret``.

    Returns:
        ``{"mean_regret", "se_regret", "seeds"}``.

    >>> summarise_regrets([{"regret": 0.2}, {"regret": 0.4}])["mean_regret"]
    0.3
    """
    r = np.array([p["regret"] for p in per_seed], dtype=np.float64)
    se = float(r.std(ddof=1) / math.sqrt(r.size)) if r.size > 1 else float("nan")
    return {"mean_regret": round(float(r.mean()), 6), "se_regret": round(se, 6), "seeds": int(r.size)}


__all__ = ["CurveTable", "SCHEDULERS", "SCHEDULED_STRATEGIES", "bench_search_scheduled", "run_optuna_hyperband",
           "run_tune_asha", "summarise_regrets"]
