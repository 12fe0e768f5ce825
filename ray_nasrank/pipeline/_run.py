"""``run_search``: the end-to-end experiment, one resumable step after another."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from ray_nasrank._io import atomic_write_json, atomic_write_parquet, check_writable_dir
from ray_nasrank.progress import console, step

from ._caps import cap_pool, caps_line, caps_of
from ._config import PipelineConfig
from ._prechecks import check_run
from ._rundir import Manifest, RunLock, check_artefacts, tune_records
from ._steps import (
    ARTEFACTS,
    assemble_random,
    assemble_results,
    candidate_pool,
    final_data_step,
    load_data_step,
    load_family_step,
    prepare_out_dir,
    pretrain_ranker,
    random_draws,
    read_json,
    weak_frame,
    write_best,
)

__all__ = ["SearchResult", "run_search"]


@dataclass
class SearchResult:
    """What a finished search found and where its artefacts are.

    Args:
        out: the output folder.
        best: the content of ``best.json`` (winner, its accuracies, timings, random arm).
        results: one row per finalist trained at the search fidelity (``results.parquet``).
        report_html: the report page (``None`` when not written).
        ran: the steps that ran in this call (skipped steps had their artefact already).
    """

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

        def pct(v) -> str:
            return "n/a" if v is None else f"{v:.2f} %"

        fid = b.get("fidelity", {})
        full = _fidelity_words(fid.get("full"))
        retrained = b.get("retrained", True)
        lines = [f"best architecture: {b['arch']}",
                 f"  full fidelity{' (' + full + ')' if full else ''}: valid_acc {pct(b['valid_acc'])}, "
                 f"test_acc {pct(b['test_acc'])}" + ("" if retrained else " (its search training: not retrained)"),
                 f"  search fidelity{' (' + _fidelity_words(fid.get('search')) + ')' if fid.get('search') else ''}: "
                 f"valid_acc {pct(b['search_valid_acc'])} "
                 f"(found at training {b['found_at_training']} of {b['trainings']}, round {b['round']})"]
        plan = b.get("plan")
        if plan and len(plan.get("rungs", ())) > 1:
            sizes = " -> ".join(str(r["configs"]) for r in plan["rungs"])
            lines.append(f"  successive halving: {sizes} candidates per arm over {len(plan['rungs'])} rungs")
        if b.get("time_budget_s"):
            lines.append(f"  time budget {b['time_budget_s']:.0f} s; planned {plan.get('estimated_s') or 0:.0f} s")
        r = b.get("random_baseline")
        if r:
            lines.append(f"random arm ({r['trainings']} random candidates, same recipe): best {r['arch']}, "
                         f"test_acc {pct(r['test_acc'])}")
        if b.get("constraints"):
            lines.append(caps_line(b["constraints"]))
        lines += [f"note: {n}" for n in b.get("notes", ())]
        secs = b.get("step_seconds", {})
        if secs:
            lines.append("step seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in secs.items()))
        lines.append(f"report: {self.report_html if self.report_html else self.out / ARTEFACTS['report']}")
        return lines


def _fidelity_words(f: dict | None) -> str:
    """``"8x8, 1,294 images, 41 epochs"`` of a fidelity in ``best.json`` (empty: none recorded)."""
    if not f:
        return ""
    return f"{f['image_size']}x{f['image_size']}, {f['train_images']:,} images, {f['epochs']} epochs"


def release_memory() -> None:
    """Hand the heap memory freed so far back to the operating system.

    The driver lives for the whole job; glibc keeps freed blocks (the full-fidelity arrays once
    they are in the object store, the ranker refits' thread arenas) in its resident memory
    otherwise. A no-op where ``malloc_trim`` does not exist.
    """
    import contextlib
    import ctypes
    import gc

    gc.collect()
    # no glibc (another libc, macOS): nothing to hand back
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def run_search(cfg: PipelineConfig, out: str | os.PathLike, report_html: bool = True, *,
               clock_start: float | None = None) -> SearchResult:
    """Run the whole loop into ``out``, skipping every step whose artefact exists.

    Steps: ``config.json`` (or a check that it matches ``cfg``), data (``data.json`` records the
    source and splits), supernet trained inside its Ray actor (``supernet.pt``), weak labels of
    the candidate pool from that actor (``weak_labels.parquet``), ranker pretraining
    (``ranker.pt``), the Tune search of finalists trained from scratch at the search fidelity
    (``tune/``), with ``baseline="random"`` the random arm under the same recipe
    (``tune_random/``), the winners retrained at full fidelity (``tune_final/``), then
    ``results.parquet``, ``random.parquet``, ``final.parquet``, ``best.json`` and ``report/``.
    Tune steps resume with ``Tuner.restore``; every step's time goes to ``steps.json`` and
    ``best.json``.

    Args:
        cfg: the experiment configuration.
        out: the output folder (created; an existing one is resumed).
        report_html: also write ``report/index.html``.
        clock_start: the ``time.perf_counter()`` a ``cfg.time_budget`` counts from (default:
            this call; the command line passes its own start, before its imports).

    Returns:
        The :class:`SearchResult`.

    Raises:
        TypeError: ``cfg`` is not a :class:`PipelineConfig`.
        RunDirLockedError: another run is using ``out`` (the message names its pid, host, start
            time and command).
        ConfigMismatchError: ``out`` holds a run with another configuration (the message names
            every differing key).

    Example::

        res = run_search(PipelineConfig(dataset="digits", budget=4), "runs/digits")
        print(res.best_arch, res.best["test_acc"])
    """
    if not isinstance(cfg, PipelineConfig):
        raise TypeError(f"cfg must be a PipelineConfig, got {type(cfg).__name__}")
    out = check_writable_dir(out)
    with RunLock(out):  # one run at a time: a second one is refused at once, naming this one
        return _run_locked(cfg, out, report_html, clock_start)


def _run_locked(cfg: PipelineConfig, out: Path, report_html: bool, clock_start: float | None) -> SearchResult:
    t_start = time.perf_counter()
    t_budget = t_start if clock_start is None else min(clock_start, t_start)
    # a resumed folder's artefacts are checked against the manifest first: a corrupt one is
    # computed again when it can be, else an error names it (nothing unchecked is read)
    manifest = Manifest.open(out, ARTEFACTS)
    check_artefacts(manifest, ARTEFACTS)
    out = prepare_out_dir(out, cfg)  # before any work: unwritable dirs and mismatches fail fast
    manifest.record(ARTEFACTS["config"])
    p = {k: out / v for k, v in ARTEFACTS.items()}
    ran: list[str] = []
    seconds = read_json(p["steps"]) if p["steps"].is_file() else {}

    def record(name: str, secs: float | None) -> None:
        """Add a step's seconds to its total over every call on this folder."""
        if secs is not None:
            seconds[name] = round(float(seconds.get(name, 0.0)) + float(secs), 2)
            atomic_write_json(p["steps"], seconds)
            manifest.record(ARTEFACTS["steps"])

    space = None  # the searched space, once this call has loaded it (the report reads it again otherwise)
    if p["results"].is_file() and p["best"].is_file() and p["final"].is_file():
        results = pd.read_parquet(p["results"])
        best = read_json(p["best"])
    else:
        import torch

        from ray_nasrank.data import resolve_device
        from ray_nasrank.predictor import RankPredictor

        from . import _halving

        # a time budget keeps room for the report, Ray's shutdown and the interpreter's exit
        tail_s = _halving.tail_seconds(t_start - t_budget)
        device = str(resolve_device(cfg.device))
        with step("data", cfg.progress) as s:
            splits, final_splits = load_data_step(cfg, out, device)
            family = load_family_step(cfg, splits, final_splits)
            space = family.space
            manifest.record(ARTEFACTS["data"])
            pool = candidate_pool(cfg, family)
            costs = None
            if caps_of(cfg):  # candidates over a cap leave the pool before anything reads it
                try:
                    pool, costs = cap_pool(cfg, family, pool, tuple(final_splits.train.x.shape[1:]),
                                           int(final_splits.num_classes), device, path=p["costs"])
                finally:  # a refused cap keeps the measured values for the corrected run
                    manifest.record(ARTEFACTS["costs"])
                console(cfg.progress).print(f"caps: {int(len(pool)):,} of the pool's {len(costs.table):,} "
                                            "candidates meet them")
            search_fid, full_fid = _halving.fidelities(cfg, splits, final_splits)
            # a time budget is measured and checked here, before Ray starts
            plan, planned = _halving.plan_step(cfg, out, splits, final_splits, family, pool,
                                               time.perf_counter() - t_budget, tail_s)
            t_planned = time.perf_counter()
            manifest.record(ARTEFACTS["plan"])
            # before any training: logits per class, a batch of data, the budget against the pool
            estimate = check_run(cfg, splits, final_splits, family, pool)
            console(cfg.progress).print(f"estimate: {estimate.describe()}")
            if not p["weak_labels"].is_file():
                pool = _halving.trim_pool(cfg, plan, pool)  # weak labels only for what the budget can use
            del final_splits  # read again for the retraining: not held through the search
            release_memory()
        record("data", s["seconds"])
        run_cfg = _halving.effective_config(cfg, plan, search_fid)
        from . import _ray

        started_ray = _ray.ensure_ray(cfg)
        import ray

        ray_address = ray.get_runtime_context().gcs_address
        try:
            if not p["weak_labels"].is_file():
                if family.has_supernet:
                    what = "supernet and weak labels (supernet actor" + (", zero-cost proxies)" if family.has_proxies
                                                                         else ")")
                elif family.has_proxies:
                    what = "weak labels (zero-cost proxies of the models, Ray tasks)"
                else:
                    what = "weak labels (the space's intrinsic ones only, added at pretraining)"
                with step(what, cfg.progress) as s:
                    labels, sn_seconds = _ray.weak_labels(run_cfg, out, splits, pool, p["supernet"], family)
                    atomic_write_parquet(p["weak_labels"], weak_frame(pool, labels, space))
                    manifest.record(ARTEFACTS["supernet"], ARTEFACTS["weak_labels"])
                ran += (["supernet"] if sn_seconds is not None else []) + ["weak_labels"]
                record("supernet", sn_seconds)
                record("weak_labels", s["seconds"] - (sn_seconds or 0.0))
            weak = pd.read_parquet(p["weak_labels"])
            if costs is not None:  # the feasible pool, also when the weak labels were computed earlier
                weak = weak.loc[weak["arch"].isin(costs.feasible_archs())].reset_index(drop=True)
            pool = [space.from_string(a) for a in weak["arch"]]
            if not p["ranker"].is_file():
                with step("ranker pretraining", cfg.progress) as s:
                    torch.manual_seed(cfg.seed)
                    ranker = pretrain_ranker(cfg, weak, p["ranker"], family)
                    manifest.record(ARTEFACTS["ranker"])
                ran.append("ranker")
                record("ranker", s["seconds"])
            else:
                ranker = RankPredictor.load(p["ranker"])
            if not planned:  # a time budget: the final plan, with the time the start really took
                plan = _halving.replan_step(cfg, out, plan, search_fid, full_fid, len(pool),
                                            time.perf_counter() - t_budget, tail_s,
                                            ahead_s=time.perf_counter() - t_planned)
                manifest.record(ARTEFACTS["plan"])
                run_cfg = _halving.effective_config(cfg, plan, search_fid)
            if _halving.first_rung_is_search(plan, search_fid):
                shared = _ray.share_splits(splits)
            else:  # one rung at the full fidelity: the search trains on the full data
                shared = _ray.share_splits(final_data_step(cfg, out, device))
            del splits
            release_memory()
            deadline = _halving.Deadline(cfg, plan, t_budget, tail_s)
            with step("search (Tune, NASRank)", cfg.progress) as s, tune_records(manifest, ARTEFACTS["tune"]):
                trials = _ray.run_tune(run_cfg, out, shared, pool, weak, ranker, family,
                                       deadline=deadline.until("search"))
            deadline.cut("the NASRank search", len(trials), plan.budget)
            ran.append("tune")
            record("search", s["seconds"])
            release_memory()
            random_trials = None
            if cfg.baseline == "random":
                # as many random candidates as the search trained (fewer when its deadline cut it),
                # with no deadline of their own: the arms stay equal
                draws = random_draws(replace(run_cfg, budget=min(plan.budget, len(trials))), list(weak["arch"]))
                with step("random arm (Tune, same recipe)", cfg.progress) as s, \
                        tune_records(manifest, ARTEFACTS["tune_random"]):
                    random_trials = _ray.run_grid(run_cfg, out, ARTEFACTS["tune_random"], shared, draws, False,
                                                  "random arm", family)
                deadline.cut("the random arm", len(random_trials), len(draws))
                ran.append("random")
                record("random_arm", s["seconds"])
            del shared
            release_memory()
            arms = {"nasrank": trials} if random_trials is None else {"nasrank": trials, "random": random_trials}
            t_rungs = time.perf_counter()
            with tune_records(manifest, *(_halving.rung_name(plan, k) for k in range(1, len(plan.rungs)))):
                tables, trained_at = _halving.run_rungs(run_cfg, out, plan, arms, family, device,
                                                        progress=lambda desc: step(desc, cfg.progress),
                                                        deadline=deadline)
            if len(trained_at) > 1:
                ran.append("final")
                record("final", time.perf_counter() - t_rungs)
        finally:
            if started_ray:
                ray.shutdown()
        results = assemble_results(run_cfg, trials, weak, ranker, family)
        atomic_write_parquet(p["results"], results)
        if random_trials is not None:
            atomic_write_parquet(p["random"], assemble_random(random_trials, weak, family))
        atomic_write_parquet(p["rungs"], _halving.rung_table(tables, trained_at))
        final = _halving.assemble_final(tables, plan)
        atomic_write_parquet(p["final"], final)
        best = write_best(out, results, final, cfg, seconds, plan=plan,
                          fidelity=_halving.fidelity_record(plan, trained_at, final),
                          notes=_halving.arm_notes(final, plan) + deadline.notes, costs=costs,
                          random_results=random_trials)
        best["ray_address"] = ray_address
        atomic_write_json(p["best"], best)
        manifest.record(*(ARTEFACTS[k] for k in ("results", "random", "rungs", "final", "best")))
    html = None
    if ran or not (p["report"] / "index.html").is_file() or not report_html:
        from ray_nasrank.report import build_report

        with step("report", cfg.progress) as s:
            # space None (nothing loaded in this call): the report reads it from the folder's config
            rep = build_report(out, results=results, space=space, html=report_html,
                               artefacts=best.get("artefacts"))
        ran.append("report")
        record("report", s["seconds"])
        html = rep.html
    else:
        html = p["report"] / "index.html"
    if ran and ran != ["report"]:
        this_call = round(time.perf_counter() - t_start, 2)
        seconds["total_this_call"] = this_call
        seconds["total"] = round(float(seconds.get("total", 0.0)) + this_call, 2)
        atomic_write_json(p["steps"], seconds)
        best["step_seconds"] = dict(seconds)
        atomic_write_json(p["best"], best)
        manifest.record(ARTEFACTS["steps"], ARTEFACTS["best"])
    return SearchResult(out=out, best=best, results=results, report_html=html, ran=ran)
