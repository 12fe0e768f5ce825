#!/usr/bin/env python
"""Ground truth: train random NB201 cells from scratch and record their accuracies.

Samples ``--num-archs`` distinct isomorphism classes of NB201 (``NB201Space().sample_many`` with
``unique=True``, over-drawn and de-duplicated by ``iso_key``), trains each with one fixed small
recipe (``ray_nasrank.training``) and rewrites the CSV atomically after every arch, so the run can
be stopped and resumed (archs already in the CSV are skipped). ``--shard I/K`` lets K processes
share one sample (process I trains archs I, I+K, ...); they append to the same CSV under a file
lock.

Recipe (defaults; see docs/benchmarks/ground_truth.md): Fashion-MNIST resized to 12x12, 3,000
training images, 1,000 validation images carved from the official training set, 3,000 official
test images; NB201 macro with C=8 and one cell per stage; 3 epochs, batch 256, SGD (Nesterov,
momentum 0.9) lr 0.1, weight decay 5e-4, per-step cosine schedule, grad clip 5, no augmentation,
BN statistics recomputed over 4 training batches before evaluation;
seed 0 for data, weights and batch order; one CPU thread.

    python scripts/ground_truth.py --dataset fashion-mnist --num-archs 100 --seed 0 \
        --out results/ground_truth/gt_fashion_mnist.csv
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import sys
import time
from pathlib import Path


def sample_archs(n: int, seed: int) -> list[tuple[str, ...]]:
    """``n`` random archs from ``n`` distinct isomorphism classes (deterministic in ``seed``)."""
    import numpy as np

    from ray_nasrank.spaces import NB201Space

    space = NB201Space()
    rng = np.random.default_rng(seed)
    # over-draw: about 41 % of the 15,625 cells share a class with another cell
    pool = space.sample_many(min(space.size, 3 * n), rng, unique=True)
    seen, out = set(), []
    for a in pool:
        k = space.iso_key(a)
        if k not in seen:
            seen.add(k)
            out.append(a)
        if len(out) == n:
            return out
    raise ValueError(f"could not draw {n} distinct isomorphism classes")


def check(csv: Path, nb201: str | None = None) -> dict:
    """Sanity figures of a ground-truth CSV: spread, 'none'-heavy cells, agreement with NB201."""
    import numpy as np
    import pandas as pd

    from ray_nasrank.benchmarks import find_shared_data
    from ray_nasrank.metrics import kendall_tau, spearman
    from ray_nasrank.spaces import NB201Space

    space = NB201Space()
    gt = pd.read_csv(csv)
    archs = [space.from_string(a) for a in gt["arch"]]
    n_none = np.array([a.count("none") for a in archs])
    connected = np.array([space.is_connected(a) for a in archs])
    rep = {
        "csv": str(csv),
        "num_archs": len(gt),
        "distinct_iso_classes": len({space.iso_key(a) for a in archs}),
        "disconnected": int((~connected).sum()),
        "test_acc": gt["test_acc"].describe().round(3).to_dict(),
        "valid_acc": gt["valid_acc"].describe().round(3).to_dict(),
        "kendall_valid_vs_test": kendall_tau(gt["test_acc"], gt["valid_acc"]),
        "mean_test_acc_by_num_none": {int(k): round(float(v), 3) for k, v in
                                      gt.groupby(n_none)["test_acc"].mean().items()},
        "spearman_test_acc_vs_num_none": spearman(gt["test_acc"], n_none),  # < 0: none-heavy worse
        "kendall_test_acc_vs_params": kendall_tau(gt["test_acc"], gt["params"]),
        "seconds_per_arch": gt["seconds"].describe().round(2).to_dict(),
    }
    path = nb201 or find_shared_data("nb201/nb201_cifar10.parquet")
    if path is not None:
        ref = pd.read_parquet(path, columns=["arch", "test_acc"]).set_index("arch")["test_acc"]
        ref_acc = ref.loc[gt["arch"]].to_numpy()
        rep["nb201_table"] = str(path)
        rep["kendall_vs_nb201_cifar10_test_acc"] = kendall_tau(ref_acc, gt["test_acc"])
        rep["spearman_vs_nb201_cifar10_test_acc"] = spearman(ref_acc, gt["test_acc"])
        rep["kendall_valid_vs_nb201_cifar10_test_acc"] = kendall_tau(ref_acc, gt["valid_acc"])
        if connected.sum() > 2:
            rep["kendall_vs_nb201_connected_only"] = kendall_tau(ref_acc[connected], gt["test_acc"][connected])
    return rep


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="fashion-mnist", choices=["fashion-mnist", "digits"])
    p.add_argument("--root", default=None, help="folder of the Fashion-MNIST IDX files")
    p.add_argument("--num-archs", type=int, default=100)
    p.add_argument("--seed", type=int, default=0, help="seed of the arch sample, data split and training")
    p.add_argument("--out", required=True)
    p.add_argument("--image-size", type=int, default=12)
    p.add_argument("--limit-train", type=int, default=3000)
    p.add_argument("--limit-valid", type=int, default=1000)
    p.add_argument("--limit-test", type=int, default=3000)
    p.add_argument("--shard", default="0/1", help="I/K: train every K-th arch starting at I")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--channels", type=int, default=8)
    p.add_argument("--cells-per-stage", type=int, default=1)
    p.add_argument("--bn-recalibrate", type=int, default=4,
                   help="training batches over which BN statistics are recomputed before evaluation")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--check", action="store_true",
                   help="do not train: write sanity figures of --out to <out>.check.json")
    args = p.parse_args(argv)
    if args.check:
        from ray_nasrank._io import atomic_write_json

        rep = check(Path(args.out))
        atomic_write_json(Path(args.out).with_suffix(".check.json"), rep)
        print(json.dumps(rep, indent=2))
        return 0
    if args.num_archs < 1:
        p.error(f"--num-archs must be >= 1, got {args.num_archs}")
    try:
        shard, shards = (int(v) for v in args.shard.split("/"))
        if not 0 <= shard < shards:
            raise ValueError
    except ValueError:
        p.error(f"--shard must be I/K with 0 <= I < K, got {args.shard!r}")

    import pandas as pd
    import torch

    from ray_nasrank._io import atomic_write_json, atomic_write_text
    from ray_nasrank.data import load_dataset
    from ray_nasrank.spaces import NB201Space
    from ray_nasrank.training import TrainConfig, train_arch

    torch.set_num_threads(args.threads)
    space = NB201Space()
    out = Path(args.out)
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, channels=args.channels,
                      cells_per_stage=args.cells_per_stage, seed=args.seed, device=args.device, eval_every=0,
                      bn_recalibrate=args.bn_recalibrate)
    data_kw = dict(root=args.root, seed=args.seed, limit_train=args.limit_train,
                   limit_valid=args.limit_valid, limit_test=args.limit_test, image_size=args.image_size)
    if args.dataset == "digits":
        data_kw.pop("root")
        data_kw["image_size"] = None if args.image_size == 12 else args.image_size
    splits = load_dataset(args.dataset, **data_kw)
    recipe = {"dataset": args.dataset, "splits": [len(splits.train), len(splits.valid), len(splits.test)],
              "image_size": list(splits.image_size), "train_config": cfg.to_dict(),
              "num_archs": args.num_archs, "seed": args.seed, "threads": args.threads,
              "command": "python scripts/ground_truth.py " + " ".join(sys.argv[1:] if argv is None else argv)}
    recipe.pop("command")
    if shard == 0:
        atomic_write_json(out.with_suffix(".recipe.json"), recipe)

    columns = ["arch", "valid_acc", "test_acc", "seconds", "params"]

    @contextlib.contextmanager
    def locked():
        # several shards append to one CSV: read-modify-write under an exclusive lock
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield pd.read_csv(out) if out.is_file() else pd.DataFrame(columns=columns)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    archs = sample_archs(args.num_archs, args.seed)[shard::shards]
    with locked() as done:
        finished = set(done["arch"])
    todo = [a for a in archs if space.to_string(a) not in finished]
    print(f"{splits!r}; shard {shard}/{shards}: {len(archs) - len(todo)} done, {len(todo)} to train -> {out}",
          flush=True)
    t0 = time.perf_counter()
    for i, arch in enumerate(todo, 1):
        res = train_arch(arch, splits, cfg)
        row = {"arch": res["arch"], "valid_acc": res["valid_acc"], "test_acc": res["test_acc"],
               "seconds": round(res["seconds"], 3), "params": res["params"]}
        with locked() as done:
            table = pd.concat([done, pd.DataFrame([row])], ignore_index=True)
            atomic_write_text(out, table.to_csv(index=False))
        el = time.perf_counter() - t0
        print(f"[{i}/{len(todo)}] valid {res['valid_acc']:.2f} test {res['test_acc']:.2f} "
              f"{res['seconds']:.1f}s (eta {el / i * (len(todo) - i) / 60:.1f} min) {res['arch']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
