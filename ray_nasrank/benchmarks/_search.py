"""Search strategies on a tabular benchmark, many seeds (``ray-nasrank bench search``).

Every "training" is a table lookup. For each strategy and seed the result keeps the values in
query order and the best-so-far curve; per strategy it reports the mean best after 10/20/50/100
queries, the median number of queries to reach the table's optimum (a miss counts as
budget + 1) and the share of seeds that reach it. ``via="tune"`` additionally runs ``nasrank``
through a real Ray Tune ``Tuner`` (:func:`ray_nasrank.benchmarks._search_tune.search_via_tune`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray_nasrank._checks import ConfigError, check_int
from ray_nasrank._config import option

from ._config import TableConfig

log = logging.getLogger(__name__)

#: strategies that receive the table's weak labels
WEAK_AWARE = ("nasrank", "opdist")
DEFAULT_STRATEGIES = ("nasrank", "random", "optuna-tpe", "rea", "opdist")


@dataclass
class SearchBenchConfig(TableConfig):
    """One ``bench search`` run: the table (see :class:`TableConfig`), the strategies, budget and seeds.

    Raises:
        ConfigError: a bad value; the message names its key.

    >>> SearchBenchConfig(table="t.csv", target="acc", strategies=["random"]).budget
    100
    >>> SearchBenchConfig(table="t.csv", target="acc", strategies=["random", "grid"])
    Traceback (most recent call last):
    ...
    ray_nasrank._checks.ConfigError: unknown strategy 'grid' in strategies; choose from ['nasrank', 'opdist', 'optuna-tpe', 'random', 'rea']
    """

    budget: int = option(100, "queries per search")
    seeds: int = option(30, "seeds per strategy")
    seed: int = option(0, "first seed (seeds are seed .. seed+seeds-1)")
    strategies: list[str] = option(default_factory=lambda: list(DEFAULT_STRATEGIES),
                                   help="comma-separated: " + ", ".join(DEFAULT_STRATEGIES))
    batch: int = option(1, "archs asked per ask() call (1: sequential)")
    strategy_args: dict = option(default_factory=dict,
                                 help='JSON of per-strategy keyword arguments, e.g. \'{"nasrank": {"explore": 0.1}}\'')
    via: str = option("direct", "tune: also run nasrank through a real Ray Tune Tuner", choices=("direct", "tune"))
    tune_seeds: int = option(3, "seeds of the --via tune run")
    tune_concurrency: int = option(1, "concurrent trials of the --via tune run")
    curve_cols: list[str] = option(default_factory=list,
                                   help="comma-separated per-epoch columns of a learning-curve table (first epoch "
                                        "first): the strategies then search under --scheduler at an equal "
                                        "--epoch-budget and report normalised regret")
    scheduler: str = option("tune-asha", "with --curve-cols: Ray Tune's ASHAScheduler, Optuna's HyperbandPruner, "
                                         "or HpBandSter's Hyperband brackets (BOHB's; pip install "
                                         "'ray_nasrank[bohb]')", choices=("tune-asha", "optuna-hyperband", "hpbandster"))
    epoch_budget: int = option(120, "with --curve-cols: epochs each search spends")
    workers: int = option(4, "with --curve-cols and tune-asha: trials running at once")
    reduction_factor: int = option(3, "with --curve-cols: the scheduler's reduction factor")
    out: str | None = option(None, "JSON file to write", required=True)

    def __post_init__(self) -> None:
        super().__post_init__()
        from ray_nasrank.search import STRATEGIES

        from ._search_bohb import HPBANDSTER_STRATEGIES
        from ._search_fidelity import SCHEDULED_STRATEGIES

        self.curve_cols = list(self.curve_cols)
        if self.curve_cols:
            for key in ("epoch_budget", "workers"):
                check_int(key, getattr(self, key), low=1)
            check_int("reduction_factor", self.reduction_factor, low=2)
            # the ones a scheduled run compares; BOHB is a config generator of HpBandSter's brackets only
            scheduled = HPBANDSTER_STRATEGIES if self.scheduler == "hpbandster" else \
                [s for s in SCHEDULED_STRATEGIES if s != "bohb"]
            STRATEGIES = {s: None for s in scheduled}  # noqa: N806

        self.strategies = list(self.strategies)
        for key in ("budget", "seeds", "batch", "tune_seeds", "tune_concurrency"):
            check_int(key, getattr(self, key), low=1)
        check_int("seed", self.seed, low=0)
        if not self.strategies:
            raise ConfigError("`strategies` is empty")
        unknown = [s for s in self.strategies if s not in STRATEGIES]
        if "bohb" in unknown and self.curve_cols:
            raise ConfigError(f"strategy 'bohb' runs in HpBandSter's Hyperband brackets only: use `scheduler` "
                              f"'hpbandster' (got {self.scheduler!r})")
        if unknown:
            raise ConfigError(f"unknown strategy {unknown[0]!r} in `strategies`; choose from {sorted(STRATEGIES)}")
        if len(set(self.strategies)) != len(self.strategies):
            raise ConfigError(f"`strategies` lists a strategy twice: {self.strategies}")
        if not isinstance(self.strategy_args, dict) or not all(isinstance(v, dict) for v in self.strategy_args.values()):
            raise ConfigError("`strategy_args` must be a JSON object of objects, e.g. '{\"rea\": {\"population\": 10}}'")
        extra = sorted(set(self.strategy_args) - set(self.strategies) - ({"nasrank"} if self.via == "tune" else set()))
        if extra:
            raise ConfigError(f"`strategy_args` names strategies not in `strategies`: {extra}")
        if self.curve_cols and self.scheduler == "hpbandster":
            from ._search_bohb import require_hpbandster

            require_hpbandster()  # before any work: one error naming the extra


def _tune_runner():
    try:  # the runner imports Ray only when it runs: say it is missing before any work
        import ray.tune  # noqa: F401
    except ImportError as e:
        raise ConfigError(
            f"`via` tune needs Ray Tune (pip install 'ray_nasrank[tune]'); importing it failed: {e}") from None
    from ._search_tune import search_via_tune

    return search_via_tune


def shared_pretraining(bench: Any, weak: dict, nas_args: dict, say: Any) -> tuple[Any, list[str]]:
    """One predictor pretrained on the whole table's weak labels, for every seed to clone.

    Pretraining sees only the weak labels of all rows, never a seed's queries, so one predictor
    serves all seeds (each fine-tunes its own clone). Its targets are those ``NASRankStrategy``
    would use: the weak labels plus the intrinsic ones (params, FLOPs, SynFlow on NB201) unless
    ``nas_args["intrinsic_weak"]`` switches them off; its settings are ``nas_args["predictor"]``.

    Returns:
        ``(predictor, columns)``; ``(None, [])`` when there is nothing to pretrain on (each
        seed's NASRank then starts from its first labels).
    """
    from ray_nasrank.predictor import RankPredictor
    from ray_nasrank.search import default_intrinsic, pretraining_labels
    from ray_nasrank.search._nasrank import search_predictor_config

    pcfg = search_predictor_config(bench.space, **nas_args.get("predictor", {}))
    intrinsic = nas_args.get("intrinsic_weak")
    intrinsic = default_intrinsic(bench.space) if intrinsic is None else tuple(intrinsic)
    t0 = time.time()
    cols = pretraining_labels(bench.space, bench.archs, weak or None, intrinsic)
    if not cols:
        return None, []
    predictor = RankPredictor(bench.space, pcfg).pretrain(bench.archs, cols)
    say(f"nasrank: pretrained the predictor on {len(bench.archs)} archs ({', '.join(cols)}) "
        f"in {time.time() - t0:.1f}s")
    return predictor, list(cols)


def bench_search(config: SearchBenchConfig) -> dict:
    """Run the search benchmark of ``config`` and write its JSON to ``config.out`` (when set).

    Progress goes to the ``ray_nasrank`` logger at INFO.

    Args:
        config: the run.

    Returns:
        ``{"config": {...}, "optimum": float, "strategies": {name: summary with "per_seed"}}``
        (plus ``"via_tune"`` for ``via="tune"``).

    Raises:
        ConfigError: a bad value, or ``via="tune"`` without Ray Tune.
        ValueError: a table that cannot be read as configured.
    """
    import torch

    from ray_nasrank._io import atomic_write_json, check_writable_dir
    from ray_nasrank.search import make_strategy

    from ._search_table import DEFAULT_CHECKPOINTS, run_on_table, summarise_curves

    cfg = config
    if cfg.curve_cols:
        from ._search_fidelity import bench_search_scheduled

        return bench_search_scheduled(cfg)
    search_via_tune = _tune_runner() if cfg.via == "tune" else None
    out = Path(cfg.out) if cfg.out else None
    if out is not None:
        check_writable_dir(out.parent if str(out.parent) else ".")
    torch.set_num_threads(1)
    bench = cfg.load_table()
    weak = {name: bench.weak[name] for name in cfg.weak}
    # --intrinsic / --model: labels the package computes for every row join the table's weak columns
    weak.update(cfg.intrinsic_labels(bench))
    started = time.time()

    def say(msg: str) -> None:
        log.info(f"[bench search {time.time() - started:7.1f}s] {msg}")

    shared_predictor, pretrained_on = None, []
    if "nasrank" in cfg.strategies or cfg.via == "tune":
        shared_predictor, pretrained_on = shared_pretraining(bench, weak, cfg.strategy_args.get("nasrank", {}), say)

    def nasrank_kwargs(kwargs: dict) -> dict:
        if isinstance(kwargs.get("predictor"), dict):
            from ray_nasrank.search._nasrank import search_predictor_config

            kwargs["predictor"] = search_predictor_config(bench.space, **kwargs["predictor"])
        if shared_predictor is not None:
            kwargs["predictor"] = shared_predictor
        return kwargs

    strategies = {}
    for name in cfg.strategies:
        kwargs = dict(cfg.strategy_args.get(name, {}))
        if name in WEAK_AWARE and weak:
            kwargs.setdefault("weak", weak)
        if name == "nasrank":
            kwargs = nasrank_kwargs(kwargs)
        per_seed = []
        t0 = time.time()
        for seed in range(cfg.seed, cfg.seed + cfg.seeds):
            bench.reset()
            strategy = make_strategy(name, bench.space, seed=seed, mode=bench.mode, candidates=bench.archs, **kwargs)
            result = run_on_table(strategy, bench, cfg.budget, batch=cfg.batch)
            best = strategy.best
            result.pop("archs")
            per_seed.append({"seed": seed, **result,
                             "best_arch": None if best is None else bench.space.to_string(best[0])})
            say(f"{name} seed {seed}: best {result['best_so_far'][-1]} "
                f"queries to optimum {result['queries_to_optimum']}")
        summary = summarise_curves([r["values"] for r in per_seed], bench.optimum, cfg.budget, bench.mode)
        summary["overhead_s_per_trial"] = float(sum(r["overhead_s_per_trial"] for r in per_seed) / len(per_seed))
        summary["wall_s"] = time.time() - t0
        summary["per_seed"] = per_seed
        strategies[name] = summary
        say(f"{name}: best_at={ {k: round(v, 3) for k, v in summary['best_at'].items() if v is not None} } "
            f"median_to_opt={summary['median_queries_to_optimum']} hit_rate={summary['hit_rate']:.2f}")

    result = {
        "config": {
            "table": str(cfg.table), "space": cfg.space, "target": cfg.target, "mode": cfg.mode,
            "weak": list(cfg.weak), "intrinsic": list(cfg.intrinsic), "model": cfg.model,
            "input_shape": cfg.input_shape, "budget": cfg.budget, "seeds": cfg.seeds, "first_seed": cfg.seed,
            "strategies": list(cfg.strategies), "batch": cfg.batch, "strategy_args": cfg.strategy_args,
            "checkpoints": [c for c in DEFAULT_CHECKPOINTS if c <= cfg.budget], "archs": len(bench.archs),
            "via": cfg.via, "nasrank_pretrained_on": pretrained_on,
        },
        "optimum": bench.optimum,
        "strategies": strategies,
    }
    if search_via_tune is not None:
        runs = []
        t0 = time.time()
        tune_kwargs = nasrank_kwargs(dict(cfg.strategy_args.get("nasrank", {})))
        for seed in range(cfg.seed, cfg.seed + cfg.tune_seeds):
            r = search_via_tune(bench, strategy="nasrank", budget=cfg.budget, seed=seed,
                                concurrency=cfg.tune_concurrency, weak=list(cfg.weak),
                                strategy_kwargs=tune_kwargs)
            runs.append({"seed": seed, "values": list(r["values"]),
                         "overhead_s_per_trial": float(r["overhead_s_per_trial"])})
        tune_summary = summarise_curves([r["values"] for r in runs], bench.optimum, cfg.budget, bench.mode)
        tune_summary["overhead_s_per_trial"] = float(sum(r["overhead_s_per_trial"] for r in runs) / len(runs))
        tune_summary["wall_s"] = time.time() - t0
        tune_summary["concurrency"] = cfg.tune_concurrency
        tune_summary["per_seed"] = runs
        result["via_tune"] = {"nasrank": tune_summary}
        say(f"nasrank via Tune: best_at={tune_summary['best_at']} overhead/trial="
            f"{tune_summary['overhead_s_per_trial']:.3f}s")
    result["config"]["wall_s"] = time.time() - started
    if out is not None:
        atomic_write_json(out, result)
        say(f"wrote {out}")
    return result
