"""Does a supernet weak label help the pretrained ranker on a ground truth? (0 labels, and a table for few labels)

Joins the ground truth (``arch``, ``test_acc``) with the supernet weak labels of one
``ray-nasrank bench supernet`` run (its ``weak_labels.parquet``: ``arch``, ``weak_acc``) into a
column ``supernet``, adds NB201's intrinsic labels (``--intrinsic``, default
``params,flops,synflow``), and writes to ``--out`` (JSON):

* every label alone: Kendall tau, Spearman, NDCG@10 against the target on the ground-truth cells;
* the learning-to-rank predictor pretrained, without a single true label, on the intrinsic labels
  alone and on the intrinsic labels plus ``supernet`` (seeds 0..``--seeds``-1, which change the
  predictor's initialisation only): per seed and the mean.

``--table-out`` writes the joined table (CSV), the input of ``ray-nasrank bench ranking`` for
the few-label comparison (``--weak supernet --intrinsic params,flops,synflow`` against
``--intrinsic params,flops,synflow``)::

    python scripts/supernet_ranker.py --ground-truth results/ground_truth/gt_fashion_mnist.csv \\
        --weak results/supernet/cpu15/weak_labels.parquet --out results/supernet/cpu15/ranker_0_labels.json \\
        --table-out results/supernet/cpu15/gt_with_supernet.csv
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys


def joined_table(ground_truth: str, weak: str, target: str = "test_acc", label: str = "acc"):
    """The ground truth with a ``supernet`` column: the weak label of each cell, ``weak_acc``
    (``label="acc"``) or minus ``weak_loss`` (``label="loss"``; higher is better either way).

    Raises:
        ValueError: a missing column, or a ground-truth cell without a weak label (named).
    """
    import pandas as pd

    from ray_nasrank.spaces import NB201Space

    space = NB201Space()
    gt = pd.read_csv(ground_truth)
    labels = pd.read_parquet(weak) if str(weak).endswith(".parquet") else pd.read_csv(weak)
    column = {"acc": "weak_acc", "loss": "weak_loss"}[label]
    for frame, path, cols in ((gt, ground_truth, ("arch", target)), (labels, weak, ("arch", column))):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise ValueError(f"{path!r} has no column(s) {missing}; columns: {list(frame.columns)}")
    # both sides in the canonical string form, so spelling differences cannot drop a row
    sign = -1.0 if label == "loss" else 1.0
    lookup = dict(zip((space.to_string(space.validate(a)) for a in labels["arch"]), sign * labels[column]))
    keys = [space.to_string(space.validate(a)) for a in gt["arch"]]
    absent = [k for k in keys if k not in lookup]
    if absent:
        raise ValueError(f"{len(absent)} ground-truth cell(s) have no weak label in {weak!r}, e.g. {absent[0]!r}")
    out = gt.copy()
    out["arch"] = keys
    out["supernet"] = [float(lookup[k]) for k in keys]
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ground-truth", required=True, help="CSV with arch and the target column")
    p.add_argument("--weak", required=True, help="weak_labels.parquet (or CSV) of a bench supernet run")
    p.add_argument("--target", default="test_acc")
    p.add_argument("--label", choices=("acc", "loss"), default="acc",
                   help="the supernet label: weak_acc, or minus weak_loss (the mean cross-entropy)")
    p.add_argument("--intrinsic", default="params,flops,synflow")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument("--table-out", help="also write the joined table (CSV) for bench ranking")
    args = p.parse_args(argv)

    import numpy as np
    import torch

    from ray_nasrank.metrics import ranking_report
    from ray_nasrank.predictor import PredictorConfig, RankPredictor
    from ray_nasrank.search import intrinsic_weak
    from ray_nasrank.spaces import NB201Space

    torch.set_num_threads(1)
    space = NB201Space()
    table = joined_table(args.ground_truth, args.weak, args.target, args.label)
    if args.table_out:
        table.to_csv(args.table_out, index=False)
    archs = [space.from_string(a) for a in table["arch"]]
    y = table[args.target].to_numpy(dtype=float)
    names = [n for n in args.intrinsic.split(",") if n]
    labels = {k: np.asarray(v, dtype=float) for k, v in intrinsic_weak(space, archs, tuple(names)).items()}
    labels["supernet"] = table["supernet"].to_numpy(dtype=float)

    def report(score):
        score = np.asarray(score, dtype=float)
        ok = np.isfinite(score)
        # a cell without a value (e.g. SynFlow of a cell cut off from its input) ranks last
        filled = np.where(ok, score, np.nanmin(score[ok]) - 1.0)
        return {k: float(v) for k, v in ranking_report(y, filled, ks=(10,)).items()} | {"missing": int((~ok).sum())}

    out: dict = {"labels": {k: report(v) for k, v in labels.items()}, "rankers_0_labels": {}}
    for name, cols in (("intrinsic", names), ("intrinsic+supernet", names + ["supernet"])):
        runs = []
        for seed in range(args.seeds):
            pred = RankPredictor(space, PredictorConfig(seed=seed, features="onehot+opdist"))
            pred.pretrain(archs, {c: labels[c] for c in cols})
            runs.append(report(pred.score(archs)))
        out["rankers_0_labels"][name] = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]} | {
            "weak": cols, "per_seed": runs}
    out["config"] = {
        "ground_truth": args.ground_truth, "weak": args.weak, "label": args.label, "rows": len(table),
        "target": args.target,
        "seeds": args.seeds, "load_average": os.getloadavg()[0],
        "command": "python scripts/supernet_ranker.py " + shlex.join(sys.argv[1:] if argv is None else argv),
    }
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    for n, r in out["labels"].items():
        print(f"{n:>20}: tau {r['kendall_tau']:+.3f}  spearman {r['spearman']:+.3f}  ndcg@10 {r['ndcg@10']:.3f}")
    for n, r in out["rankers_0_labels"].items():
        print(f"ranker 0 labels on {n:>18}: tau {r['kendall_tau']:+.3f}  ndcg@10 {r['ndcg@10']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
