"""Can a few labels tell which weak label has the best top? (issue 14's single-column cells)

For each label count, draw random labelled subsets of a table (as ``bench ranking`` does), score
every weak column on the labels with the predictor's own validation criterion
(:func:`ray_nasrank.predictor.blend.validation_score`: Kendall tau plus top-heavy NDCG), take the
column that validates best, and report how often each column is taken and the NDCG@50 / tau over
the whole table of the taken column, next to the best column's (chosen knowing the answers).
Also the number of labelled rows that fall in the table's true top 50, which is all any
label-driven rule can read about the top that NDCG@50 measures.

    python scripts/column_choice.py --table ../shared/data/nb201/nb201_zc_cifar10.parquet \
        --target val_acc --weak synflow,nwot,jacov,snip --out results/ranking/column_choice_zc.json
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from ray_nasrank._io import atomic_write_json
from ray_nasrank.benchmarks import RankingBenchConfig, table_weak_labels, weak_baseline_scores
from ray_nasrank.metrics import ranking_report
from ray_nasrank.predictor.blend import validation_score


def column_choice(y: np.ndarray, weak: dict[str, np.ndarray], labels: list[int], draws: int, seed: int) -> dict:
    """Per label count: how often each column validates best, and what taking it costs on the whole table."""
    # each column alone as bench ranking's weak_single reads it (missing rows last)
    cols = {name: weak_baseline_scores({name: c}) for name, c in weak.items()}
    whole = {name: ranking_report(y, c, ks=(50,)) for name, c in cols.items()}
    top50 = np.argsort(-y, kind="stable")[:50]
    out = {"columns": {n: {"ndcg@50": float(r["ndcg@50"]), "kendall_tau": float(r["kendall_tau"])}
                       for n, r in whole.items()}, "labels": {}}
    rng = np.random.default_rng(seed)
    for n in labels:
        taken = {name: 0 for name in cols}
        ndcg, tau, in_top = [], [], []
        for _ in range(draws):
            idx = rng.choice(y.size, size=n, replace=False)
            val = {name: validation_score(y[idx], c[idx]) for name, c in cols.items()}
            best = max(val, key=val.get)
            taken[best] += 1
            ndcg.append(whole[best]["ndcg@50"])
            tau.append(whole[best]["kendall_tau"])
            in_top.append(np.isin(idx, top50).sum())
        out["labels"][str(n)] = {
            "taken_share": {k: v / draws for k, v in taken.items()},
            "taken_ndcg@50": float(np.mean(ndcg)), "taken_kendall_tau": float(np.mean(tau)),
            "labels_in_true_top50": float(np.mean(in_top)),
        }
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--table", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--mode", choices=("max", "min"), default="max", help="whether higher or lower target is better")
    ap.add_argument("--weak", default="", help="comma-separated weak-label columns")
    ap.add_argument("--intrinsic", default="", help="NB201's own params,flops,synflow (as bench ranking)")
    ap.add_argument("--space", default="nb201")
    ap.add_argument("--arch-col", default="arch")
    ap.add_argument("--labels", default="10,20,50,100")
    ap.add_argument("--draws", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    cfg = RankingBenchConfig(table=a.table, target=a.target, mode=a.mode, space=a.space, arch_col=a.arch_col,
                             weak=[w for w in a.weak.split(",") if w],
                             intrinsic=[w for w in a.intrinsic.split(",") if w])
    bench = cfg.load_table()
    weak = table_weak_labels(cfg, bench)
    sign = 1.0 if bench.mode == "max" else -1.0
    # weak columns run in the target's direction (as in bench ranking): flip both for a 'min' target
    res = column_choice(sign * np.asarray(bench.targets, dtype=np.float64), {k: sign * v for k, v in weak.items()},
                        [int(x) for x in a.labels.split(",")], a.draws, a.seed)
    res["command"] = "python scripts/column_choice.py " + " ".join(sys.argv[1:] if argv is None else argv)
    atomic_write_json(a.out, res)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
