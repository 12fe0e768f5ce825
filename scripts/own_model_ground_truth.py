"""Ground truth for a user's own model family: configs trained from scratch by the package.

A family is a Python file with ``space()`` (a :class:`~ray_nasrank.spaces.SearchSpace`),
``build_model(config)`` and optionally ``train_config(config)`` (the TrainConfig fields a config
decides, e.g. its learning rate) and ``RECIPE`` (overrides of this script's default recipe).
Samples ``--num-configs`` distinct configs of ``space()`` (seeded), trains each stand-alone model
with :func:`ray_nasrank.training.train_model` on a Fashion-MNIST subset and appends one CSV row
per config (every decision by name, ``inactive`` for an inactive one, then ``valid_acc``,
``test_acc``, ``params``, ``seconds`` wall and ``cpu_seconds``). Rows are written as they finish:
a partial table is usable and rerunning resumes. ``--shard i/n`` lets n processes share the
sample (each row is the same whichever process trains it: one seed for weights, data and batch
order).

    python scripts/own_model_ground_truth.py --num-configs 200 --out results/own_model/cnn_fmnist.csv
    python scripts/own_model_ground_truth.py --family examples/mixed_cnn.py --num-configs 320 \\
        --out results/mixed_cnn/fmnist.csv
"""

from __future__ import annotations

import argparse
import csv
import fcntl
import importlib
import json
import math
import sys
import time
from pathlib import Path
from types import ModuleType

import torch

REPO = Path(__file__).resolve().parents[1]

#: the recipe of results/own_model/cnn_fmnist.csv; a family's RECIPE overrides it
RECIPE = {"dataset": "fashion-mnist", "image_size": 12, "limit_train": 3000, "limit_valid": 1000,
          "limit_test": 3000, "epochs": 3, "batch_size": 256, "lr": 0.1, "bn_recalibrate": 4, "seed": 0}
DATA_KEYS = ("dataset", "image_size", "limit_train", "limit_valid", "limit_test")


def load_family(path: str | Path) -> ModuleType:
    """The family module of a ``.py`` file (its folder joins ``sys.path``, as a script's would)."""
    path = Path(path)
    if not path.is_file():
        raise SystemExit(f"--family {str(path)!r}: no such file")
    sys.path.insert(0, str(path.resolve().parent))
    module = importlib.import_module(path.stem)
    for name in ("space", "build_model"):
        if not callable(getattr(module, name, None)):
            raise SystemExit(f"--family {str(path)!r} has no function {name}()")
    return module


def row_values(space, arch) -> dict:
    """``{decision name: value}``, ``"inactive"`` for an inactive decision."""
    return {d.name: ("inactive" if not on else v) for d, v, on in zip(space.decisions, arch, space.active(arch))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--family", default=str(REPO / "examples" / "cnn_family.py"),
                   help="the family's .py file (default: examples/cnn_family.py)")
    p.add_argument("--num-configs", type=int, default=240)
    p.add_argument("--sample-seed", type=int, default=0)
    p.add_argument("--shard", default="0/1")
    p.add_argument("--limit", type=int, default=None, help="train at most this many new configs, then stop")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    from ray_nasrank.data import load_dataset
    from ray_nasrank.training import TrainConfig, train_model

    family = load_family(args.family)
    recipe = {**RECIPE, **getattr(family, "RECIPE", {})}
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
    (out.with_suffix(".recipe.json")).write_text(json.dumps(
        {**recipe, "num_configs": args.num_configs, "sample_seed": args.sample_seed,
         "sample": f"space().sample_many({args.num_configs}, {args.sample_seed}, unique=True)",
         "family": family_name, "per_config": "train_config(config)" if hasattr(family, "train_config") else None,
         "command": f"python scripts/own_model_ground_truth.py --family {family_name} "
                    f"--num-configs {args.num_configs} --sample-seed {args.sample_seed} --out {args.out}"},
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
        cfg = TrainConfig(**{**base, "eval_every": 0, **(family.train_config(config)
                                                         if hasattr(family, "train_config") else {})})
        t0, c0 = time.perf_counter(), time.process_time()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(recipe["seed"])
            model = family.build_model(config)
            # train_model seeds the batch order; dropout masks come from the global RNG
            res = train_model(model, splits, cfg)
        row = {**values, "valid_acc": res["valid_acc"], "test_acc": res["test_acc"],
               "params": sum(q.numel() for q in model.parameters()),
               "seconds": round(time.perf_counter() - t0, 2), "cpu_seconds": round(time.process_time() - c0, 2)}
        with out.open("a", newline="") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            new = f.tell() == 0
            w = csv.DictWriter(f, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(row)
        trained += 1
        acc = res["test_acc"]
        print(f"[{k}] {config} test_acc={acc:.2f} ({row['seconds']}s, cpu {row['cpu_seconds']}s)"
              + ("" if math.isfinite(acc) else " NON-FINITE"), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
