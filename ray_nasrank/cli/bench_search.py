"""``ray-nasrank bench search``: search strategies on a tabular benchmark, many seeds, as JSON.

Every "training" is a table lookup. For each strategy and seed the JSON keeps the values in
query order and the best-so-far curve; per strategy it reports the mean best after 10/20/50/100
queries, the median number of queries to reach the table's optimum (a miss counts as
budget + 1) and the share of seeds that reach it. ``--via tune`` additionally runs ``nasrank``
through a real Ray Tune ``Tuner`` (``ray_nasrank.integrations.tune.bench.search_via_tune``).

Example::

    ray-nasrank bench search --table nb201_cifar10.parquet --space nb201 --target test_acc \\
        --weak supernet_oneshot_acc --budget 100 --seeds 30 \\
        --strategies nasrank,random,optuna-tpe,rea,opdist --out result.json
"""

from __future__ import annotations

import argparse
import json
import time

from ray_nasrank.cli import UsageError, add_table_args, load_table_from_args, parse_csv_list

#: strategies that receive the table's weak labels
WEAK_AWARE = ("nasrank", "opdist")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "search", help="compare search strategies on a table (each query is a lookup)",
        description="Run search strategies for --seeds seeds of --budget queries each on a table and write "
                    "the mean best-so-far, queries to the optimum and hit rate per strategy as JSON.")
    add_table_args(p)
    p.add_argument("--budget", type=int, default=100, help="queries per search (default 100)")
    p.add_argument("--seeds", type=int, default=30, help="seeds per strategy (default 30)")
    p.add_argument("--seed", type=int, default=0, help="first seed (seeds are seed .. seed+seeds-1)")
    p.add_argument("--strategies", type=parse_csv_list, default=["nasrank", "random", "optuna-tpe", "rea", "opdist"],
                   help="comma-separated: nasrank, random, optuna-tpe, rea, opdist")
    p.add_argument("--batch", type=int, default=1, help="archs asked per ask() call (default 1: sequential)")
    p.add_argument("--strategy-args", type=json.loads, default={},
                   help='JSON of per-strategy keyword arguments, e.g. \'{"nasrank": {"explore": 0.1}}\'')
    p.add_argument("--via", choices=["direct", "tune"], default="direct",
                   help="tune: also run nasrank through a real Ray Tune Tuner")
    p.add_argument("--tune-seeds", type=int, default=3, help="seeds of the --via tune run (default 3)")
    p.add_argument("--tune-concurrency", type=int, default=1, help="concurrent trials of the --via tune run")
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=run)


def _check_args(args: argparse.Namespace) -> None:
    from ray_nasrank.search import STRATEGIES

    for name in ("budget", "seeds", "batch", "tune_seeds", "tune_concurrency"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {args.seed}")
    if not args.strategies:
        raise UsageError("--strategies is empty")
    unknown = [s for s in args.strategies if s not in STRATEGIES]
    if unknown:
        raise UsageError(f"unknown strategy {unknown[0]!r} in --strategies; choose from {sorted(STRATEGIES)}")
    if len(set(args.strategies)) != len(args.strategies):
        raise UsageError(f"--strategies lists a strategy twice: {args.strategies}")
    if not isinstance(args.strategy_args, dict) or not all(isinstance(v, dict) for v in args.strategy_args.values()):
        raise UsageError("--strategy-args must be a JSON object of objects, e.g. '{\"rea\": {\"population\": 10}}'")
    extra = sorted(set(args.strategy_args) - set(args.strategies) - ({"nasrank"} if args.via == "tune" else set()))
    if extra:
        raise UsageError(f"--strategy-args names strategies not in --strategies: {extra}")


def _tune_runner():
    try:
        from ray_nasrank.integrations.tune.bench import search_via_tune
    except ImportError as e:
        raise UsageError(
            f"--via tune needs ray_nasrank.integrations.tune.bench.search_via_tune and Ray Tune "
            f"(pip install 'ray_nasrank[tune]'); importing it failed: {e}") from None
    return search_via_tune


def run(args: argparse.Namespace) -> int:
    import sys

    import torch

    from ray_nasrank._io import atomic_write_json, check_writable_dir
    from ray_nasrank.search import make_strategy
    from ray_nasrank.search._bench import DEFAULT_CHECKPOINTS, run_on_table, summarize

    _check_args(args)
    search_via_tune = _tune_runner() if args.via == "tune" else None
    from pathlib import Path

    out = Path(args.out)
    check_writable_dir(out.parent if str(out.parent) else ".")
    torch.set_num_threads(1)
    bench = load_table_from_args(args)
    weak = {name: bench.weak[name] for name in args.weak}
    started = time.time()

    def log(msg: str) -> None:
        if not args.quiet:
            print(f"[bench search {time.time() - started:7.1f}s] {msg}", file=sys.stderr, flush=True)

    shared_predictor = None
    pretrained_on: list[str] = []
    if "nasrank" in args.strategies or args.via == "tune":
        # pretraining only sees the weak labels of the whole table, never a seed's queries, so
        # one pretrained predictor is shared by all seeds (each seed fine-tunes its own clone)
        from ray_nasrank.predictor import RankPredictor
        from ray_nasrank.search import default_intrinsic, pretraining_labels
        from ray_nasrank.search._nasrank import search_predictor_config

        nas_args = args.strategy_args.get("nasrank", {})
        cfg = search_predictor_config(bench.space, **nas_args.get("predictor", {}))
        # the same pretraining targets NASRankStrategy would use: the weak labels plus the
        # intrinsic ones (params, FLOPs, SynFlow on NB201) unless --strategy-args switches them off
        intrinsic = nas_args.get("intrinsic_weak")
        intrinsic = default_intrinsic(bench.space) if intrinsic is None else tuple(intrinsic)
        t0 = time.time()
        cols = pretraining_labels(bench.space, bench.archs, weak or None, intrinsic)
        if cols:  # nothing to pretrain on: each seed's NASRank starts from its first labels
            shared_predictor = RankPredictor(bench.space, cfg).pretrain(bench.archs, cols)
            pretrained_on = list(cols)
            log(f"nasrank: pretrained the predictor on {len(bench.archs)} archs ({', '.join(cols)}) "
                f"in {time.time() - t0:.1f}s")

    strategies = {}
    for name in args.strategies:
        kwargs = dict(args.strategy_args.get(name, {}))
        if name in WEAK_AWARE and weak:
            kwargs.setdefault("weak", weak)
        if name == "nasrank" and isinstance(kwargs.get("predictor"), dict):
            from ray_nasrank.search._nasrank import search_predictor_config

            kwargs["predictor"] = search_predictor_config(bench.space, **kwargs["predictor"])
        if name == "nasrank" and shared_predictor is not None:
            kwargs["predictor"] = shared_predictor
        per_seed = []
        t0 = time.time()
        for seed in range(args.seed, args.seed + args.seeds):
            bench.reset()
            strategy = make_strategy(name, bench.space, seed=seed, mode=bench.mode, candidates=bench.archs, **kwargs)
            result = run_on_table(strategy, bench, args.budget, batch=args.batch)
            best = strategy.best
            result.pop("archs")
            per_seed.append({"seed": seed, **result,
                             "best_arch": None if best is None else bench.space.to_string(best[0])})
            log(f"{name} seed {seed}: best {result['best_so_far'][-1]} "
                f"queries to optimum {result['queries_to_optimum']}")
        summary = summarize([r["values"] for r in per_seed], bench.optimum, args.budget, bench.mode)
        summary["overhead_s_per_trial"] = float(sum(r["overhead_s_per_trial"] for r in per_seed) / len(per_seed))
        summary["wall_s"] = time.time() - t0
        summary["per_seed"] = per_seed
        strategies[name] = summary
        log(f"{name}: best_at={ {k: round(v, 3) for k, v in summary['best_at'].items() if v is not None} } "
            f"median_to_opt={summary['median_queries_to_optimum']} hit_rate={summary['hit_rate']:.2f}")

    result = {
        "config": {
            "table": str(args.table), "space": args.space, "target": args.target, "mode": args.mode,
            "weak": list(args.weak), "budget": args.budget, "seeds": args.seeds, "first_seed": args.seed,
            "strategies": list(args.strategies), "batch": args.batch, "strategy_args": args.strategy_args,
            "checkpoints": [c for c in DEFAULT_CHECKPOINTS if c <= args.budget], "archs": len(bench.archs),
            "via": args.via, "nasrank_pretrained_on": pretrained_on,
        },
        "optimum": bench.optimum,
        "strategies": strategies,
    }
    if search_via_tune is not None:
        runs = []
        t0 = time.time()
        tune_kwargs = dict(args.strategy_args.get("nasrank", {}))
        if isinstance(tune_kwargs.get("predictor"), dict):
            from ray_nasrank.search._nasrank import search_predictor_config

            tune_kwargs["predictor"] = search_predictor_config(bench.space, **tune_kwargs["predictor"])
        if shared_predictor is not None:
            tune_kwargs["predictor"] = shared_predictor
        for seed in range(args.seed, args.seed + args.tune_seeds):
            r = search_via_tune(bench, strategy="nasrank", budget=args.budget, seed=seed,
                                concurrency=args.tune_concurrency, weak=list(args.weak),
                                strategy_kwargs=tune_kwargs)
            runs.append({"seed": seed, "values": list(r["values"]),
                         "overhead_s_per_trial": float(r["overhead_s_per_trial"])})
        tune_summary = summarize([r["values"] for r in runs], bench.optimum, args.budget, bench.mode)
        tune_summary["overhead_s_per_trial"] = float(sum(r["overhead_s_per_trial"] for r in runs) / len(runs))
        tune_summary["wall_s"] = time.time() - t0
        tune_summary["concurrency"] = args.tune_concurrency
        tune_summary["per_seed"] = runs
        result["via_tune"] = {"nasrank": tune_summary}
        log(f"nasrank via Tune: best_at={tune_summary['best_at']} overhead/trial="
            f"{tune_summary['overhead_s_per_trial']:.3f}s")
    result["config"]["wall_s"] = time.time() - started
    atomic_write_json(out, result)
    log(f"wrote {out}")
    return 0
