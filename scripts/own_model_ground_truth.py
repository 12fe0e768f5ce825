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
from typing import Any, Callable, Iterator

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


class TableBuild:
    """One table build shared by this script and ``learning_curve_table.py``: the family's seeded
    sample, the rows already in ``out`` (a rerun resumes), the data and this shard's share (a
    plain class: the tests load these scripts as unregistered modules, which dataclasses refuse)."""

    def __init__(self, *, family: ModuleType, space: Any, recipe: dict, out: Path, shard: tuple[int, int],
                 limit: int | None, archs: list, done: set, splits: Any) -> None:
        self.family, self.space, self.recipe, self.out = family, space, recipe, out
        self.shard, self.limit, self.archs, self.done, self.splits = shard, limit, archs, done, splits

    def train_config(self, config: dict, eval_every: int):
        """The TrainConfig of ``config``: the recipe without its data keys, then the family's own."""
        from ray_nasrank.training import TrainConfig

        base = {k: v for k, v in self.recipe.items() if k not in DATA_KEYS}
        return TrainConfig(**{**base, "eval_every": eval_every, **(self.family.train_config(config)
                                                                  if hasattr(self.family, "train_config") else {})})

    def pending(self) -> Iterator[tuple[int, dict, dict]]:
        """``(index in the sample, config, row values)`` of this shard's configs not in the table
        yet, at most ``limit`` of them."""
        space = self.space
        names = [d.name for d in space.decisions]
        i, n = self.shard
        given = 0
        for k, arch in enumerate(self.archs):
            values = row_values(space, arch)
            if k % n != i or tuple(str(values[x]) for x in names) in self.done:
                continue
            if self.limit is not None and given >= self.limit:
                break
            given += 1
            yield k, space.to_config(arch), values

    def append(self, row: dict) -> None:
        """Append ``row`` to the CSV under a lock (shards share the file; the header once)."""
        with self.out.open("a", newline="") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            new = f.seek(0, 2) == 0  # at the end once locked: another shard may have written
            w = csv.DictWriter(f, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(row)


def table_parser(doc: str, family: str, num_configs: int) -> argparse.ArgumentParser:
    """The options both table scripts take (``--family``, ``--num-configs``, ``--sample-seed``,
    ``--shard``, ``--limit``, ``--out``); a script adds its own before parsing."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--family", default=str(REPO / "examples" / family),
                   help=f"the family's .py file (default: examples/{family})")
    p.add_argument("--num-configs", type=int, default=num_configs)
    p.add_argument("--sample-seed", type=int, default=0)
    p.add_argument("--shard", default="0/1")
    p.add_argument("--limit", type=int, default=None, help="train at most this many new configs, then stop")
    p.add_argument("--out", required=True)
    return p


def start_table(args: argparse.Namespace, recipe: dict, script: str, flags: str = "", before: dict | None = None,
                after: Callable[[ModuleType], dict] | None = None) -> TableBuild:
    """Sample the configs, write ``<out>.recipe.json`` (``recipe`` overrides the family's, ``before``
    and ``after(family)``: entries around the sample's, ``flags``: the command's own options),
    read the rows done and load the data.

    ``args`` holds ``family``, ``num_configs``, ``sample_seed``, ``shard``, ``limit`` and ``out``."""
    from ray_nasrank.data import load_dataset

    family = load_family(args.family)
    recipe = {**RECIPE, **getattr(family, "RECIPE", {}), **recipe}
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
        {**recipe, **(before or {}), "num_configs": args.num_configs, "sample_seed": args.sample_seed,
         "sample": f"space().sample_many({args.num_configs}, {args.sample_seed}, unique=True)",
         "family": family_name, **(after(family) if after else {}),
         "command": f"python scripts/{script} --family {family_name} --num-configs {args.num_configs}{flags} "
                    f"--sample-seed {args.sample_seed} --out {args.out}"},
        indent=1) + "\n")
    done = set()
    if out.is_file():
        with out.open() as f:
            done = {tuple(row[k] for k in names) for row in csv.DictReader(f)}
    splits = load_dataset(recipe["dataset"], seed=recipe["seed"], image_size=recipe["image_size"],
                          limit_train=recipe["limit_train"], limit_valid=recipe["limit_valid"],
                          limit_test=recipe["limit_test"])
    return TableBuild(family=family, space=space, recipe=recipe, out=out, shard=(i, n), limit=args.limit, archs=archs, done=done,
                      splits=splits)


def main(argv=None) -> int:
    args = table_parser(__doc__, "cnn_family.py", 240).parse_args(argv)
    torch.set_num_threads(1)
    from ray_nasrank.training import train_model

    build = start_table(args, {}, "own_model_ground_truth.py", after=lambda family: {
        "per_config": "train_config(config)" if hasattr(family, "train_config") else None})
    for k, config, values in build.pending():
        cfg = build.train_config(config, eval_every=0)
        t0, c0 = time.perf_counter(), time.process_time()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(build.recipe["seed"])
            model = build.family.build_model(config)
            # train_model seeds the batch order; dropout masks come from the global RNG
            res = train_model(model, build.splits, cfg)
        row = {**values, "valid_acc": res["valid_acc"], "test_acc": res["test_acc"],
               "params": sum(q.numel() for q in model.parameters()),
               "seconds": round(time.perf_counter() - t0, 2), "cpu_seconds": round(time.process_time() - c0, 2)}
        build.append(row)
        acc = res["test_acc"]
        print(f"[{k}] {config} test_acc={acc:.2f} ({row['seconds']}s, cpu {row['cpu_seconds']}s)"
              + ("" if math.isfinite(acc) else " NON-FINITE"), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
