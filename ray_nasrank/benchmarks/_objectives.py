"""Accuracy against latency on a table (``ray-nasrank bench objectives``).

Optuna studies over NB201 cells, every "training" a table lookup: the target (e.g. CIFAR-10
``test_acc``) and the latency of the cell on one or more devices of the table (``lat_<device>``
columns). Two experiments, each for every device and seed: ``front`` maximises the target and
minimises the latency (hypervolume of the front after each budget, as a share of the whole
table's, with the reference point at the table's worst target and latency), ``constrained``
maximises the target under a latency cap at the ``cap_quantile`` of the device's latencies, set
with ``trial.set_constraint`` (best feasible target after each budget, share of feasible trials).
Samplers: ``nasrank`` (NASRankSampler, latency known without training: the table's column),
``nasrank-learned`` (latency predicted / its feasibility learned from the trials), Optuna's
``nsga2``, ``tpe`` (multi-objective, or with the constraints) and ``random``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ray_nasrank._checks import ConfigError, check_int, check_number
from ray_nasrank._config import option

from ._config import TableConfig

log = logging.getLogger(__name__)

SAMPLERS = ("nasrank", "nasrank-learned", "nsga2", "tpe", "random")
EXPERIMENTS = ("front", "constrained")


@dataclass
class ObjectivesBenchConfig(TableConfig):
    """One ``bench objectives`` run: the table, the latency devices, samplers, budgets and seeds.

    Raises:
        ConfigError: a bad value; the message names its key.

    >>> ObjectivesBenchConfig(table="t.csv", target="acc", devices=["pixel3"]).budgets
    [20, 50, 100]
    """

    devices: list[str] = option(default_factory=list, help="comma-separated latency devices: the table's "
                                "lat_<device> columns without 'lat_' (e.g. gold_6226,pixel3)")
    experiments: list[str] = option(default_factory=lambda: list(EXPERIMENTS),
                                    help="comma-separated: front (hypervolume), constrained (latency cap)")
    samplers: list[str] = option(default_factory=lambda: ["nasrank", "nsga2", "tpe", "random"],
                                 help="comma-separated: " + ", ".join(SAMPLERS))
    budgets: list[int] = option(default_factory=lambda: [20, 50, 100], help="evaluations at which results are read")
    seeds: int = option(10, "seeds per sampler and device")
    seed: int = option(0, "first seed (seeds are seed .. seed+seeds-1)")
    cap_quantile: float = option(0.25, "latency cap of the constrained experiment: this quantile of the device's")
    nasrank_intrinsic: list[str] = option(default_factory=lambda: ["params", "flops"],
                                          help="intrinsic labels NASRank pretrains on with --weak (SynFlow of "
                                               "every NB201 cell is left out by default: minutes on a busy machine)")
    strategy_args: dict = option(default_factory=dict,
                                 help="JSON of NASRank strategy keyword arguments, e.g. '{\"explore\": 0.1}'")
    out: str | None = option(None, "JSON file to write", required=True)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.devices = list(self.devices)
        self.experiments = list(self.experiments)
        self.samplers = list(self.samplers)
        self.budgets = sorted(int(b) for b in self.budgets)
        if not self.devices:
            raise ConfigError("`devices` is required: the lat_<device> columns to use (e.g. gold_6226,pixel3)")
        for key, allowed in (("experiments", EXPERIMENTS), ("samplers", SAMPLERS)):
            bad = [x for x in getattr(self, key) if x not in allowed]
            if bad or not getattr(self, key):
                raise ConfigError(f"unknown `{key}` {bad}; choose from {list(allowed)}")
        if not self.budgets or any(b < 1 for b in self.budgets):
            raise ConfigError(f"`budgets` must be positive, got {self.budgets}")
        check_int("seeds", self.seeds, low=1)
        check_int("seed", self.seed, low=0)
        check_number("cap_quantile", self.cap_quantile, 0.0, 1.0)
        if self.space != "nb201":
            raise ConfigError("`space` must be nb201: the devices' latencies are columns of the NB201 table")


def latency_columns(columns) -> list[str]:
    """The devices a table has latencies for (its ``lat_<device>`` columns)."""
    return sorted(c[len("lat_"):] for c in columns if c.startswith("lat_"))


def _nasrank_sampler(space, seed: int, kwargs: dict, lat_of: dict, cap: float | None, learned: bool,
                     multi: bool):
    from ray_nasrank.integrations.optuna import NASRankSampler

    def latency(params: dict) -> float:
        return lat_of[space.from_config(params)]

    known: dict[str, Any] = {}
    if not learned:
        if multi:
            known["known_objectives"] = {1: latency}
        if cap is not None:
            known["known_constraints"] = {"latency": lambda p: latency(p) - cap}
    return NASRankSampler(space, seed=seed, strategy_kwargs=dict(kwargs), **known)


def _sampler(name: str, space, seed: int, kwargs: dict, lat_of: dict, cap: float | None, multi: bool):
    import optuna

    if name.startswith("nasrank"):
        return _nasrank_sampler(space, seed, kwargs, lat_of, cap, name == "nasrank-learned", multi)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def _run_study(sampler, space, acc_of: dict, lat_of: dict, budget: int, cap: float | None) -> dict:
    """One study of ``budget`` trials: the (target, latency) of each trial in order."""
    import optuna

    multi = cap is None
    values: list[tuple[float, float]] = []

    def objective(trial):
        arch = space.from_config({d.name: trial.suggest_categorical(d.name, list(d.choices))
                                  for d in space.decisions})
        acc, lat = acc_of[arch], lat_of[arch]
        values.append((acc, lat))
        if multi:
            return acc, lat
        trial.set_constraint("latency", lat - cap)
        return acc

    study = optuna.create_study(directions=["maximize", "minimize"] if multi else ["maximize"], sampler=sampler)
    t0 = time.perf_counter()
    study.optimize(objective, n_trials=budget)
    return {"values": values, "wall_s": time.perf_counter() - t0}


def _front_hv(values: np.ndarray, ref: np.ndarray) -> float:
    from ray_nasrank.search._objectives import hypervolume

    return hypervolume(np.c_[values[:, 0], -values[:, 1]], ref)


def bench_objectives(config: ObjectivesBenchConfig) -> dict:
    """Run the experiments of ``config`` and write their JSON to ``config.out``.

    Returns:
        ``{"config", "devices": {device: {"front": {...}, "constrained": {...}}}}``; per sampler
        the mean (and per-seed) hypervolume share or best feasible target at each budget and
        the share of feasible trials.

    Raises:
        ConfigError: a device the table has no latency for (the message lists those it has).
    """
    import optuna
    import torch

    from ray_nasrank._io import atomic_write_json, check_writable_dir
    from ray_nasrank.predictor import RankPredictor
    from ray_nasrank.search import pretraining_labels
    from ray_nasrank.search._nasrank import search_predictor_config

    cfg = config
    from ray_nasrank.tabular import read_table

    frame = read_table(cfg.table)
    have = latency_columns(frame.columns)
    bad = [d for d in cfg.devices if d not in have]
    if bad:
        raise ConfigError(f"no latency column for device(s) {bad} in {cfg.table}; it has {have}")
    if cfg.out:
        from pathlib import Path

        check_writable_dir(Path(cfg.out).parent if str(Path(cfg.out).parent) else ".")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(1)
    bench = cfg.load_table()
    space = bench.space
    archs = list(bench.archs)
    row_of = {a: i for i, a in enumerate(archs)}
    rows = frame.reset_index(drop=True)
    if len(rows) != len(archs):
        raise ConfigError(f"{cfg.table} has repeated or invalid architecture rows: {len(rows)} rows, "
                          f"{len(archs)} architectures")
    missing = _missing_configs(space, row_of)
    if missing:
        raise ConfigError(f"{cfg.table} lacks {missing[0]} of the space's {int(space.size)} configurations (e.g. "
                          f"{missing[1]!r}); the samplers may propose any of them, so the table must hold every one")
    acc_of = {a: float(bench.targets[i]) for a, i in row_of.items()}
    started = time.time()

    def say(msg: str) -> None:
        log.info(f"[bench objectives {time.time() - started:7.1f}s] {msg}")

    weak = {name: bench.weak[name] for name in cfg.weak}
    nas_args = dict(cfg.strategy_args)
    predictor_args = nas_args.pop("predictor", {})
    kwargs: dict[str, Any] = {"candidates": archs, "intrinsic_weak": tuple(cfg.nasrank_intrinsic), **nas_args}
    if any(s.startswith("nasrank") for s in cfg.samplers):
        t0 = time.time()
        cols = pretraining_labels(space, archs, weak or None, tuple(cfg.nasrank_intrinsic))
        if weak:
            kwargs["weak"] = weak
        if cols:
            # pretraining sees only the table's weak labels, never a seed's trials: shared by all seeds
            pcfg = search_predictor_config(space, **predictor_args)
            kwargs["predictor"] = RankPredictor(space, pcfg).pretrain(archs, cols)
        say(f"nasrank: pretrained on {list(cols or {})} of {len(archs)} archs in {time.time() - t0:.1f}s")
    budget = max(cfg.budgets)
    out: dict[str, Any] = {}
    for device in cfg.devices:
        lat = rows[f"lat_{device}"].to_numpy(dtype=np.float64)
        if np.isnan(lat).any():
            raise ConfigError(f"lat_{device} has {int(np.isnan(lat).sum())} missing values")
        lat_of = {a: float(lat[i]) for a, i in row_of.items()}
        ref = np.array([float(bench.targets.min()), -float(lat.max())])
        best_hv = _front_hv(np.c_[bench.targets, lat], ref)
        cap = float(np.quantile(lat, cfg.cap_quantile))
        feasible = lat <= cap
        dev: dict[str, Any] = {"latency_column": f"lat_{device}", "table_hypervolume": best_hv,
                               "reference_point": {"target": float(ref[0]), "latency": float(-ref[1])},
                               "cap": cap, "best_feasible_target": float(bench.targets[feasible].max())}
        for exp in cfg.experiments:
            multi = exp == "front"
            res: dict[str, Any] = {}
            for name in cfg.samplers:
                per_seed = []
                for seed in range(cfg.seed, cfg.seed + cfg.seeds):
                    sampler = _sampler(name, space, seed, kwargs, lat_of, None if multi else cap, multi)
                    r = _run_study(sampler, space, acc_of, lat_of, budget, None if multi else cap)
                    v = np.array(r["values"], dtype=np.float64)
                    row: dict[str, Any] = {"seed": seed, "wall_s": r["wall_s"]}
                    if multi:
                        row["hv_share"] = {str(b): _front_hv(v[:b], ref) / best_hv for b in cfg.budgets}
                    else:
                        ok = v[:, 1] <= cap
                        row["best_feasible"] = {str(b): (float(v[:b][ok[:b], 0].max()) if ok[:b].any() else None)
                                                for b in cfg.budgets}
                        row["feasible_share"] = float(ok.mean())
                    per_seed.append(row)
                    say(f"{device} {exp} {name} seed {seed}: "
                        f"{row.get('hv_share') or row.get('best_feasible')} in {r['wall_s']:.0f}s")
                summary: dict[str, Any] = {"per_seed": per_seed,
                                           "wall_s_per_seed": float(np.mean([r["wall_s"] for r in per_seed]))}
                if multi:
                    summary["hv_share"] = {str(b): float(np.mean([r["hv_share"][str(b)] for r in per_seed]))
                                           for b in cfg.budgets}
                else:
                    summary["best_feasible"] = {
                        str(b): _mean_or_none([r["best_feasible"][str(b)] for r in per_seed]) for b in cfg.budgets}
                    summary["seeds_without_feasible"] = {
                        str(b): sum(r["best_feasible"][str(b)] is None for r in per_seed) for b in cfg.budgets}
                    summary["feasible_share"] = float(np.mean([r["feasible_share"] for r in per_seed]))
                res[name] = summary
                shown = summary.get("hv_share") or summary.get("best_feasible")
                say(f"{device} {exp} {name}: {shown}"
                    + ("" if multi else f" feasible share {summary['feasible_share']:.2f}"))
            dev[exp] = res
        out[device] = dev
    result = {"config": {"table": str(cfg.table), "target": cfg.target, "weak": list(cfg.weak),
                         "devices": list(cfg.devices), "experiments": list(cfg.experiments),
                         "samplers": list(cfg.samplers), "budgets": cfg.budgets, "seeds": cfg.seeds,
                         "first_seed": cfg.seed, "cap_quantile": cfg.cap_quantile,
                         "nasrank_intrinsic": list(cfg.nasrank_intrinsic), "strategy_args": cfg.strategy_args,
                         "optuna": optuna.__version__, "wall_s": time.time() - started},
              "devices": out}
    if cfg.out:
        atomic_write_json(cfg.out, result)
        say(f"wrote {cfg.out}")
    return result


def _missing_configs(space, rows: dict) -> tuple[int, str] | None:
    """How many configurations of ``space`` the table lacks, and one of them (``None``: none)."""
    missing = [a for a in space.enumerate() if a not in rows]
    return (len(missing), space.to_string(missing[0])) if missing else None


def _mean_or_none(xs: list) -> float | None:
    vals = [x for x in xs if x is not None]
    return float(np.mean(vals)) if vals else None


def format_objectives(result: dict) -> str:
    """A plain-text table of the result: one line per device, experiment and sampler."""
    lines = []
    budgets = result["config"]["budgets"]
    for device, dev in result["devices"].items():
        for exp in ("front", "constrained"):
            if exp not in dev:
                continue
            lines.append(f"{device} {exp}" + (f" (cap {dev['cap']:.3g} ms)" if exp == "constrained" else ""))
            for name, s in dev[exp].items():
                if exp == "front":
                    cells = " ".join(f"{s['hv_share'][str(b)]:.4f}" for b in budgets)
                    lines.append(f"  {name:16s} hypervolume share at {budgets}: {cells}")
                else:
                    cells = " ".join("-" if s["best_feasible"][str(b)] is None else f"{s['best_feasible'][str(b)]:.2f}"
                                     for b in budgets)
                    lines.append(f"  {name:16s} best feasible at {budgets}: {cells}; feasible share "
                                 f"{s['feasible_share']:.2f}")
    return "\n".join(lines)


__all__ = ["ObjectivesBenchConfig", "bench_objectives", "format_objectives", "latency_columns", "SAMPLERS"]
