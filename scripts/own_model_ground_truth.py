"""Ground truth for a user's own model family: configs trained from scratch by the package.

Samples ``--num-configs`` distinct configs of ``examples/cnn_family.py`` (seeded), trains each
stand-alone model with :func:`ray_nasrank.training.train_model` on a Fashion-MNIST subset and
appends one CSV row per config (its choices by label, ``valid_acc``, ``test_acc``, ``params``,
``seconds``). Rerunning resumes; ``--shard i/n`` lets n processes share the sample (each row
is the same whichever process trains it: one seed for weights, data and batch order).

    python scripts/own_model_ground_truth.py --num-configs 240 --shard 0/2 --out results/own_model/cnn_fmnist.csv
"""

from __future__ import annotations

import argparse
import csv
import fcntl
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples"))

RECIPE = {"dataset": "fashion-mnist", "image_size": 12, "limit_train": 3000, "limit_valid": 1000,
          "limit_test": 3000, "epochs": 3, "batch_size": 256, "lr": 0.1, "bn_recalibrate": 4, "seed": 0}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num-configs", type=int, default=240)
    p.add_argument("--sample-seed", type=int, default=0)
    p.add_argument("--shard", default="0/1")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    from cnn_family import build_model, family

    from ray_nasrank.data import load_dataset
    from ray_nasrank.training import TrainConfig, train_model

    i, n = (int(v) for v in args.shard.split("/"))
    sn = family()
    labels = list(sn.labels)
    archs = sn.space.sample_many(args.num_configs, args.sample_seed, unique=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    (out.with_suffix(".recipe.json")).write_text(json.dumps(
        {**RECIPE, "num_configs": args.num_configs, "sample_seed": args.sample_seed,
         "sample": f"family().space.sample_many({args.num_configs}, {args.sample_seed}, unique=True)",
         "family": "examples/cnn_family.py"}, indent=1) + "\n")
    done = set()
    if out.is_file():
        with out.open() as f:
            done = {tuple(row[k] for k in labels) for row in csv.DictReader(f)}
    splits = load_dataset(RECIPE["dataset"], seed=RECIPE["seed"], image_size=RECIPE["image_size"],
                          limit_train=RECIPE["limit_train"], limit_valid=RECIPE["limit_valid"],
                          limit_test=RECIPE["limit_test"])
    cfg = TrainConfig(epochs=RECIPE["epochs"], batch_size=RECIPE["batch_size"], lr=RECIPE["lr"],
                      bn_recalibrate=RECIPE["bn_recalibrate"], eval_every=0, seed=RECIPE["seed"])
    for k, arch in enumerate(archs):
        config = sn.space.to_config(arch)
        if k % n != i or tuple(str(config[x]) for x in labels) in done:
            continue
        t0 = time.perf_counter()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RECIPE["seed"])
            model = build_model(config)
        res = train_model(model, splits, cfg)
        row = {**config, "valid_acc": res["valid_acc"], "test_acc": res["test_acc"],
               "params": sum(q.numel() for q in model.parameters()), "seconds": round(time.perf_counter() - t0, 2)}
        with out.open("a", newline="") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            new = f.tell() == 0
            w = csv.DictWriter(f, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(row)
        print(f"[{k}] {config} test_acc={res['test_acc']:.2f} ({row['seconds']}s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
