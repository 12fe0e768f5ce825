"""The pipeline's budget steps: the plan (``plan.json``), the rungs of successive halving above
the search, and the final table of each arm's winner.

The plan comes from :mod:`ray_nasrank.pipeline._budget`: the fidelities of the data actually
read (after the adaptive recipe), ``--budget`` / ``--rounds`` / ``--rungs`` or, with
``--time-budget``, what fits in the time from a quick measurement of a few training steps. The
first rung is the Tune search (and the random arm); each rung above trains the best
``1/halving`` of each arm's rung below at a higher fidelity, up to each arm's winner at the full
fidelity (``tune_rung<k>/``, the top one ``tune_final/``). When the search already trains at the
full fidelity, no rung is added: retraining would repeat the training, and ``best.json`` says so.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ray_nasrank._io import atomic_write_json

from ._budget import CostModel, Fidelity, Plan, adapt, epochs_for_steps, measure_step_seconds, plan_fixed, plan_for_time
from ._config import PipelineConfig
from ._steps import ARTEFACTS, METRIC, read_json

__all__ = ["fidelities", "effective_config", "plan_step", "replan_step", "promote", "run_rungs", "assemble_final",
           "arm_notes", "rung_table", "first_rung_is_search", "fidelity_record", "Deadline", "tail_seconds", "trim_pool", "STARTUP_S", "REPORT_S"]

#: fewest seconds reserved for the interpreter's start and exit, outside ``run_search``'s clock
STARTUP_S = 3.0
#: seconds of the report and of shutting Ray down, after the last training
REPORT_S = 8.0


def tail_seconds(imports_s: float) -> float:
    """Seconds a time-budgeted job reserves after its last training: the report and Ray's
    shutdown (``REPORT_S``) and the interpreter's exit, which on a loaded machine takes about as
    long as its imports took (``imports_s``: from the command's start to the job's; measured 17 s
    of imports and 15 s of exit under a load average of 40 on 2 cores), at least ``STARTUP_S``."""
    return REPORT_S + max(STARTUP_S, float(imports_s))
#: seconds of starting Ray, weak labels per pool candidate, and ranker pretraining (estimates on 2 CPUs)
_RAY_START_S, _WEAK_PER_ARCH_S, _RANKER_S = 8.0, 0.06, 4.0


def _fidelity(splits: Any, epochs: int, batch_size: int) -> Fidelity:
    return Fidelity(image_size=max(splits.image_size), train_images=len(splits.train), epochs=epochs,
                    batch_size=batch_size, valid_images=len(splits.valid), test_images=len(splits.test))


def fidelities(cfg: PipelineConfig, splits: Any, final_splits: Any) -> tuple[Fidelity, Fidelity]:
    """The search and full fidelities of the data actually read (a fidelity never upsamples nor
    holds more images than the data has), after the adaptive recipe (``cfg.min_steps``)."""
    return adapt(_fidelity(splits, cfg.finalist_epochs, cfg.batch_size),
                 _fidelity(final_splits, cfg.final_epochs, cfg.batch_size), cfg.min_steps, cfg.halving)


def supernet_epochs(cfg: PipelineConfig, search: Fidelity) -> int:
    """The supernet's epochs under the adaptive recipe: at least ``cfg.min_steps`` steps."""
    return max(cfg.supernet_epochs, epochs_for_steps(search.train_images, cfg.batch_size, cfg.min_steps))


def effective_config(cfg: PipelineConfig, plan: Plan, search: Fidelity) -> PipelineConfig:
    """``cfg`` as the first rung runs it: the plan's budget, rounds and epochs, the adapted
    supernet epochs (``config.json`` keeps what the user asked for)."""
    return replace(cfg, budget=plan.budget, rounds=plan.rounds, finalist_epochs=plan.search.epochs,
                   final_epochs=plan.full.epochs, supernet_epochs=supernet_epochs(cfg, search))


def rung_config(cfg: PipelineConfig, plan: Plan, k: int) -> tuple[PipelineConfig, bool]:
    """The config whose split limits and epochs are rung ``k >= 1``'s fidelity, and whether
    rung ``k`` is the top one: the full fidelity, whose limits are the ``final_*`` ones (its
    trials are run with ``final=True``); a rung below takes the search's validation and test
    limits with its own image size, training images and epochs."""
    fid = plan.rungs[k].fidelity
    if k == len(plan.rungs) - 1:
        return replace(cfg, final_epochs=fid.epochs), True
    # a side at or above the data's own is not resampled (the split never upsamples)
    return replace(cfg, finalist_epochs=fid.epochs, image_size=fid.image_size, train_size=fid.train_images), False


def first_rung_is_search(plan: Plan, search: Fidelity) -> bool:
    """Whether the first rung trains on the search fidelity's data (else on the full one's:
    ``--rungs 1`` trains every candidate at the full fidelity)."""
    s = plan.search
    return (s.image_size, s.train_images) == (search.image_size, search.train_images)


# ------------------------------------------------------------------------------------- the plan
def measure_cost(cfg: PipelineConfig, family: Any, pool: Sequence[Any], splits: Any, final_splits: Any,
                 samples: int = 3) -> CostModel:
    """Seconds per training step on one thread at both fidelities, the median over ``samples``
    pool candidates' models (a few steps each, channels-last as the trials train on CPU)."""
    import torch

    idx = np.random.default_rng([cfg.seed, 2]).choice(len(pool), size=min(samples, len(pool)), replace=False)
    archs = [pool[int(i)] for i in idx]

    def builder(arch):
        conf, x = family.config(arch), splits.train.x[:2].float().cpu()
        return lambda: family.check_input(conf, x, "the search-fidelity inputs")

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a trial trains on one CPU
    try:
        per = {}
        for name, sp in (("search", splits), ("full", final_splits)):
            if name == "full" and final_splits.image_size == splits.image_size:
                per[name] = per["search"]  # the same image size: the same step
                continue
            x = sp.train.x[:cfg.batch_size].float().cpu()
            y = sp.train.y[:cfg.batch_size].cpu()
            if cfg.device == "cpu":
                x = x.contiguous(memory_format=torch.channels_last)
            times = [measure_step_seconds(builder(a), x, y, cfg.batch_size, steps=4, warmup=2) for a in archs]
            per[name] = float(np.median(times))
    finally:
        torch.set_num_threads(threads)
    return CostModel(step_s=per["search"], step_size=max(splits.image_size), full_step_s=per["full"],
                     full_size=max(final_splits.image_size), concurrency=cfg.concurrency,
                     top_threads=top_threads(cfg, final_splits))


#: full-fidelity training data below this many bytes: the winners train side by side, one CPU each
SMALL_DATA_BYTES = 64 * 2 ** 20


def top_threads(cfg: PipelineConfig, final_splits: Any) -> int:
    """Threads of each top-rung training: 1 (the winners side by side) when the full-fidelity
    data is small, so holding it once per trial costs little and a small model is not slowed by
    threads it cannot use; else 0 (one winner at a time on every CPU, one copy in memory)."""
    x = final_splits.train.x
    return 1 if cfg.device == "cpu" and x.element_size() * x.nelement() < SMALL_DATA_BYTES else 0


def overhead_before_search(cfg: PipelineConfig, cost: CostModel, search: Fidelity, pool_size: int) -> float:
    """Estimated seconds from now to the first Tune trial: Ray's start, the supernet (about
    twice a candidate's step per step: it holds every choice), the weak labels and the ranker."""
    sn_steps = supernet_epochs(cfg, search) * search.steps_per_epoch
    return _RAY_START_S + 2.0 * sn_steps * cost.step_s + _WEAK_PER_ARCH_S * pool_size + _RANKER_S


def _max_configs(cfg: PipelineConfig, pool_size: int) -> int:
    return max(1, pool_size // (2 if cfg.baseline == "random" else 1))


def plan_step(cfg: PipelineConfig, out: Path, splits: Any, final_splits: Any, family: Any, pool: Sequence[Any],
              elapsed_s: float, tail_s: float = REPORT_S + STARTUP_S) -> tuple[Plan, bool]:
    """The plan, and whether it is final (saved to ``plan.json``).

    A resumed run reads ``plan.json``. Without a time budget the plan follows ``budget``,
    ``rounds`` and ``rungs`` and is saved at once. With one, the seconds per step are measured
    and a provisional plan is made with the estimated time to the search added to
    ``elapsed_s`` and ``tail_s`` (:func:`tail_seconds`) reserved at the end: a budget that cannot hold the smallest search raises
    :class:`~ray_nasrank.pipeline._budget.BudgetTooSmall` before Ray starts; :func:`replan_step`
    makes the final plan once the search starts.
    """
    path = out / ARTEFACTS["plan"]
    if path.is_file():
        return Plan.from_dict(read_json(path)), True
    search, full = fidelities(cfg, splits, final_splits)
    arms = 2 if cfg.baseline == "random" else 1
    if cfg.time_budget is None:
        plan = plan_fixed(search, full, budget=cfg.budget, rounds=cfg.rounds, rungs=cfg.rungs or 2,
                          halving=cfg.halving, arms=arms)
        atomic_write_json(path, plan.to_dict())
        return plan, True
    from ._budget import parse_duration

    cost = measure_cost(cfg, family, pool, splits, final_splits)
    ahead = overhead_before_search(cfg, cost, search, len(pool))
    plan = plan_for_time(parse_duration(cfg.time_budget), search, full, cost=cost, halving=cfg.halving, arms=arms,
                         overhead_s=elapsed_s + ahead + tail_s,
                         max_configs=_max_configs(cfg, len(pool)), min_rounds=cfg.rounds, rungs=cfg.rungs or None)
    return plan, False


#: candidates in a time-budgeted run's pool per candidate its first rung trains (at least ``MIN_POOL``)
POOL_PER_TRAINING, MIN_POOL = 10, 32


def trim_pool(cfg: PipelineConfig, plan: Plan, pool: Sequence[Any]) -> list[Any]:
    """A time-budgeted run's candidate pool cut to what its plan can use: about
    ``POOL_PER_TRAINING`` candidates per training of the first rung (a seeded subset, in the
    pool's order), so the weak labels of candidates that could never be trained do not eat the
    budget. Without a time budget the pool is ``pool_size``, as asked."""
    keep = max(MIN_POOL, POOL_PER_TRAINING * plan.budget)
    if cfg.time_budget is None or keep >= len(pool):
        return list(pool)
    idx = np.sort(np.random.default_rng([cfg.seed, 3]).choice(len(pool), size=keep, replace=False))
    return [pool[int(i)] for i in idx]


def replan_step(cfg: PipelineConfig, out: Path, plan: Plan, search: Fidelity, full: Fidelity, pool_size: int,
                elapsed_s: float, tail_s: float = REPORT_S + STARTUP_S, ahead_s: float | None = None) -> Plan:
    """The final plan of a time-budgeted run, with the seconds actually spent so far; saved to
    ``plan.json``. ``ahead_s``: the seconds the steps between the first plan and now really
    took; when they took longer than :func:`overhead_before_search` estimated (a loaded
    machine), the overheads of Tune's experiments and trials are scaled by the same factor (at
    most 5). When even the smallest search no longer fits, the smallest one runs (the notes say
    the budget is exceeded)."""
    from ._budget import BudgetTooSmall, parse_duration

    cost = CostModel.from_dict(plan.cost)
    if ahead_s is not None:
        slow = min(5.0, max(1.0, ahead_s / max(1e-9, overhead_before_search(cfg, cost, search, pool_size))))
        cost = replace(cost, experiment_s=cost.experiment_s * slow, trial_s=cost.trial_s * slow)
    seconds = parse_duration(cfg.time_budget)
    arms = 2 if cfg.baseline == "random" else 1
    kw = dict(cost=cost, halving=cfg.halving, arms=arms, max_configs=_max_configs(cfg, pool_size),
              min_rounds=cfg.rounds, rungs=cfg.rungs or None)
    try:
        final = plan_for_time(seconds, search, full, overhead_s=elapsed_s + tail_s, **kw)
    except BudgetTooSmall as e:
        final = plan_for_time(math.ceil(e.minimum_s) + 1, search, full, overhead_s=elapsed_s + tail_s,
                              **kw)
        final = replace(final, time_budget_s=seconds, notes=final.notes + (
            f"the start took {elapsed_s:.0f} s, more than estimated: even the smallest search exceeds the time "
            f"budget of {seconds:.0f} s (about {e.minimum_s:.0f} s needed)",))
    atomic_write_json(out / ARTEFACTS["plan"], final.to_dict())
    return final


# ------------------------------------------------------------------------------------- time limits
class Deadline:
    """The time limits of a time-budgeted job's stages (all ``None`` without a time budget).

    The trainings must end ``tail_s`` (:func:`tail_seconds`) before the budget, counted from
    ``t_start``, runs out. Each stage below the top rung may take
    its estimated share of the time left (:func:`~ray_nasrank.pipeline._budget.stage_limit`), at
    least about two of its trainings; the top rung, the result, is never limited.

    Args:
        cfg: the configuration (``time_budget``).
        plan: the plan, with its estimates.
        t_start: ``time.perf_counter()`` when the job started.
        tail_s: seconds reserved after the last training.
    """

    def __init__(self, cfg: PipelineConfig, plan: Plan, t_start: float, tail_s: float = REPORT_S + STARTUP_S) -> None:
        from ._budget import parse_duration

        self.plan = plan
        self.end = None if cfg.time_budget is None else \
            t_start + parse_duration(cfg.time_budget) - tail_s
        est = [r.estimated_s or 0.0 for r in plan.rungs]
        first = est[0] / max(1, plan.arms)
        #: estimated seconds of each stage: the search, the random arm (if any), the rungs above
        self.stages = {"search": first, **({"random": first} if plan.arms > 1 else {}),
                       **{f"rung{k}": est[k] for k in range(1, len(est))}}
        self.notes: list[str] = []

    def until(self, stage: str) -> float | None:
        """The ``time.time()`` by which ``stage`` should end (``None``: no limit)."""
        limit = self.limit(stage)
        return None if limit is None else time.time() + limit

    def limit(self, stage: str) -> float | None:
        """Seconds ``stage`` may take from now (``None``: no limit)."""
        from ._budget import CostModel, stage_limit

        names = list(self.stages)
        if self.end is None or stage == names[-1] and stage.startswith("rung") or self.plan.cost is None:
            return None
        later = sum(self.stages[n] for n in names[names.index(stage) + 1:])
        cost = CostModel.from_dict(self.plan.cost)
        k = 0 if stage in ("search", "random") else int(stage.removeprefix("rung"))
        floor = cost.experiment_s + 2 * cost.training_s(self.plan.rungs[k].fidelity)
        return stage_limit(self.end - time.perf_counter(), self.stages[stage], later, floor)

    def top_epochs(self, fid: Fidelity, below: pd.DataFrame, below_fid: Fidelity, archs: int, threads: int) -> int:
        """Epochs of the top rung that fit the time left: the planned ones, or fewer when the
        first rung's trainings ran slower than estimated (another job loading the machine) and
        the planned ones would overrun. ``below``: the rung below's table (``train_seconds``)."""
        from ._budget import CostModel

        if self.end is None or self.plan.cost is None:
            return fid.epochs
        cost = CostModel.from_dict(self.plan.cost)
        est = cost.training_s(below_fid) - cost.trial_s
        secs = pd.to_numeric(below.get("train_seconds", pd.Series(dtype=float)), errors="coerce").dropna()
        slow = max(1.0, float(secs.median()) / est) if len(secs) and est > 0 else 1.0
        c = max(1, cost.concurrency)
        waves = math.ceil(archs / c) if threads == 1 else archs
        one_epoch = cost.training_s(replace(fid, epochs=1), threads=threads) - cost.trial_s
        evals = cost.training_s(replace(fid, epochs=1, train_images=1), threads=threads) - cost.trial_s
        per_epoch = max(1e-9, one_epoch - evals)
        room = (self.end - time.perf_counter()) / slow - cost.experiment_s
        fit = int(((room / waves) - cost.trial_s - evals) // per_epoch)
        return int(min(fid.epochs, max(1, fit)))

    def cut(self, stage: str, done: int, planned: int) -> None:
        """Record that the time limit cut ``stage`` to ``done`` of ``planned`` trainings."""
        if done < planned:
            self.notes.append(f"the time budget cut {stage} short: {done} of {planned} planned trainings finished")


# ------------------------------------------------------------------------------------- the rungs
def promote(table: pd.DataFrame, n: int) -> list[str]:
    """The ``n`` best archs of a rung by ``valid_acc`` (failed trainings never; ties: the one
    trained first)."""
    ok = table[np.isfinite(pd.to_numeric(table[METRIC], errors="coerce").to_numpy(dtype=np.float64))]
    if ok.empty:
        raise RuntimeError("every training of this rung failed; nothing to promote (see the trials' errors)")
    order = ok["order"] if "order" in ok.columns else pd.Series(np.arange(len(ok)), index=ok.index)
    ranked = ok.assign(_order=order).sort_values([METRIC, "_order"], ascending=[False, True], kind="stable")
    return [str(a) for a in dict.fromkeys(ranked["arch"])][:n]


def rung_name(plan: Plan, k: int) -> str:
    """The Tune folder of rung ``k >= 1``: ``tune_final`` for the top rung, ``tune_rung<k+1>`` below."""
    return ARTEFACTS["tune_final"] if k == len(plan.rungs) - 1 else f"tune_rung{k + 1}"


def run_rungs(cfg: PipelineConfig, out: Path, plan: Plan, arms: dict[str, pd.DataFrame],
              family: Any, device: str, progress: Any = None,
              deadline: Deadline | None = None) -> tuple[dict[str, list[pd.DataFrame]], dict[int, Fidelity]]:
    """Train the rungs above the first: each arm's best ``plan.rungs[k].configs`` of its rung
    below, at rung ``k``'s fidelity (one Tune grid per rung over both arms' candidates, an arch
    in both arms trained once).

    With a time budget (``deadline``), a rung below the top may be cut short, and the top rung
    trains fewer epochs when the time left no longer holds the planned ones; when that would
    only repeat the rung below's training, it is skipped (``deadline.notes`` say so).

    Returns:
        ``{arm: [rung 0 table, rung 1 table, ...]}`` (each table: the arm's archs of that rung,
        ``arch``, ``valid_acc``, ``test_acc``, ..., ``rung``) and ``{rung: fidelity}`` of the
        rungs actually trained.
    """
    from . import _ray
    from ._run import release_memory
    from ._steps import _read, _split

    tables = {arm: [t.assign(rung=0)] for arm, t in arms.items()}
    trained_at = {0: plan.rungs[0].fidelity}
    for k in range(1, len(plan.rungs)):
        picks = {arm: promote(tables[arm][-1], plan.rungs[k].configs) for arm in tables}
        archs = list(dict.fromkeys(a for p in picks.values() for a in p))
        rcfg, top = rung_config(cfg, plan, k)
        fid = plan.rungs[k].fidelity
        below = trained_at[max(trained_at)]
        sp = _split(rcfg, _read(cfg, out), top, device)
        threads = 1 if top and top_threads(cfg, sp) == 1 else None
        if top and deadline is not None:
            rows = pd.concat([tables[arm][-1] for arm in tables], ignore_index=True)
            epochs = deadline.top_epochs(fid, rows, below, len(archs), threads or max(1, cfg.concurrency))
            if epochs < fid.epochs:
                same_data = (below.image_size, below.train_images) == (fid.image_size, fid.train_images)
                fitted = replace(fid, epochs=max(epochs, below.epochs if same_data else 1))
                if fitted.same_training(below):
                    deadline.notes.append(f"the time left held no full-fidelity training longer than the rung "
                                          f"below's: the winners were not retrained ({fid.describe()} was planned)")
                    break
                deadline.notes.append(f"the time left cut the winners' full-fidelity training to {fitted.epochs} "
                                      f"of the {fid.epochs} planned epochs")
                fid, rcfg = fitted, replace(rcfg, final_epochs=fitted.epochs)
        bar = "full-fidelity retraining" if top else f"rung {k + 1} of successive halving"
        what = ("retraining the winner(s) at full fidelity" if top else bar) + f" (Tune; {fid.describe()})"
        with (progress(what) if progress else _nothing()):
            shared = _ray.share_splits(sp)
            del sp
            release_memory()
            trained = _ray.run_grid(rcfg, out, rung_name(plan, k), shared, archs, top, bar, family,
                                    deadline=None if deadline is None else deadline.until(f"rung{k}"),
                                    threads=threads)
        if deadline is not None:
            deadline.cut(f"rung {k + 1}", len(trained), len(archs))
        trained_at[k] = fid
        trained = trained.assign(rung=k)
        for arm in tables:
            kept = [a for a in picks[arm] if a in set(trained["arch"])]  # a time limit may have cut some
            if kept:  # else the arm's winner stays the best of its rung below
                tables[arm].append(trained.set_index("arch").loc[kept].reset_index())
    return tables, trained_at


class _nothing:
    def __enter__(self):
        return {}

    def __exit__(self, *exc):
        return False


def rung_table(tables: dict[str, list[pd.DataFrame]], trained_at: dict[int, Fidelity]) -> pd.DataFrame:
    """Every training above the first rung, one row per arm and arch, with the fidelity it
    trained at (``rungs.parquet``)."""
    rows = []
    for arm, per in tables.items():
        for t in per[1:]:
            fid = trained_at[int(t["rung"].iloc[0])]
            rows.append(t.assign(arm=arm, rung=t["rung"] + 1, image_size=fid.image_size,
                                 train_images=fid.train_images, epochs=fid.epochs))
    if not rows:
        return pd.DataFrame(columns=["arm", "rung", "arch", METRIC, "test_acc"])
    df = pd.concat(rows, ignore_index=True)
    first = ["arm", "rung", "arch", METRIC, "test_acc", "image_size", "train_images", "epochs"]
    return df[first + [c for c in df.columns if c not in first and c != "order"]]


def assemble_final(tables: dict[str, list[pd.DataFrame]], plan: Plan) -> pd.DataFrame:
    """One row per arm: its winner (the best of its top rung), its first-rung (search) accuracy
    and order, and the accuracies it reached at the top rung (``retrained`` False: the search
    training itself, which was already at the full fidelity)."""
    out = []
    for arm, per in tables.items():
        winner = promote(per[-1], 1)[0]
        s = per[0].loc[per[0]["arch"] == winner].iloc[0]
        f = per[-1].loc[per[-1]["arch"] == winner].iloc[0]
        out.append({"arm": arm, "arch": winner, "search_valid_acc": float(s[METRIC]),
                    "found_at_training": int(s["order"]), METRIC: float(f[METRIC]),
                    "test_acc": float(f["test_acc"]), "params": f.get("params"),
                    "train_seconds": f.get("train_seconds"), "error": f.get("error"),
                    "rung": int(per[-1]["rung"].iloc[0]) + 1,
                    "retrained": int(per[-1]["rung"].iloc[0]) == len(plan.rungs) - 1 > 0})
    return pd.DataFrame(out)


def fidelity_record(plan: Plan, trained_at: dict[int, Fidelity], final: pd.DataFrame) -> dict:
    """``best.json``'s ``fidelity``: what the search and the NASRank winner's last training
    actually trained at (``full``), and every rung actually trained."""
    mine = final.loc[final["arm"] == "nasrank"].iloc[0]
    last = trained_at[int(mine["rung"]) - 1]
    return {"search": trained_at[0].to_dict(), "full": last.to_dict(),
            "rungs": [dict(trained_at[k].to_dict(), rung=k + 1, configs_per_arm=plan.rungs[k].configs)
                      for k in sorted(trained_at)]}


def arm_notes(final: pd.DataFrame, plan: Plan) -> list[str]:
    """Sentences for ``best.json`` and the summary: a skipped retraining, and which arm won."""
    notes = list(plan.notes)
    if not plan.retrains:
        notes = [n for n in notes if "not retrained" not in n]
        notes.append(f"full-fidelity retraining skipped: the search already trained at the full fidelity "
                     f"({plan.full.describe()}), so retraining would repeat it; the winners' results are their "
                     "search trainings")
    arms = final.set_index("arm")
    if "random" in arms.index and "nasrank" in arms.index:
        mine, rnd = float(arms.loc["nasrank", "test_acc"]), float(arms.loc["random", "test_acc"])
        if rnd > mine:
            notes.append(f"the random arm's winner beat the searched one: {rnd:.2f} % against {mine:.2f} % test "
                         "accuracy; on this run the search did not pay off over picking at random")
        elif rnd == mine:
            notes.append(f"the random arm's winner tied the searched one ({mine:.2f} % test accuracy)"
                         + (": the same architecture" if arms.loc["nasrank", "arch"] == arms.loc["random", "arch"]
                            else ""))
    return notes


def elapsed(t_start: float) -> float:
    return time.perf_counter() - t_start
