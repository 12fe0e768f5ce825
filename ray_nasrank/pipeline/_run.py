"""``run_search``: the end-to-end experiment, one resumable step after another."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ray_nasrank._io import atomic_write_parquet
from ray_nasrank.progress import step

from ._config import PipelineConfig
from ._steps import (ARTEFACTS, SPACE, assemble_results, candidate_pool, load_splits, load_supernet_weights,
                     prepare_out_dir, pretrain_ranker, read_json, train_supernet_step, weak_frame, write_best)

__all__ = ["SearchResult", "run_search"]


@dataclass
class SearchResult:
    """What a finished search found and where its artefacts are."""

    out: Path
    best: dict
    results: pd.DataFrame
    report_html: Path | None
    #: steps that ran in this call (skipped steps had their artefact already)
    ran: list[str] = field(default_factory=list)

    @property
    def best_arch(self) -> str:
        return self.best["arch"]

    def summary_lines(self) -> list[str]:
        b = self.best
        test = "n/a" if b.get("test_acc") is None else f"{b['test_acc']:.2f}"
        lines = [f"best architecture: {b['arch']}",
                 f"  valid_acc {b['valid_acc']:.2f} %, test_acc {test} % "
                 f"(found at training {b['found_at_training']} of {b['trainings']}, round {b['round']})",
                 f"report: {self.report_html if self.report_html else self.out / ARTEFACTS['report']}"]
        lines += [f"  {name}: {path}" for name, path in b["artefacts"].items()]
        return lines


def run_search(cfg: PipelineConfig, out: str | os.PathLike, report_html: bool = True) -> SearchResult:
    """Run the whole loop into ``out``, skipping every step whose artefact exists.

    Steps: ``config.json`` (or a check that it matches ``cfg``), supernet (``supernet.pt``),
    weak labels of the candidate pool from a supernet actor (``weak_labels.parquet``), ranker
    pretraining (``ranker.pt``), the Tune search of finalists trained from scratch (``tune/``,
    resumed with ``Tuner.restore``), ``results.parquet``, ``best.json`` and ``report/``.

    Example::

        res = run_search(PipelineConfig(dataset="digits", budget=4), "runs/digits")
        print(res.best_arch, res.best["valid_acc"])
    """
    if not isinstance(cfg, PipelineConfig):
        raise TypeError(f"cfg must be a PipelineConfig, got {type(cfg).__name__}")
    out = prepare_out_dir(out, cfg)  # before any work: unwritable dirs and mismatches fail fast
    p = {k: out / v for k, v in ARTEFACTS.items()}
    ran: list[str] = []
    seconds: dict[str, float] = {}
    if p["results"].is_file() and p["best"].is_file():
        results = pd.read_parquet(p["results"])
        best = read_json(p["best"])
    else:
        import torch

        from ray_nasrank.data import resolve_device
        from ray_nasrank.predictor import RankPredictor

        device = str(resolve_device(cfg.device))
        with step("data", cfg.progress) as s:
            splits = load_splits(cfg, device)
            pool = candidate_pool(cfg)
        seconds["data"] = s["seconds"]
        if not p["supernet"].is_file():
            with step("supernet training", cfg.progress) as s:
                train_supernet_step(cfg, splits, p["supernet"])
            ran.append("supernet")
            seconds["supernet"] = s["seconds"]
        from . import _ray

        started_ray = _ray.ensure_ray(cfg)
        try:
            if not p["weak_labels"].is_file():
                with step("weak labels", cfg.progress) as s:
                    sn_config, state = load_supernet_weights(p["supernet"])
                    labels = _ray.weak_label_sweep(cfg, out, pool, sn_config, state)
                    atomic_write_parquet(p["weak_labels"], weak_frame(pool, labels))
                ran.append("weak_labels")
                seconds["weak_labels"] = s["seconds"]
            weak = pd.read_parquet(p["weak_labels"])
            pool = [SPACE.from_string(a) for a in weak["arch"]]
            if not p["ranker"].is_file():
                with step("ranker pretraining", cfg.progress) as s:
                    torch.manual_seed(cfg.seed)
                    ranker = pretrain_ranker(cfg, weak, p["ranker"])
                ran.append("ranker")
                seconds["ranker"] = s["seconds"]
            else:
                ranker = RankPredictor.load(p["ranker"])
            with step("search (Tune)", cfg.progress) as s:
                trials = _ray.run_tune(cfg, out, splits, pool, weak, ranker)
            ran.append("tune")
            seconds["tune"] = s["seconds"]
        finally:
            if started_ray:
                import ray

                ray.shutdown()
        results = assemble_results(cfg, trials, weak, ranker)
        atomic_write_parquet(p["results"], results)
        best = write_best(out, results, cfg, seconds)
    html = None
    if ran or not (p["report"] / "index.html").is_file() or not report_html:
        from ray_nasrank.report import build_report

        with step("report", cfg.progress):
            rep = build_report(out, results=results, space=SPACE, html=report_html,
                               artefacts=best.get("artefacts"))
        ran.append("report")
        html = rep.html
    else:
        html = p["report"] / "index.html"
    return SearchResult(out=out, best=best, results=results, report_html=html, ran=ran)
