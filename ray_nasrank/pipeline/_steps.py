"""The pipeline's steps that need no Ray: output folder, data, pool, supernet, ranker, results.

Each step writes one artefact through :mod:`ray_nasrank._io` (atomic), and the runner skips a
step whose artefact already exists, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ray_nasrank._io import atomic_write_bytes, atomic_write_json, check_writable_dir
from ray_nasrank.families import ModelFamily, load_family
from ray_nasrank.spaces import Arch, SearchSpace

from ._config import ConfigMismatchError, PipelineConfig, load_config

__all__ = ["ARTEFACTS", "prepare_out_dir", "load_data_step", "final_data_step", "family_of", "load_family_step",
           "candidate_pool", "save_supernet", "pretrain_ranker", "ranker_config", "assemble_results", "random_draws",
           "METRIC", "MODE"]

#: artefact names inside ``--out``
ARTEFACTS = {
    "config": "config.json",
    "data": "data.json",
    "steps": "steps.json",
    "supernet": "supernet.pt",
    "weak_labels": "weak_labels.parquet",
    "ranker": "ranker.pt",
    "tune": "tune",
    "tune_random": "tune_random",
    "tune_final": "tune_final",
    "plan": "plan.json",
    "costs": "costs.json",
    "results": "results.parquet",
    "rungs": "rungs.parquet",
    "random": "random.parquet",
    "final": "final.parquet",
    "best": "best.json",
    "report": "report",
}
METRIC, MODE = "valid_acc", "max"
#: the config keys of the caps (:mod:`ray_nasrank.pipeline._caps`)
CAP_KEYS = frozenset({"max_params", "max_flops", "max_latency_ms", "latency_batch_size"})
#: artefacts computed from the capped pool: once one exists, other caps are another experiment
AFTER_CAPS = ("plan", "supernet", "weak_labels", "ranker", "tune", "tune_random", "tune_final", "results", "best")


def prepare_out_dir(out: str | os.PathLike, cfg: PipelineConfig) -> Path:
    """Check ``out`` is writable, then write ``config.json`` or check it matches ``cfg``.

    Raises :class:`ConfigMismatchError` naming every differing key when ``out`` holds another
    experiment (runtime keys such as ``address`` or ``concurrency`` may differ, and the caps as
    long as nothing was computed from the capped pool yet: a refused cap can be corrected).
    """
    out = check_writable_dir(out)
    path = out / ARTEFACTS["config"]
    if path.is_file():
        old = load_config(path)
        diff = old.differences(cfg)
        if diff and set(diff) <= CAP_KEYS and not any((out / ARTEFACTS[k]).exists() for k in AFTER_CAPS):
            # only the caps differ and nothing was computed with the old ones yet (e.g. a cap that
            # was refused): the run starts over with the new caps
            atomic_write_json(path, cfg.to_dict())
            diff = {}
        if diff:
            detail = ", ".join(f"{k}: saved {a!r} vs now {b!r}" for k, (a, b) in sorted(diff.items()))
            raise ConfigMismatchError(
                f"{str(out)!r} holds an experiment with another configuration ({detail}); "
                f"rerun with the saved settings to resume, or choose another --out")
    else:
        atomic_write_json(path, cfg.to_dict())
    return out


def load_data_step(cfg: PipelineConfig, out: Path, device: str = "cpu"):
    """The search-fidelity and full-fidelity splits; records them in ``data.json``.

    A resumed run re-reads the source and refuses to go on when the data's fingerprint differs
    from the recorded one (the earlier steps were computed on other data).
    """
    from ray_nasrank.data_sources import describe

    raw = _read(cfg, out)
    search, final = _split(cfg, raw, False, device), _split(cfg, raw, True, device)
    info = describe(raw, {"search": search, "final": final}, cfg.seed)
    path = out / ARTEFACTS["data"]
    if not path.is_file():
        atomic_write_json(path, info)
    return search, final


def final_data_step(cfg: PipelineConfig, out: Path, device: str = "cpu"):
    """The full-fidelity splits again, for the retraining: the same source, seed and limits give
    the same splits (the fingerprint is checked against ``data.json``). The driver reads them
    only now so it does not hold them, or their copy in the object store, through the search."""
    return _split(cfg, _read(cfg, out), True, device)


def _read(cfg: PipelineConfig, out: Path):
    from ray_nasrank.data_sources import read_source

    raw = read_source(cfg.data_source, resize=cfg.final_image_size or None)
    path = out / ARTEFACTS["data"]
    if path.is_file():
        old = read_json(path)
        if old.get("fingerprint") != raw.fingerprint():
            raise ConfigMismatchError(
                f"the data of {cfg.data_source!r} changed since {str(out)!r} was started (fingerprint "
                f"{old.get('fingerprint')} recorded, {raw.fingerprint()} now); restore it or choose another --out")
    return raw


def _split(cfg: PipelineConfig, raw, final: bool, device: str):
    from ray_nasrank.data_sources import make_splits

    lim = cfg.split_limits(final=final)
    if lim["image_size"] is not None and lim["image_size"] >= min(raw.shape[1:]):
        lim["image_size"] = None  # a fidelity never upsamples (8x8 digits stay 8x8)
    return make_splits(raw, seed=cfg.seed, device=device, **lim)


def family_of(cfg: PipelineConfig, in_channels: int, num_classes: int) -> ModelFamily:
    """The model family ``cfg.space`` names, for data of ``in_channels`` channels and
    ``num_classes`` classes, at the network size ``cfg.channels`` and ``cfg.cells_per_stage``
    (for a family whose function takes them)."""
    return load_family(cfg.space, in_channels, num_classes, channels=cfg.channels,
                       cells_per_stage=cfg.cells_per_stage)


def load_family_step(cfg: PipelineConfig, splits, final_splits) -> ModelFamily:
    """The model family ``cfg.space`` names, checked: it must provide weak labels (a supernet,
    proxies or intrinsic labels), and the model of one candidate must run on inputs of both
    fidelities (an error names the config and the shape). The check leaves the caller's random
    state as it was."""
    import torch

    family = family_of(cfg, splits.in_channels, splits.num_classes)
    if not (family.has_supernet or family.has_proxies or family.intrinsic_names):
        from ray_nasrank.families import SpaceError

        raise SpaceError(f"--space {family.spec!r} provides no weak labels to pretrain the ranker on: give it a "
                         "supernet, zero-cost proxies (proxies=None: the default set) or intrinsic labels")
    config = family.config(family.space.sample(cfg.seed))
    with torch.random.fork_rng(devices=[]):
        for fidelity, sp in (("search", splits), ("full", final_splits)):
            family.check_input(config, sp.train.x[:2].float().cpu(), f"the {fidelity}-fidelity inputs")
    return family


def report_space(cfg: PipelineConfig, out: Path) -> SearchSpace:
    """The space the ``arch`` strings of ``out``'s tables belong to (the family is loaded again,
    with the channels and classes ``data.json`` recorded)."""
    info = read_json(out / ARTEFACTS["data"])
    return family_of(cfg, int(info["image_shape"][0]), int(info["num_classes"])).space


def candidate_pool(cfg: PipelineConfig, family: ModelFamily) -> list[Arch]:
    """``cfg.pool_size`` distinct candidates of the family drawn with the seed (``0``: every
    candidate): the family's own pool (NB201: one cell per isomorphism class) or configs drawn
    from its space's prior (:func:`~ray_nasrank.families.sampled_pool`). Whether it holds enough
    candidates for the budget is checked with the other checks before any training
    (:func:`~ray_nasrank.pipeline._prechecks.check_budget`, which also estimates the time).
    """
    return family.candidate_pool(cfg.pool_size, cfg.seed)


def save_supernet(path: Path, sn_config: dict, state_dict: dict, history: dict | None) -> None:
    import io

    import torch

    buf = io.BytesIO()
    torch.save({"config": sn_config, "state_dict": state_dict, "history": history}, buf)
    atomic_write_bytes(path, buf.getvalue())


def random_draws(cfg: PipelineConfig, pool: Sequence[str]) -> list[str]:
    """The random arm's cells: ``budget`` distinct pool cells drawn with the seed (independently
    of what the search picks, so the two arms may share cells)."""
    idx = np.random.default_rng([cfg.seed, 1]).choice(len(pool), size=cfg.budget, replace=False)
    return [pool[int(i)] for i in idx]


def load_supernet_weights(path: Path) -> tuple[dict, dict]:
    import torch

    blob = torch.load(path, map_location="cpu", weights_only=True)
    return blob["config"], blob["state_dict"]


def ranker_config(cfg: PipelineConfig):
    from ray_nasrank.predictor import FineTuneConfig, PredictorConfig, PretrainConfig

    return PredictorConfig(seed=cfg.seed, ensemble=2, pretrain=PretrainConfig(epochs=cfg.ranker_epochs), finetune=FineTuneConfig(epochs=cfg.ranker_fit_epochs))


def pretrain_ranker(cfg: PipelineConfig, weak: pd.DataFrame, path: Path, family: ModelFamily):
    """Pretrain the learning-to-rank predictor on the pool's weak labels and save it.

    The targets are the ``weak_*`` columns (the supernet's label when the family has a supernet,
    its models' zero-cost proxies when it has them) plus the family's intrinsic labels, if any
    (NB201: the cells' params, FLOPs and SynFlow; what NASRank pretrains on by default,
    :func:`ray_nasrank.search.intrinsic_weak`); a name in both is taken from ``weak``.
    """
    from ray_nasrank.predictor import RankPredictor
    from ray_nasrank.search import pretraining_labels

    space = family.space
    archs = [space.from_string(a) for a in weak["arch"]]
    cols = {c: weak[c].to_numpy(dtype=np.float64) for c in weak.columns if c.startswith("weak_")}
    cols = pretraining_labels(space, archs, cols or None, ()) or {}
    cols = {**cols, **{n: v for n, v in family.intrinsic_weak(archs).items() if n not in cols}} or None
    pred = RankPredictor(space, ranker_config(cfg)).pretrain(archs, cols)
    pred.save(path)
    return pred


def round_of(orders: np.ndarray, cfg: PipelineConfig) -> np.ndarray:
    """Round of each training position (1-based ``order``): rounds are consecutive blocks."""
    bounds = np.cumsum(cfg.round_sizes())
    return np.searchsorted(bounds, np.asarray(orders) - 1, side="right")


def assemble_results(cfg: PipelineConfig, trials: pd.DataFrame, weak: pd.DataFrame, ranker,
                     family: ModelFamily) -> pd.DataFrame:
    """The results table (see :mod:`ray_nasrank.report`) from the finished trials.

    ``predicted`` is the ranker's score *before* the arch's round: the ranker pretrained on weak
    labels for round 0, and for round ``r`` that ranker fine-tuned on the true accuracies of
    rounds ``< r`` (what the search knew when it planned round ``r``), so it is never scored on
    its own training labels. ``predicted_prior`` is the pretrained ranker's score for all.
    """
    df = trials.sort_values("order").reset_index(drop=True).copy()
    df["round"] = round_of(df["order"].to_numpy(), cfg)
    archs = [family.space.from_string(a) for a in df["arch"]]
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
    extra = intrinsic_columns(df["arch"].tolist(), family)
    df = df.assign(**extra)
    weak_cols += list(extra)
    first = ["arch", "order", "round", "predicted", "predicted_prior", *weak_cols, METRIC, "test_acc"]
    return df[first + [c for c in df.columns if c not in first]]


def intrinsic_columns(arch_strings: Sequence[str], family: ModelFamily) -> dict[str, np.ndarray]:
    """The family's intrinsic labels the ranker pretrains on (NB201: params, FLOPs, SynFlow) of
    the trained archs, as ``weak_<name>`` columns: the report compares every weak label with the
    truth. ``{}`` for a family without them (its proxies are in the weak-label table already)."""
    vals = family.intrinsic_weak([family.space.from_string(a) for a in arch_strings])
    return {f"weak_{n}": np.asarray(v, dtype=np.float64) for n, v in vals.items()}


def assemble_random(random_trials: pd.DataFrame, weak: pd.DataFrame, family: ModelFamily) -> pd.DataFrame:
    """The random arm's table: like the results table, without ranker scores."""
    weak_cols = [c for c in weak.columns if c.startswith("weak_")]
    df = random_trials.sort_values("order").reset_index(drop=True).merge(weak[["arch", *weak_cols]], on="arch",
                                                                       how="left")
    extra = intrinsic_columns(df["arch"].tolist(), family)
    df = df.assign(**extra)
    weak_cols += list(extra)
    first = ["arch", "order", *weak_cols, METRIC, "test_acc"]
    return df[first + [c for c in df.columns if c not in first]]


def write_best(out: Path, results: pd.DataFrame, final: pd.DataFrame, cfg: PipelineConfig, seconds: dict,
               plan=None, fidelity: dict | None = None, notes: Sequence[str] = (), costs=None,
               random_results: pd.DataFrame | None = None) -> dict:
    """``best.json``: the search's winner (the NASRank arm's row of ``final``) with its
    full-fidelity accuracies (``valid_acc``, ``test_acc``), its search-fidelity accuracy, the
    fidelities actually trained at (``fidelity``), the ``plan`` (a
    :class:`~ray_nasrank.pipeline._budget.Plan`), the random arm's outcome, ``notes`` (a skipped
    retraining, which arm won, what a time budget cut) and the step times. With caps (``costs``,
    a :class:`~ray_nasrank.pipeline._caps.PoolCosts`), ``constraints`` records them, how they
    were measured, and the capped quantities of every training of both arms
    (``random_results``: the random arm's table) and of each arm's winner."""
    mine = final.loc[final["arm"] == "nasrank"].iloc[0]
    best = results.loc[results["arch"] == mine["arch"]].iloc[0]

    def num(v) -> float | None:
        return float(v) if v is not None and np.isfinite(v) else None

    info = {
        "arch": str(mine["arch"]), METRIC: num(mine[METRIC]), "test_acc": num(mine["test_acc"]),
        "search_valid_acc": float(best[METRIC]), "search_test_acc": num(best["test_acc"]),
        "trial_id": str(best.get("trial_id", "")), "found_at_training": int(best["order"]),
        "round": int(best["round"]), "metric": METRIC, "mode": MODE, "space": cfg.space,
        "dataset": cfg.dataset, "data": cfg.data_source, "trainings": int(len(results)),
        "retrained": bool(mine.get("retrained", True)),
        "artefacts": {k: str(out / v) for k, v in ARTEFACTS.items()}, "step_seconds": dict(seconds),
    }
    if fidelity is not None:
        info["fidelity"] = fidelity
    if plan is not None:
        info["plan"] = plan.to_dict()
        info["time_budget_s"] = plan.time_budget_s
    info["notes"] = list(notes)
    rnd = final.loc[final["arm"] == "random"]
    if len(rnd):
        r = rnd.iloc[0]
        info["random_baseline"] = {"arch": str(r["arch"]), METRIC: num(r[METRIC]), "test_acc": num(r["test_acc"]),
                                   "search_valid_acc": num(r["search_valid_acc"]), "trainings": int(len(results))}
    if costs is not None:
        from ._caps import constraints_record

        trained = {"nasrank": [str(a) for a in results["arch"]]}
        if random_results is not None:
            trained["random"] = [str(a) for a in random_results["arch"]]
        info["constraints"] = constraints_record(costs, trained, {str(r["arm"]): str(r["arch"])
                                                                  for _, r in final.iterrows()})
    atomic_write_json(out / ARTEFACTS["best"], info)
    return info


def read_json(path: Path) -> dict:
    with open(path) as f:
        return json.load(f)


def weak_frame(pool: Sequence[Arch], labels: Mapping[str, np.ndarray], space: SearchSpace) -> pd.DataFrame:
    """The weak-label table: ``arch`` (string form), ``iso`` and one ``weak_<name>`` column per label."""
    df = pd.DataFrame({"arch": [space.to_string(a) for a in pool], "iso": [str(space.iso_key(a)) for a in pool]})
    for name, values in labels.items():
        df[f"weak_{name}"] = np.asarray(values, dtype=np.float64)
    return df
