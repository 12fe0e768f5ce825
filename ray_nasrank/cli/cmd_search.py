"""``ray-nasrank search``: the end-to-end NAS experiment (see :mod:`ray_nasrank.pipeline`)."""

from __future__ import annotations

import argparse
import os

from . import UsageError

def register(subparsers) -> None:
    p = subparsers.add_parser(
        "search", help="run the whole search: supernet, weak labels, ranker, Tune finalists, report",
        description=(
            "Train a weight-sharing supernet, label a pool of candidate cells with it (a shared Ray "
            "actor), pretrain the learning-to-rank predictor on those weak labels, then let a Ray Tune "
            "search train the predictor's top candidates from scratch, fine-tuning it between rounds. "
            "Ends with the best architecture, its valid/test accuracy and a report under --out. "
            "Re-running with the same --out resumes. Size defaults are DEMO SCALE (a few minutes on "
            "2 CPU cores); scale up with --pool-size 0 --channels 16 --cells-per-stage 5 "
            "--train-size 0 --supernet-epochs 50 --finalist-epochs 50 --budget 100 --device auto."),
    )
    from ray_nasrank.data import DATASETS

    d = {  # the dataclass defaults, read lazily would import torch; these mirror PipelineConfig
        "budget": 8, "rounds": 2, "concurrency": 2, "seed": 0, "pool_size": 200, "train_size": 3000,
        "valid_size": 1000, "test_size": 2000, "channels": 8, "cells_per_stage": 1, "batch_size": 128,
        "supernet_epochs": 1, "finalist_epochs": 2, "ranker_epochs": 30,
    }
    p.add_argument("--out", required=True, help="output folder (created; an existing one is resumed)")
    p.add_argument("--dataset", default="fashion-mnist", choices=list(DATASETS),
                   help="fashion-mnist (default; Debian package dataset-fashion-mnist) or digits (quick CPU run)")
    p.add_argument("--space", default="nb201", choices=["nb201"], help="search space")
    p.add_argument("--budget", type=int, default=d["budget"], help="finalists trained from scratch (default %(default)s)")
    p.add_argument("--rounds", type=int, default=d["rounds"],
                   help="rounds the budget is spent in; the ranker is fine-tuned between rounds (default %(default)s)")
    p.add_argument("--concurrency", type=int, default=d["concurrency"], help="trials at a time (default %(default)s)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default %(default)s)")
    p.add_argument("--address", default=None, help="Ray cluster address (default: start a local Ray)")
    p.add_argument("--seed", type=int, default=d["seed"])
    g = p.add_argument_group("size (demo-scale defaults; 0 = no limit)")
    g.add_argument("--pool-size", type=int, default=d["pool_size"],
                   help="candidate cells with weak labels, one per isomorphism class (0: all 6,466) (default %(default)s)")
    g.add_argument("--train-size", type=int, default=d["train_size"], help="training images (default %(default)s)")
    g.add_argument("--valid-size", type=int, default=d["valid_size"], help="validation images (default %(default)s)")
    g.add_argument("--test-size", type=int, default=d["test_size"], help="test images (default %(default)s)")
    g.add_argument("--channels", type=int, default=d["channels"], help="stem channels C (default %(default)s)")
    g.add_argument("--cells-per-stage", type=int, default=d["cells_per_stage"], help="(default %(default)s)")
    g.add_argument("--batch-size", type=int, default=d["batch_size"], help="(default %(default)s)")
    g.add_argument("--supernet-epochs", type=int, default=d["supernet_epochs"], help="(default %(default)s)")
    g.add_argument("--finalist-epochs", type=int, default=d["finalist_epochs"], help="(default %(default)s)")
    g.add_argument("--ranker-epochs", type=int, default=d["ranker_epochs"],
                   help="ranker pretraining epochs on the weak labels (default %(default)s)")
    p.add_argument("--no-html", action="store_true", help="write the PNG plots only, no HTML page")
    p.add_argument("--no-progress", action="store_true", help="no progress bars even on a terminal")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace):
    from ray_nasrank.pipeline import PipelineConfig

    try:
        return PipelineConfig(
            dataset=args.dataset, space=args.space, budget=args.budget, rounds=args.rounds,
            concurrency=args.concurrency, device=args.device, seed=args.seed, train_size=args.train_size,
            valid_size=args.valid_size, test_size=args.test_size, channels=args.channels,
            cells_per_stage=args.cells_per_stage, batch_size=args.batch_size,
            supernet_epochs=args.supernet_epochs, finalist_epochs=args.finalist_epochs,
            ranker_epochs=args.ranker_epochs, pool_size=args.pool_size, address=args.address,
            progress=False if args.no_progress else None)
    except (ValueError, TypeError) as e:
        raise UsageError(f"ray-nasrank search: {e}") from None


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    cfg = config_from_args(args)
    import torch

    from ray_nasrank.pipeline import run_search

    if cfg.device == "cpu":
        torch.set_num_threads(1)  # the trials use the other cores
    res = run_search(cfg, args.out, report_html=not args.no_html)
    if not res.ran or res.ran == ["report"]:
        print(f"nothing to train: {args.out} already holds this finished search (resumed from its artefacts)")
    print("\n".join(res.summary_lines()))
    return 0
