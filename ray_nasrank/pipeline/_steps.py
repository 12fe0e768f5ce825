"""The pipeline's steps that need no Ray: output folder, data, pool, supernet, ranker, results.

Each step writes one artefact through :mod:`ray_nasrank._io` (atomic), and the runner skips a
step whose artefact already exists, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ray_nasrank._io import atomic_write_bytes, atomic_write_json, check_writable_dir
from ray_nasrank.progress import progress
from ray_nasrank.spaces import Arch, NB201Space

from ._config import ConfigMismatchError, PipelineConfig, load_config

__all__ = ["ARTEFACTS", "prepare_out_dir", "load_splits", "candidate_pool", "train_supernet_step",
           "pretrain_ranker", "ranker_config", "assemble_results", "METRIC", "MODE"]

#: artefact names inside ``--out``
ARTEFACTS = {
    "config": "config.json",
    "supernet": "supernet.pt",
    "weak_labels": "weak_labels.parquet",
    "ranker": "ranker.pt",
    "tune": "tune",
    "results": "results.parquet",
    "best": "best.json",
    "report": "report",
}
METRIC, MODE = "valid_acc", "max"
SPACE = NB201Space()


def prepare_out_dir(out: str | os.PathLike, cfg: PipelineConfig) -> Path:
    """Check ``out`` is writable, then write ``config.json`` or check it matches ``cfg``.

    Raises :class:`ConfigMismatchError` naming every differing key when ``out`` holds another
    experiment (runtime keys such as ``address`` or ``concurrency`` may differ).
    """
    out = check_writable_dir(out)
    path = out / ARTEFACTS["config"]
    if path.is_file():
        old = load_config(path)
        diff = old.differences(cfg)
        if diff:
            detail = ", ".join(f"{k}: saved {a!r} vs now {b!r}" for k, (a, b) in sorted(diff.items()))
            raise ConfigMismatchError(
                f"{str(out)!r} holds an experiment with another configuration ({detail}); "
                f"rerun with the saved settings to resume, or choose another --out")
    else:
        atomic_write_json(path, cfg.to_dict())
    return out


def load_splits(cfg: PipelineConfig, device: str = "cpu"):
    from ray_nasrank.data import load_dataset

    return load_dataset(cfg.dataset, seed=cfg.seed, device=device, **cfg.split_limits())


def candidate_pool(cfg: PipelineConfig) -> list[Arch]:
    """``pool_size`` cells of distinct isomorphism classes, drawn with the seed (0: one per class)."""
    from ray_nasrank.supernet import iso_representatives

    reps, _ = iso_representatives(list(SPACE.enumerate()))
    if cfg.pool_size == 0 or cfg.pool_size >= len(reps):
        return reps
    idx = np.sort(np.random.default_rng(cfg.seed).choice(len(reps), size=cfg.pool_size, replace=False))
    return [reps[int(i)] for i in idx]


def supernet_config(cfg: PipelineConfig, splits) -> dict:
    return {"channels": cfg.channels, "cells_per_stage": cfg.cells_per_stage,
            "in_channels": splits.in_channels, "num_classes": splits.num_classes}


def train_supernet_step(cfg: PipelineConfig, splits, path: Path) -> dict:
    """Train a weight-sharing supernet (single-path uniform sampling) and save its weights."""
    import io

    import torch

    from ray_nasrank.nn import NB201Supernet
    from ray_nasrank.supernet.train import SupernetTrainConfig, train_supernet

    sn_cfg = supernet_config(cfg, splits)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        sn = NB201Supernet(**sn_cfg)
    bar = progress(total=cfg.supernet_epochs, desc="supernet epochs", unit="epoch", enabled=cfg.progress)

    def on_epoch(epoch: int, hist: dict) -> None:
        bar.update(1)
        bar.set_postfix(loss=f"{hist['epoch_loss'][-1]:.3f}")

    try:
        hist = train_supernet(sn, splits.train, SupernetTrainConfig(epochs=cfg.supernet_epochs, batch_size=cfg.batch_size,
                                                            lr=cfg.supernet_lr, seed=cfg.seed), on_epoch=on_epoch)
    finally:
        bar.close()
    buf = io.BytesIO()
    torch.save({"config": sn_cfg, "state_dict": {k: v.detach().cpu() for k, v in sn.state_dict().items()},
                "history": hist}, buf)
    atomic_write_bytes(path, buf.getvalue())
    return hist


def load_supernet_weights(path: Path) -> tuple[dict, dict]:
    import torch

    blob = torch.load(path, map_location="cpu", weights_only=True)
    return blob["config"], blob["state_dict"]


def ranker_config(cfg: PipelineConfig):
    from ray_nasrank.predictor import PredictorConfig

    return PredictorConfig(seed=cfg.seed, pretrain_epochs=cfg.ranker_epochs, ensemble=2,
                           fit_epochs=cfg.ranker_fit_epochs)


def pretrain_ranker(cfg: PipelineConfig, weak: pd.DataFrame, path: Path):
    """Pretrain the learning-to-rank predictor on the pool's weak labels and save it.

    The targets are the supernet's weak labels plus the cells' params, FLOPs and SynFlow (the
    intrinsic labels NASRank pretrains on by default, :func:`ray_nasrank.search.intrinsic_weak`).
    """
    from ray_nasrank.predictor import RankPredictor
    from ray_nasrank.search import default_intrinsic, pretraining_labels

    archs = [SPACE.from_string(a) for a in weak["arch"]]
    cols = {c: weak[c].to_numpy(dtype=np.float64) for c in weak.columns if c.startswith("weak_")}
    cols = pretraining_labels(SPACE, archs, cols, default_intrinsic(SPACE))
    pred = RankPredictor(SPACE, ranker_config(cfg)).pretrain(archs, cols)
    pred.save(path)
    return pred


def round_of(orders: np.ndarray, cfg: PipelineConfig) -> np.ndarray:
    """Round of each training position (1-based ``order``): rounds are consecutive blocks."""
    bounds = np.cumsum(cfg.round_sizes())
    return np.searchsorted(bounds, np.asarray(orders) - 1, side="right")


def assemble_results(cfg: PipelineConfig, trials: pd.DataFrame, weak: pd.DataFrame, ranker) -> pd.DataFrame:
    """The results table (see :mod:`ray_nasrank.report`) from the finished trials.

    ``predicted`` is the ranker's score *before* the arch's round: the ranker pretrained on weak
    labels for round 0, and for round ``r`` that ranker fine-tuned on the true accuracies of
    rounds ``< r`` (what the search knew when it planned round ``r``), so it is never scored on
    its own training labels. ``predicted_prior`` is the pretrained ranker's score for all.
    """
    df = trials.sort_values("order").reset_index(drop=True).copy()
    df["round"] = round_of(df["order"].to_numpy(), cfg)
    archs = [SPACE.from_string(a) for a in df["arch"]]
    df["predicted_prior"] = ranker.score(archs)
    pred = df["predicted_prior"].to_numpy(dtype=np.float64).copy()
    y = df[METRIC].to_numpy(dtype=np.float64)
    for r in sorted(set(df["round"]) - {0}):
        known = (df["round"].to_numpy() < r) & np.isfinite(y)
        if known.sum() < 2 or np.ptp(y[known]) == 0:
            continue  # too few labels to fine-tune: the prior stands, as in the search itself
        tuned = ranker.clone().fit([archs[i] for i in np.flatnonzero(known)], y[known], mode=MODE)
        rows = np.flatnonzero(df["round"].to_numpy() == r)
        pred[rows] = tuned.score([archs[i] for i in rows])
    df["predicted"] = pred
    weak_cols = [c for c in weak.columns if c.startswith("weak_")]
    df = df.merge(weak[["arch", *weak_cols]], on="arch", how="left")
    first = ["arch", "order", "round", "predicted", "predicted_prior", *weak_cols, METRIC, "test_acc"]
    return df[first + [c for c in df.columns if c not in first]]


def write_best(out: Path, results: pd.DataFrame, cfg: PipelineConfig, seconds: dict) -> dict:
    from ray_nasrank.report import best_row

    best = best_row(results, METRIC, MODE)
    info = {
        "arch": str(best["arch"]), METRIC: float(best[METRIC]),
        "test_acc": float(best["test_acc"]) if np.isfinite(best["test_acc"]) else None,
        "trial_id": str(best.get("trial_id", "")), "found_at_training": int(best["order"]),
        "round": int(best["round"]), "metric": METRIC, "mode": MODE, "space": cfg.space,
        "dataset": cfg.dataset, "trainings": int(len(results)),
        "artefacts": {k: str(out / v) for k, v in ARTEFACTS.items()}, "step_seconds": seconds,
    }
    atomic_write_json(out / ARTEFACTS["best"], info)
    return info


def read_json(path: Path) -> dict:
    with open(path) as f:
        return json.load(f)


def weak_frame(pool: Sequence[Arch], acc: np.ndarray, loss: np.ndarray | None = None) -> pd.DataFrame:
    df = pd.DataFrame({"arch": [SPACE.to_string(a) for a in pool], "iso": [str(SPACE.iso_key(a)) for a in pool],
                       "weak_supernet": np.asarray(acc, dtype=np.float64)})
    if loss is not None:
        df["weak_supernet_loss_neg"] = -np.asarray(loss, dtype=np.float64)
    return df
