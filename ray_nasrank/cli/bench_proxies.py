"""``ray-nasrank bench proxies``: our zero-cost proxies vs a published proxy table (NASLib's).

For the first ``--limit`` architectures of the table (after a seeded shuffle) it computes each
proxy on the NB201 macro (``--channels``, ``--cells-per-stage``, 3x32x32 input) with one fixed
random-normal batch of ``--batch-size`` images and random labels (we have no CIFAR-10 here), then
reports per proxy: Spearman and Kendall tau against the table's column of the same proxy, against
the table's ``--target`` (val_acc), the table's own proxy against the target on the same archs,
and seconds per arch. ``--shared-synflow`` adds ``shared_synflow``: SynFlow of every arch as a path
of one small weight-sharing supernet (``ray_nasrank.proxies.shared_synflow``, the intrinsic weak
label NASRank pretrains on), compared with the table's ``synflow``. Writes the JSON to ``--out``
and the per-arch scores next to it (``<out>_scores.csv``).
"""

from __future__ import annotations

import argparse

#: our proxy name -> NASLib column name where they differ
TABLE_COLUMNS = {"naswot": "nwot"}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "proxies", help="zero-cost proxies vs a published proxy table (rank agreement, cost)",
        description=__doc__)
    p.add_argument("--table", required=True, help="proxy table (parquet/CSV) with an NB201 'arch' column")
    p.add_argument("--target", default="val_acc", help="accuracy column of the table")
    p.add_argument("--proxies", default="params,flops,synflow,snip,grad_norm,naswot,jacov",
                   help="comma-separated proxies to compute (see ray_nasrank.proxies.PROXIES)")
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--cells-per-stage", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--limit", type=int, default=None, help="number of archs (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the arch subset, batch and weights")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--shared-synflow", action="store_true",
                   help="also compute shared-supernet SynFlow (1 cell per stage, 8x8 input by default)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", required=True, help="JSON result file")
    p.set_defaults(func=run)


def _rank_safe(v):
    """Replace +-inf by values just beyond the finite range (rank-preserving), keep NaN as NaN."""
    import numpy as np

    v = np.asarray(v, dtype=float).copy()
    finite = v[np.isfinite(v)]
    if finite.size:
        v[v == -np.inf] = finite.min() - 1.0
        v[v == np.inf] = finite.max() + 1.0
    return v


def _agreement(a, b) -> dict:
    import numpy as np

    from ray_nasrank.metrics import kendall_tau, spearman

    a, b = _rank_safe(a), _rank_safe(b)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return {"spearman": None, "kendall": None, "n": int(ok.sum())}
    return {"spearman": spearman(a[ok], b[ok]), "kendall": kendall_tau(a[ok], b[ok]), "n": int(ok.sum())}


def run(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    import numpy as np
    import torch

    from ray_nasrank._io import atomic_write_json, atomic_write_text, check_writable_dir
    from ray_nasrank.benchmarks import read_table
    from ray_nasrank.cli import UsageError, parse_csv_list
    from ray_nasrank.proxies import (PROXIES, SHARED_SYNFLOW_NET, compute_proxies_many, resolve_names,
                                     shared_synflow)

    names = resolve_names(parse_csv_list(args.proxies))
    if args.limit is not None and args.limit < 3:
        raise UsageError(f"--limit must be >= 3 (rank correlations need pairs), got {args.limit}")
    if args.threads < 1:
        raise UsageError(f"--threads must be >= 1, got {args.threads}")
    out = Path(args.out)
    check_writable_dir(out.parent if str(out.parent) else ".")
    table = read_table(args.table)
    for col in ("arch", args.target):
        if col not in table.columns:
            raise ValueError(f"table {args.table!r} has no column {col!r}; columns: {list(table.columns)}")
    order = np.random.default_rng(args.seed).permutation(len(table))
    sub = table.iloc[order[: args.limit] if args.limit else order].reset_index(drop=True)

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    scores = compute_proxies_many(sub["arch"], names, progress=True, with_timings=True,
                                  channels=args.channels, cells_per_stage=args.cells_per_stage,
                                  input_shape=(3, 32, 32), num_classes=10, seed=args.seed,
                                  batch_size=args.batch_size, device=args.device)
    if args.shared_synflow:
        t1 = time.perf_counter()
        scores["shared_synflow"] = shared_synflow(list(sub["arch"]), seed=args.seed, device=args.device)
        scores["seconds_shared_synflow"] = (time.perf_counter() - t1) / len(sub)
        names = (*names, "shared_synflow")
    total = time.perf_counter() - t0
    per_proxy = {}
    for name in names:
        col = "synflow" if name == "shared_synflow" else TABLE_COLUMNS.get(name, name)
        ours = scores[name].to_numpy(dtype=float)
        entry = {
            "table_column": col if col in sub.columns else None,
            "data_dependent": False if name == "shared_synflow" else PROXIES[name].data_dependent,
            "seconds_per_arch": float(scores[f"seconds_{name}"].mean()),
            "non_finite": int((~np.isfinite(ours)).sum()),
            "vs_target": _agreement(sub[args.target], ours),
        }
        if col in sub.columns:
            entry["vs_table"] = _agreement(sub[col], ours)
            entry["table_vs_target"] = _agreement(sub[args.target], sub[col])
        per_proxy[name] = entry
    result = {
        "benchmark": "proxies",
        "table": str(args.table),
        "target": args.target,
        "num_archs": len(sub),
        "table_rows": len(table),
        "channels": args.channels,
        "cells_per_stage": args.cells_per_stage,
        "input_shape": [3, 32, 32],
        "batch": f"random normal, {args.batch_size} images, uniform random labels, seed {args.seed}",
        "seed": args.seed,
        "threads": args.threads,
        "device": args.device,
        "shared_synflow_net": ({**SHARED_SYNFLOW_NET, "input_shape": list(SHARED_SYNFLOW_NET["input_shape"])}
                               if args.shared_synflow else None),
        "seconds_total": total,
        "seconds_per_arch": total / len(sub),
        "proxies": per_proxy,
    }
    atomic_write_json(out, result)
    scores_path = out.with_name(out.stem + "_scores.csv")
    atomic_write_text(scores_path, scores.to_csv(index=False))
    print(f"{'proxy':<10} {'rho vs table':>12} {'tau vs table':>12} {'rho vs acc':>10} "
          f"{'table rho':>9} {'s/arch':>7}")
    for name, e in per_proxy.items():
        vt = e.get("vs_table", {})
        fmt = lambda v: "   -" if v is None else f"{v:.3f}"  # noqa: E731
        print(f"{name:<10} {fmt(vt.get('spearman')):>12} {fmt(vt.get('kendall')):>12} "
              f"{fmt(e['vs_target']['spearman']):>10} {fmt(e.get('table_vs_target', {}).get('spearman')):>9} "
              f"{e['seconds_per_arch']:>7.3f}")
    print(f"wrote {out} and {scores_path}")
    return 0
