"""How well each model weak label, and the ranker pretrained on them with 0 labels, ranks a table.

Reads a table of configs with a target (e.g. ``results/own_model/cnn_fmnist.csv`` from
``scripts/own_model_ground_truth.py``), computes every zero-cost proxy of each row's model with
:class:`ray_nasrank.proxies.ModelProxies` (``--model MODULE:FUNCTION``), and writes per label its
Kendall tau / Spearman / NDCG@10 against the target, plus the same figures for the
learning-to-rank predictor pretrained on ``--pretrain`` labels without any true label (seeds
0..``--seeds``-1; the seed changes the predictor's initialisation only).

    python scripts/own_model_weak_labels.py --table results/own_model/cnn_fmnist.csv \\
        --arch-cols w1,act,op1,w2,depth,head --target test_acc --model examples/cnn_family.py:build_model \\
        --input-shape 1,12,12 --out results/own_model/weak_labels.json

``--num-cols lr:log,wd:log,dropout`` adds numeric decision columns (``results/mixed_cnn``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--table", required=True)
    p.add_argument("--arch-cols", required=True)
    p.add_argument("--num-cols", default=None, help="numeric columns, e.g. lr:log,wd:log,dropout")
    p.add_argument("--target", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--input-shape", required=True)
    p.add_argument("--proxies", default="params,flops,synflow,naswot,jacov,snip,grad_norm")
    p.add_argument("--pretrain", default="params,flops,synflow,naswot,jacov",
                   help="labels the 0-label ranker is pretrained on")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--first-seed", type=int, default=0,
                   help="ranker seeds run from this one (choose settings on other seeds than the reported)")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)

    import numpy as np
    import torch

    from ray_nasrank._user_code import load_callable
    from ray_nasrank.benchmarks import TabularBenchmark
    from ray_nasrank.metrics import ranking_report
    from ray_nasrank.predictor import PredictorConfig, RankPredictor
    from ray_nasrank.proxies import ModelProxies

    torch.set_num_threads(1)
    bench = TabularBenchmark.from_file(args.table, space="columns", arch_cols=args.arch_cols.split(","),
                                       num_cols=args.num_cols.split(",") if args.num_cols else None,
                                       target=args.target, mode="max")
    names = args.proxies.split(",")
    t0 = time.perf_counter()
    proxies = ModelProxies(load_callable(args.model), input_shape=tuple(int(v) for v in args.input_shape.split(",")),
                           names=names)
    labels = proxies([bench.space.to_config(a) for a in bench.archs])
    proxy_s = time.perf_counter() - t0
    y = bench.targets

    def report(score):
        score = np.asarray(score, dtype=np.float64)
        ok = np.isfinite(score)
        # a row without a value ranks last (as the benchmarks treat missing weak labels)
        filled = np.where(ok, score, np.nanmin(score[ok]) - 1.0 if ok.any() else 0.0)
        return {k: float(v) for k, v in ranking_report(y, filled, ks=(10,)).items()} | {"missing": int((~ok).sum())}

    out = {"labels": {n: report(labels[n]) for n in names}}
    pre = args.pretrain.split(",")
    runs = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        pred = RankPredictor(bench.space, PredictorConfig(seed=seed, features="onehot+opdist"))
        pred.pretrain(bench.archs, {n: labels[n] for n in pre})
        runs.append(report(pred.score(bench.archs)))
    out["pretrained_ranker_0_labels"] = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]} | {"per_seed": runs}
    out["config"] = {
        "table": args.table, "rows": len(bench.archs), "target": args.target, "num_cols": args.num_cols, "model": args.model,
        "input_shape": args.input_shape, "proxies": names, "pretrain": pre, "seeds": args.seeds, "first_seed": args.first_seed,
        "proxy_seconds": round(proxy_s, 1), "failures": [str(f) for f in proxies.failures],
        "load_average": os.getloadavg()[0],
        "command": "python scripts/own_model_weak_labels.py " + shlex.join(sys.argv[1:] if argv is None else argv),
    }
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    for n, r in out["labels"].items():
        print(f"{n:>10}: tau {r['kendall_tau']:+.3f}  spearman {r['spearman']:+.3f}  ndcg@10 {r['ndcg@10']:.3f}")
    r = out["pretrained_ranker_0_labels"]
    print(f"pretrained ranker, 0 labels: tau {r['kendall_tau']:+.3f}  ndcg@10 {r['ndcg@10']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
