"""``ray-nasrank search``: the end-to-end NAS experiment (see :mod:`ray_nasrank.pipeline`)."""

from __future__ import annotations

import argparse
import os
import time

from ray_nasrank._checks import ConfigError
from ray_nasrank.pipeline._config import PipelineConfig

from . import UsageError, add_options, options_from_args


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "search", help="run the whole search: supernet, weak labels, ranker, Tune finalists, report",
        description=(
            "Train a weight-sharing supernet inside a Ray actor, label a pool of candidate cells with it, "
            "pretrain the learning-to-rank predictor on those weak labels, then let a Ray Tune search "
            "train the predictor's top candidates from scratch at low fidelity (--image-size, "
            "--train-size, --finalist-epochs), fine-tuning it between rounds; with --baseline random the "
            "same number of random cells is trained under the same recipe. Each arm's best is retrained "
            "at full fidelity (--final-*) and tested; --rungs adds successive-halving rungs in between, "
            "and --time-budget 30m (or seconds, 2h) fits the whole job into that time, from a quick "
            "measurement of training steps. Ends with the best architecture, its test "
            "accuracy, the random arm's, every step's time and a report under --out. Re-running with "
            "the same --out resumes. --space MODULE:FUNCTION searches your own model family instead of NB201 "
            "cells (a ChoiceSupernet or a (param_space, model_fn) pair; docs/howto/own_model_family.md). "
            "--max-params, --max-flops and --max-latency-ms cap each candidate's model (latency measured on this "
            "machine before the search, the method recorded in best.json): candidates over a cap are never "
            "trained (docs/concepts/multi_objective.md). "
            "Defaults fit 2 CPU cores; scale up with --pool-size 0 --channels 16 "
            "--cells-per-stage 5 --image-size 0 --train-size 0 --supernet-epochs 50 --finalist-epochs 50 "
            "--budget 100 --device auto."),
    )
    p.add_argument("--out", required=True, help="output folder (created; an existing one is resumed)")
    add_options(p, PipelineConfig)
    p.add_argument("--no-html", action="store_true", help="write the PNG plots only, no HTML page")
    p.add_argument("--no-progress", action="store_true", help="no progress bars even on a terminal")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> PipelineConfig:
    """The :class:`~ray_nasrank.pipeline.PipelineConfig` of parsed ``search`` arguments."""
    try:
        return options_from_args(PipelineConfig, args, progress=False if args.no_progress else None)
    except ConfigError:
        raise  # names its key; the CLI prints it as a flag
    except (ValueError, TypeError) as e:
        raise UsageError(f"ray-nasrank search: {e}") from None


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()  # a --time-budget counts from here, before the heavy imports
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    # Tune's own console tables repeat what the search's progress bars show; with its classic
    # output engine, verbose=0 is really silent
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    cfg = config_from_args(args)
    import torch

    from ray_nasrank.pipeline import run_search

    if cfg.device == "cpu":
        torch.set_num_threads(1)  # the trials use the other cores
    res = run_search(cfg, args.out, report_html=not args.no_html, clock_start=started)
    if not res.ran or res.ran == ["report"]:
        print(f"nothing to train: {args.out} already holds this finished search (resumed from its artefacts)")
    print("\n".join(res.summary_lines()))
    return 0
