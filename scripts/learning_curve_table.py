"""Learning-curve table: every config of a family trained from scratch, validated after every epoch.

The multi-fidelity companion of ``scripts/own_model_ground_truth.py`` (same family files, same data
and seeding rules): each row holds the decisions (``inactive`` for an inactive one), then
``valid_acc_1`` ... ``valid_acc_<E>`` (validation accuracy after each epoch of one training of
``E`` epochs with a cosine schedule over all ``E``), ``test_acc`` (after the last epoch),
``diverged_epoch`` (0, or the epoch whose loss became non-finite: that epoch and the later ones
hold 10.0, the chance accuracy of 10 balanced classes, because a diverged model predicts one
class), ``params``, ``seconds`` (wall) and ``cpu_seconds``. ``bench search --fidelity-cols``
reads such a table to replay schedulers (ASHA, Hyperband) at an equal epoch budget.

Rows are appended as they finish (a partial table is usable, a rerun resumes) and ``--shard i/n``
lets n processes share the sample: a row does not depend on which process trained it (one seed for
weights, batch order and dropout masks).

    nice -n 10 python scripts/learning_curve_table.py --family examples/mixed_cnn.py \\
        --num-configs 400 --epochs 9 --shard 0/2 --out results/learning_curves/mixed_cnn_fmnist.csv
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
sys.path.insert(0, str(Path(__file__).resolve().parent))
from own_model_ground_truth import DATA_KEYS, RECIPE, load_family, row_values  # noqa: E402

#: validation accuracy (%) recorded for the epochs of a diverged training
CHANCE_ACC = 10.0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--family", default=str(REPO / "examples" / "mixed_cnn.py"))
    p.add_argument("--num-configs", type=int, default=400)
    p.add_argument("--epochs", type=int, default=9)
    p.add_argument("--sample-seed", type=int, default=0)
    p.add_argument("--shard", default="0/1")
    p.add_argument("--limit", type=int, default=None, help="train at most this many new configs, then stop")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    from ray_nasrank.data import load_dataset
    from ray_nasrank.training import TrainConfig, train_model

    family = load_family(args.family)
    recipe = {**RECIPE, **getattr(family, "RECIPE", {}), "epochs": args.epochs}
    i, n = (int(v) for v in args.shard.split("/"))
    space = family.space()
    names = [d.name for d in space.decisions]
    archs = space.sample_many(args.num_configs, args.sample_seed, unique=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        family_name = str(Path(args.family).resolve().relative_to(REPO))
    except ValueError:
        family_name = str(args.family)
    out.with_suffix(".recipe.json").write_text(json.dumps(
        {**recipe, "eval_every": 1, "num_configs": args.num_configs, "sample_seed": args.sample_seed,
         "sample": f"space().sample_many({args.num_configs}, {args.sample_seed}, unique=True)",
         "family": family_name, "diverged": f"valid_acc {CHANCE_ACC} from the diverged epoch on",
         "command": f"python scripts/learning_curve_table.py --family {family_name} --num-configs "
                    f"{args.num_configs} --epochs {args.epochs} --sample-seed {args.sample_seed} --out {args.out}"},
        indent=1) + "\n")
    done = set()
    if out.is_file():
        with out.open() as f:
            done = {tuple(row[k] for k in names) for row in csv.DictReader(f)}
    splits = load_dataset(recipe["dataset"], seed=recipe["seed"], image_size=recipe["image_size"],
                          limit_train=recipe["limit_train"], limit_valid=recipe["limit_valid"],
                          limit_test=recipe["limit_test"])
    base = {k: v for k, v in recipe.items() if k not in DATA_KEYS}
    trained = 0
    for k, arch in enumerate(archs):
        values = row_values(space, arch)
        if k % n != i or tuple(str(values[x]) for x in names) in done:
            continue
        if args.limit is not None and trained >= args.limit:
            break
        config = space.to_config(arch)
        cfg = TrainConfig(**{**base, "eval_every": 1, **(family.train_config(config)
                                                         if hasattr(family, "train_config") else {})})
        curve: list[float] = []
        t0, c0 = time.perf_counter(), time.process_time()
        diverged = 0
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(recipe["seed"])
            model = family.build_model(config)
            try:
                res = train_model(model, splits, cfg, report=lambda e, m: curve.append(float(m["valid_acc"])))
                test_acc = float(res["test_acc"])
            except FloatingPointError:
                diverged = len(curve) + 1
                test_acc = CHANCE_ACC
        curve += [CHANCE_ACC] * (args.epochs - len(curve))
        row = {**values, **{f"valid_acc_{e + 1}": round(a, 3) for e, a in enumerate(curve)},
               "test_acc": round(test_acc, 3), "diverged_epoch": diverged,
               "params": sum(q.numel() for q in model.parameters()),
               "seconds": round(time.perf_counter() - t0, 2), "cpu_seconds": round(time.process_time() - c0, 2)}
        with out.open("a", newline="") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            new = f.seek(0, 2) == 0  # at the end once locked: another shard may have written
            w = csv.DictWriter(f, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(row)
        trained += 1
        print(f"[{k}] {config} curve={[round(a, 1) for a in curve]} test={test_acc:.2f} "
              f"(cpu {row['cpu_seconds']}s){' DIVERGED' if diverged else ''}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
