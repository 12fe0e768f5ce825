"""``ray-nasrank bench ranking``: how well each method ranks a whole table from a few labels.

Each seed draws ``--labels`` rows at random (seeded), every method learns from those rows (and
the weak-label columns of all rows), then scores **all** rows; the JSON holds, per method, the
seed means of Kendall tau, Spearman, NDCG@10, NDCG@50 and the best true target among the 10
top-ranked, plus the per-seed values.

Methods: ``nasrank`` (LTR predictor pretrained on the weak labels), ``nasrank_no_pretrain``
(same, no pretraining), ``weak`` (the mean rank of the weak labels alone, read in the target's
direction: higher is better for ``--mode max``, lower for ``min``), ``mse`` (the
pretrained predictor fine-tuned with MSE instead of a ranking loss), ``gbdt`` (scikit-learn
gradient-boosted trees on the encoding plus the weak labels), ``random``.

Example::

    ray-nasrank bench ranking --table ../shared/data/nb201/nb201_cifar10.parquet --space nb201 \\
        --target test_acc --weak supernet_oneshot_acc --labels 50 --seeds 10 --out result.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from ray_nasrank.cli import UsageError, add_table_args, parse_csv_list

METHODS = ("nasrank", "nasrank_no_pretrain", "weak", "mse", "gbdt", "random")
METRICS = ("kendall_tau", "spearman", "ndcg@10", "ndcg@50", "best_in_top10")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "ranking", help="rank a table from a few labels plus weak labels; compare methods",
        description=__doc__.split("\n\n")[0] + " Writes one JSON file (--out).",
    )
    add_table_args(p)
    p.add_argument("--labels", type=int, default=50, help="labelled rows drawn per seed (default 50)")
    p.add_argument("--seeds", type=int, default=10, help="number of seeds (default 10)")
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument("--methods", type=parse_csv_list, default=list(METHODS),
                   help=f"comma-separated subset of {','.join(METHODS)} (default: all)")
    p.add_argument("--encoder", default="mlp", choices=["mlp", "gcn"], help="predictor encoder")
    p.add_argument("--features", default="onehot+opdist", help="encodings joined by '+' (default onehot+opdist)")
    p.add_argument("--loss", default="lambdarank", help="fine-tuning loss of the nasrank methods")
    p.add_argument("--ensemble", type=int, default=3, help="predictor ensemble size")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--quiet", action="store_true", help="no per-seed progress lines on stderr")
    p.add_argument("--predictor-args", type=json.loads, default={}, metavar="JSON",
                   help="more PredictorConfig fields as a JSON object, e.g. '{\"weak_reg\": 1.0}'")
    p.add_argument("--intrinsic", type=parse_csv_list, default=[], metavar="NAMES",
                   help="intrinsic weak labels the package computes for NB201 cells and adds to --weak: "
                        "a comma-separated subset of params,flops,synflow (default: none)")
    p.add_argument("--pretrain-cache", default=None, metavar="DIR",
                   help="keep the weak-label-pretrained predictor in DIR and reuse it across runs of the same "
                        "table, weak columns and predictor settings (it does not depend on --labels/--seeds)")
    p.set_defaults(func=run)


def _check_args(args: argparse.Namespace, n_rows: int) -> None:
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        raise UsageError(f"unknown method(s) {unknown}; choose from {list(METHODS)}")
    if not args.methods:
        raise UsageError("--methods is empty")
    if args.seeds < 1:
        raise UsageError(f"--seeds must be >= 1, got {args.seeds}")
    if args.labels < 2:
        raise UsageError(f"--labels must be >= 2 (a ranking needs two labelled rows), got {args.labels}")
    if args.labels >= n_rows:
        raise UsageError(f"--labels {args.labels} must be smaller than the table's {n_rows} rows")
    if args.threads < 1:
        raise UsageError(f"--threads must be >= 1, got {args.threads}")
    if args.intrinsic:
        from ray_nasrank.search import INTRINSIC

        bad = [x for x in args.intrinsic if x not in INTRINSIC]
        if bad:
            raise UsageError(f"unknown --intrinsic label(s) {bad}; choose from {list(INTRINSIC)}")
        if args.space != "nb201":
            raise UsageError("--intrinsic needs --space nb201 (the labels are computed for NB201 cells)")
        clash = [x for x in args.intrinsic if x in args.weak]
        if clash:
            raise UsageError(f"{clash} given both in --weak and --intrinsic; keep one")


def weak_score(weak: dict[str, Any]):
    """The weak labels alone: mean normal-score rank over the columns (missing rows last)."""
    import numpy as np

    from ray_nasrank.predictor.weak import as_weak_matrix, combined_target, normalise_weak

    n = len(next(iter(weak.values())))
    _, matrix = as_weak_matrix(weak, n)
    s = combined_target(normalise_weak(matrix, "rank"))
    return np.where(np.isnan(s), np.nanmin(s) - 1.0, s)


def _gbdt_scores(features, weak_feats, idx, y_signed, seed: int):
    import numpy as np
    from sklearn.ensemble import GradientBoostingRegressor

    x = features if weak_feats is None else np.concatenate([features, weak_feats], axis=1)
    model = GradientBoostingRegressor(n_estimators=200, max_depth=3, learning_rate=0.05, subsample=0.8,
                                      random_state=seed)
    model.fit(x[idx], y_signed[idx])
    return model.predict(x)


def run(args: argparse.Namespace) -> int:
    import dataclasses

    import numpy as np
    import torch

    from ray_nasrank._io import atomic_write_json, check_writable_dir
    from ray_nasrank.cli import load_table_from_args
    from ray_nasrank.metrics import ranking_report
    from ray_nasrank.predictor import PredictorConfig, RankPredictor
    from ray_nasrank.predictor.features import feature_store
    from ray_nasrank.predictor.weak import normalise_weak

    bench = load_table_from_args(args)
    n = len(bench.archs)
    _check_args(args, n)
    methods = [m for m in METHODS if m in args.methods]
    if not bench.weak and not args.intrinsic:
        dropped = [m for m in methods if m in ("weak",)]
        methods = [m for m in methods if m not in ("weak",)]
        if "nasrank" in methods:
            print("bench ranking: no --weak columns: 'nasrank' fine-tunes without pretraining", file=sys.stderr)
        if dropped:
            print(f"bench ranking: no --weak columns, skipping {dropped}", file=sys.stderr)
    out = Path(args.out)
    check_writable_dir(out.parent if str(out.parent) else ".")
    torch.set_num_threads(args.threads)
    try:
        if not isinstance(args.predictor_args, dict):
            raise ValueError("--predictor-args must be a JSON object of PredictorConfig fields")
        cfg = PredictorConfig.from_dict({**args.predictor_args, "encoder": args.encoder,
                                         "features": args.features, "loss": args.loss,
                                         "ensemble": args.ensemble, "device": args.device, "seed": 0})
        feature_store(bench.space, cfg.features, graph=cfg.encoder == "gcn")
    except ValueError as e:
        raise UsageError(str(e)) from None

    y = bench.targets
    y_signed = y if bench.mode == "max" else -y
    weak = {}
    for name, col in bench.weak.items():
        col = np.asarray(col, dtype=np.float64)
        bad = np.isinf(col)
        if bad.any():  # e.g. a proxy that overflowed: treat as missing, like NaN
            print(f"bench ranking: weak column {name!r}: {int(bad.sum())} inf value(s) treated as missing",
                  file=sys.stderr)
            col = np.where(bad, np.nan, col)
        weak[name] = col
    if args.intrinsic:
        from ray_nasrank.search import intrinsic_weak

        t0 = time.perf_counter()
        for name, col in intrinsic_weak(bench.space, bench.archs, tuple(args.intrinsic)).items():
            weak[name] = col
        print(f"bench ranking: computed intrinsic weak labels {list(args.intrinsic)} of {n} rows in "
              f"{time.perf_counter() - t0:.1f}s", file=sys.stderr)
    timings: dict[str, float] = {m: 0.0 for m in methods}

    pretrained = None
    if weak and any(m in methods for m in ("nasrank", "mse")):
        t0 = time.perf_counter()
        cache = _cache_path(args, cfg, n) if args.pretrain_cache else None
        if cache is not None and cache.is_file():
            pretrained = RankPredictor.load(cache, device=args.device)
            timings["pretrain_loaded"] = time.perf_counter() - t0
        else:
            pretrained = RankPredictor(bench.space, cfg).pretrain(bench.archs, weak)
            timings["pretrain"] = time.perf_counter() - t0
            if cache is not None:
                pretrained.save(cache)

    features = weak_feats = None
    if "gbdt" in methods:
        features = feature_store(bench.space, cfg.features).flat[feature_store(bench.space, cfg.features).rows(bench.archs)]
        if weak:
            weak_feats = np.nan_to_num(normalise_weak(np.stack([weak[k] for k in weak], axis=1), "rank"), nan=0.0)

    def fit_clone(base: RankPredictor | None, archs, labels, **over) -> RankPredictor:
        if base is None:
            return RankPredictor(bench.space, dataclasses.replace(cfg, **over)).fit(archs, labels, mode=bench.mode)
        p = base.clone()
        p.config = dataclasses.replace(p.config, **over)
        return p.fit(archs, labels, mode=bench.mode)

    per_seed: dict[str, list[dict]] = {m: [] for m in methods}
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(n, size=args.labels, replace=False))
        archs = [bench.archs[i] for i in idx]
        labels = y[idx]
        scorers: dict[str, Callable[[], np.ndarray]] = {
            "nasrank": lambda: fit_clone(pretrained, archs, labels, seed=seed if pretrained is None else 0).score(bench.archs),
            "nasrank_no_pretrain": lambda: fit_clone(None, archs, labels, seed=seed).score(bench.archs),
            # weak columns are read in the target's direction (higher is better for mode max)
            "weak": lambda: weak_score(weak) if bench.mode == "max" else -weak_score(weak),
            "mse": lambda: fit_clone(pretrained, archs, labels, loss="mse", aux_loss=None,
                                     seed=seed if pretrained is None else 0).score(bench.archs),
            "gbdt": lambda: _gbdt_scores(features, weak_feats, idx, y_signed, seed),
            "random": lambda: np.random.default_rng(10_000 + seed).random(n),
        }
        line = []
        for m in methods:
            t0 = time.perf_counter()
            scores = scorers[m]()  # every scorer: higher = better
            timings[m] += time.perf_counter() - t0
            # the metrics read scores in the target's units, so a 'min' run negates them
            rep = ranking_report(y, scores if bench.mode == "max" else -scores, mode=bench.mode, ks=(10, 50))
            per_seed[m].append({"seed": seed, **{k: float(rep[k]) for k in METRICS}})
            line.append(f"{m} {rep['ndcg@50']:.3f}/{rep['kendall_tau']:.3f}")
        if not args.quiet:
            print(f"seed {seed}: ndcg@50/tau " + ", ".join(line), file=sys.stderr, flush=True)

    result = {
        "config": {
            "table": str(args.table), "space": args.space, "arch_col": args.arch_col, "arch_cols": args.arch_cols,
            "target": args.target, "mode": bench.mode, "weak": list(weak), "intrinsic": list(args.intrinsic),
            "labels": args.labels,
            "seeds": args.seeds, "rows": n, "methods": methods, "threads": args.threads,
            "predictor": dataclasses.asdict(cfg),
            "seconds": {k: round(v, 2) for k, v in timings.items()},
            "command": "ray-nasrank bench ranking " + shlex.join(_argv_for(args)),
        },
        "methods": {m: summarise(per_seed[m]) for m in methods},
    }
    atomic_write_json(out, result)
    print(format_summary(result))
    return 0


def _cache_path(args: argparse.Namespace, cfg, n_rows: int) -> Path:
    """Cache file named by a hash of everything the pretraining depends on."""
    import dataclasses
    import hashlib
    import json

    table = Path(args.table).resolve()
    st = table.stat()
    key = json.dumps({"table": str(table), "size": st.st_size, "mtime": st.st_mtime_ns, "rows": n_rows,
                      "space": args.space, "arch_col": args.arch_col, "arch_cols": args.arch_cols,
                      "weak": list(args.weak), "intrinsic": list(args.intrinsic),
                      "predictor": dataclasses.asdict(cfg)}, sort_keys=True)
    d = check_dir(args.pretrain_cache)
    return d / f"pretrained_{hashlib.sha1(key.encode()).hexdigest()[:16]}.pt"


def check_dir(path: str) -> Path:
    from ray_nasrank._io import check_writable_dir

    return check_writable_dir(path)


def summarise(rows: Sequence[dict]) -> dict:
    """Seed means of :data:`METRICS` plus the per-seed rows."""
    import numpy as np

    return {**{k: float(np.mean([r[k] for r in rows])) for k in METRICS}, "per_seed": list(rows)}


def format_summary(result: dict) -> str:
    c = result["config"]
    head = f"{c['target']} on {Path(c['table']).name}, weak={','.join(c['weak']) or '-'}, labels={c['labels']}, seeds={c['seeds']}"
    lines = [head, f"{'method':<22}" + "".join(f"{k:>14}" for k in METRICS)]
    for m, v in result["methods"].items():
        lines.append(f"{m:<22}" + "".join(f"{v[k]:>14.4f}" for k in METRICS))
    return "\n".join(lines)


def _argv_for(args: argparse.Namespace) -> list[str]:
    parts = ["--table", str(args.table), "--space", args.space, "--target", args.target, "--mode", args.mode]
    if args.space == "columns":
        parts += ["--arch-cols", ",".join(args.arch_cols)]
    else:
        parts += ["--arch-col", args.arch_col]
    if args.weak:
        parts += ["--weak", ",".join(args.weak)]
    if args.intrinsic:
        parts += ["--intrinsic", ",".join(args.intrinsic)]
    parts += ["--labels", str(args.labels), "--seeds", str(args.seeds), "--out", str(args.out)]
    if list(args.methods) != list(METHODS):
        parts += ["--methods", ",".join(args.methods)]
    if args.predictor_args:
        parts += ["--predictor-args", json.dumps(args.predictor_args, sort_keys=True)]
    for flag, default in (("encoder", "mlp"), ("features", "onehot+opdist"), ("loss", "lambdarank"), ("ensemble", 3)):
        if getattr(args, flag) != default:
            parts += [f"--{flag}", str(getattr(args, flag))]
    return parts


def markdown_table(paths: Sequence[str | Path], methods: Sequence[str] = METHODS,
                   metrics: Sequence[str] = ("ndcg@50", "kendall_tau")) -> str:
    """One Markdown table from result JSONs: a row per (table, weak set, labels), a column per method and metric."""
    import json

    rows = []
    for p in paths:
        r = json.loads(Path(p).read_text())
        c = r["config"]
        weak = ",".join(c["weak"]) or "-"
        # a run with --predictor-args is a variant of the same cell: say which
        cmd = shlex.split(c.get("command", ""))
        if "--predictor-args" in cmd:
            weak += f" (predictor {cmd[cmd.index('--predictor-args') + 1]})"
        rows.append((Path(c["table"]).name, c["target"], weak, c["labels"], c["seeds"], r["methods"]))
    rows.sort(key=lambda t: (t[0], t[2], t[3]))
    cols = [(m, k) for k in metrics for m in methods]
    out = ["| table | target | weak labels | labels | seeds | " + " | ".join(f"{m} {k}" for m, k in cols) + " |",
           "|" + "---|" * (5 + len(cols))]
    for table, target, weak, labels, seeds, res in rows:
        best = {k: max((res[m][k] for m in methods if m in res), default=None) for k in metrics}
        cells = []
        for m, k in cols:
            if m not in res:
                cells.append("-")
                continue
            v = f"{res[m][k]:.3f}"
            cells.append(f"**{v}**" if res[m][k] == best[k] else v)
        out.append(f"| {table} | {target} | {weak} | {labels} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(out)


if __name__ == "__main__":  # pragma: no cover  (python -m ray_nasrank.cli.bench_ranking a.json b.json ...)
    print(markdown_table(sys.argv[1:]))
