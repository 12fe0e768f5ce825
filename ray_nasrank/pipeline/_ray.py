"""The pipeline's Ray steps: the supernet actor (training and weak-label sweep) and the Tune runs
(the NASRank search, the random arm, the full-fidelity retraining of the winners).

Imported only when the pipeline runs (it imports Ray at the top).
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import ray
from ray import tune
from ray.tune.search import ConcurrencyLimiter, Searcher

from ray_nasrank.families import ModelFamily, SpaceError
from ray_nasrank.progress import progress
from ray_nasrank.spaces import Arch

from ._config import PipelineConfig
from ._steps import ARTEFACTS, METRIC, MODE, save_supernet

#: the config key of the grid trials (random arm, retraining): the arch string
GRID_KEY = "nasrank_arch"
#: CPUs the supernet actor takes: a fraction, so it never starves a trial of a whole CPU
ACTOR_CPUS = 0.5


def ensure_ray(cfg: PipelineConfig) -> bool:
    """``ray.init`` unless Ray is already up; returns whether this call started it.

    Without ``cfg.address`` a fresh local Ray is started (``address="local"``): a bare
    ``ray.init()`` would join whatever Ray another job left running on the machine.
    """
    if ray.is_initialized():
        return False
    ray.init(address=cfg.address or "local", include_dashboard=False, log_to_driver=False,
             ignore_reinit_error=True, logging_level=logging.WARNING)
    return True


def weak_labels(cfg: PipelineConfig, out: Path, splits: Any, pool: Sequence[Arch], sn_path: Path,
                family: ModelFamily) -> tuple[dict[str, np.ndarray], float | None]:
    """The pool's weak labels (``{name: array}``) and the seconds the supernet trained (``None``
    when ``sn_path`` already held it, or when the family has no supernet).

    What the family provides: when it has proxies, the zero-cost proxies of every candidate's
    model (``family.proxies``, default :data:`~ray_nasrank.proxies.MODEL_PROXIES`) scored in Ray
    tasks; when it has a supernet, the supernet's accuracy of each candidate (``supernet``). A
    candidate whose model cannot be built or run on the data's input shape is an error naming
    it, before any training.
    """
    ship_by_value(family)
    # the proxies build every candidate's model: a broken one fails here, before the supernet trains
    labels = _family_proxies(cfg, family, splits, pool) if family.has_proxies else {}
    seconds = None
    if family.has_supernet:
        sn, seconds = supernet_and_weak_labels(cfg, out, splits, pool, sn_path, family)
        labels = {"supernet": sn, **labels}
    return labels, seconds


def _family_proxies(cfg: PipelineConfig, family: ModelFamily, splits: Any, pool: Sequence[Arch]) -> dict:
    from ray_nasrank.integrations.ray import RayModelProxies
    from ray_nasrank.proxies import ModelProxies

    shape = tuple(int(s) for s in splits.train.x.shape[1:])
    names = {} if family.proxies is None else {"names": family.proxies}
    proxies = ModelProxies(family.model_fn, input_shape=shape, seed=cfg.seed, **names)
    values = RayModelProxies(proxies, num_cpus=1)([family.config(a) for a in pool])
    broken = [f for f in proxies.failures if f.name == "model"]
    if broken:
        raise SpaceError(f"--space {family.spec!r}: {len(broken)} of {len(pool)} candidate models cannot be built "
                         f"or run on inputs of shape {shape}; first: {broken[0].error}")
    return values


def supernet_and_weak_labels(cfg: PipelineConfig, out: Path, splits: Any, pool: Sequence[Arch],
                             sn_path: Path, family: ModelFamily, chunk: int = 25,
                             poll_s: float = 0.5) -> tuple[np.ndarray, float | None]:
    """Weak labels of the pool from one :class:`SupernetActor`; returns them and the seconds the
    supernet trained (``None`` when ``sn_path`` already held it).

    The supernet is the family's: its built one (``family.supernet``, shipped to the actor), or
    the package's NB201 supernet of the shape ``family.supernet_config``, built in the actor.
    Without ``sn_path`` the actor trains the supernet itself on ``splits`` (shipped once through
    the object store), the driver only polls its epoch count for the progress bar, then saves the
    weights the actor hands back. With ``sn_path`` the actor loads those weights. The sweep is asked
    in chunks so progress shows; the actor is killed afterwards, freeing its CPU share and memory.
    """
    from ray_nasrank.integrations.tune import get_or_create_supernet_actor
    from ray_nasrank.supernet.train import SupernetTrainConfig

    from ._steps import load_supernet_weights

    name = "ray-nasrank-pipeline-" + hashlib.sha1(str(out.resolve()).encode()).hexdigest()[:12]
    if family.supernet is not None:
        sn_cfg, shape = {"space": family.spec}, {"supernet": family.supernet}
    else:
        sn_cfg = dict(family.supernet_config)
        # the actor reads the channels and classes from the data it is given
        shape = {"supernet_config": {k: v for k, v in sn_cfg.items() if k not in ("in_channels", "num_classes")}}
    common = dict(name=name, num_cpus=ACTOR_CPUS, trial_cpus=1.0, dataset=ray.put(splits.to("cpu")), **shape,
                  seed=cfg.seed,
                  eval_config={"batch_size": cfg.weak_batch, "calib_batches": cfg.weak_calib_batches,
                               "eval_batches": cfg.weak_eval_batches})
    trained = sn_path.is_file()
    if trained:
        _, state = load_supernet_weights(sn_path)
        actor = get_or_create_supernet_actor(weights=ray.put(state), **common)
    else:
        train_cfg = SupernetTrainConfig(epochs=cfg.supernet_epochs, batch_size=cfg.batch_size, lr=cfg.supernet_lr,
                                seed=cfg.seed)
        actor = get_or_create_supernet_actor(train_config=vars(train_cfg), **common)
    try:
        seconds = None
        if not trained:
            ray.get(actor.train.remote())
            bar = progress(total=cfg.supernet_epochs, desc="supernet epochs (in its actor)", unit="epoch",
                           enabled=cfg.progress)
            try:
                while not ray.get(actor.ready.remote()):  # raises when training failed in the actor
                    info = ray.get(actor.info.remote())
                    bar.update(info["epochs_done"] - bar.n)
                    time.sleep(poll_s)
                bar.update(cfg.supernet_epochs - bar.n)
            finally:
                bar.close()
            info = ray.get(actor.info.remote())
            seconds = info["train_seconds"]
            save_supernet(sn_path, sn_cfg, ray.get(actor.state_dict.remote()), ray.get(actor.history.remote()))
        labels = np.empty(len(pool))
        bar = progress(total=len(pool), desc="weak labels", unit="arch", enabled=cfg.progress)
        try:
            for start in range(0, len(pool), chunk):
                part = list(pool[start:start + chunk])
                labels[start:start + len(part)] = ray.get(actor.weak_labels.remote(part))
                bar.update(len(part))
        finally:
            bar.close()
    finally:
        ray.kill(actor)
    return labels, seconds


class _TrialProgress(tune.Callback):
    """A bar over finished trials (the bar itself is not pickled into the experiment state)."""

    def __init__(self, total: int, enabled: bool | None, desc: str = "finalists trained") -> None:
        self.total, self.enabled, self.desc, self._bar = total, enabled, desc, None

    def __getstate__(self) -> dict:
        return {"total": self.total, "enabled": self.enabled, "desc": self.desc, "_bar": None}

    def _get_bar(self):
        if self._bar is None:
            self._bar = progress(total=self.total, desc=self.desc, unit="trial", enabled=self.enabled)
        return self._bar

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        bar = self._get_bar()
        bar.update(1)
        acc = trial.last_result.get(METRIC)
        if acc is not None:
            bar.set_postfix({METRIC: f"{acc:.2f}"})

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if self._bar is not None:
            self._bar.close()


def share_splits(splits: Any) -> dict:
    """The splits as numpy arrays in Ray's object store, as ``{"ref": ObjectRef}`` (Tune's
    ``with_parameters`` passes the reference on): trial workers then map the arrays without a
    copy, so a node holds the data once, not once per trial, and the driver can drop its own.
    Images are stored channels-last (NHWC): the trials' ``channels_last`` recipe then needs no
    copy of its own, even for colour images."""
    parts = {n: (getattr(splits, n).x.cpu().permute(0, 2, 3, 1).contiguous().numpy(), getattr(splits, n).y.cpu().numpy())
             for n in ("train", "valid", "test")}
    return {"ref": ray.put({"parts": parts, "num_classes": splits.num_classes, "name": splits.name})}


def open_splits(shared: dict) -> Any:
    """:class:`~ray_nasrank.data.DatasetSplits` over the arrays of :func:`share_splits` (no copy)."""
    import warnings

    import torch

    from ray_nasrank.data import DatasetSplits, TensorSplit

    blob = ray.get(shared["ref"])
    with warnings.catch_warnings():
        # the arrays live read-only in the object store; training never writes into its data
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        # NHWC arrays seen as [N, C, H, W] tensors with channels-last strides
        parts = {n: TensorSplit(torch.from_numpy(x).permute(0, 3, 1, 2), torch.from_numpy(y))
                 for n, (x, y) in blob["parts"].items()}
    return DatasetSplits(parts["train"], parts["valid"], parts["test"], blob["num_classes"], blob["name"])


def ship_by_value(family: ModelFamily) -> None:
    """Let Ray pickle the user's module *by value*: its functions and classes (the model family,
    the supernet's modules) then reach workers that cannot import it (a file given as
    ``path/to/file.py:FUNCTION``, or a module only on the driver's path)."""
    import sys

    from ray import cloudpickle

    mod = sys.modules.get(family.module or "")
    if mod is not None and not family.module.startswith("ray_nasrank"):
        cloudpickle.register_pickle_by_value(mod)


def _finalist_trainable(config: dict, splits: dict, train: dict, family: ModelFamily,
                        threads: int = 1) -> None:
    """Train one finalist from scratch on the pipeline's shared splits; report, then test.

    The model is ``family.model_fn`` of the trial config (the family's constants plus the
    decisions, or the arch string of a grid trial), initialised from the recipe's seed and
    trained with the recipe fields the config sets (:data:`~ray_nasrank.families.RECIPE_KEYS`)."""
    import torch

    from ray_nasrank.training import train_model

    torch.set_num_threads(threads)  # the trial's CPUs: concurrent trials must not oversubscribe
    splits = open_splits(splits)

    def report(epoch: int, metrics: dict) -> None:
        if METRIC in metrics:
            tune.report({METRIC: float(metrics[METRIC]), "epoch": int(epoch), "done": False})

    conf = family.config(family.space.from_string(config[GRID_KEY])) if GRID_KEY in config \
        else {**family.constants, **config}
    recipe = family.train_config(train, conf)
    torch.manual_seed(recipe.seed)  # the same initial weights in both arms and the retraining
    net = family.check_input(conf, splits.train.x[:2].float(), "this trial's inputs")
    res = train_model(net, splits, recipe, report=report)
    tune.report({METRIC: float(res[METRIC]), "test_acc": float(res["test_acc"]), "params": int(res["params"]),
                 "train_seconds": float(res["seconds"]), "epoch": int(res["epochs"]), "lr": float(recipe.lr),
                 "threads": torch.get_num_threads(), "done": True})


def finalist_train_config(cfg: PipelineConfig, final: bool = False) -> dict:
    """The from-scratch recipe of every search training (both arms), or of the retraining."""
    from ray_nasrank.training import TrainConfig

    return TrainConfig(epochs=cfg.final_epochs if final else cfg.finalist_epochs, batch_size=cfg.batch_size,
                       lr=cfg.finalist_lr, channels=cfg.channels, cells_per_stage=cfg.cells_per_stage,
                       seed=cfg.seed, device=cfg.device,
                       # validate once at the end: the search reads only the last epoch's accuracy
                       eval_every=0,
                       # the same accuracy as larger batches; 1024 held ~4x the activations
                       eval_batch_size=256,
                       # NHWC is ~1.4x faster for these cells on CPU threads
                       channels_last=cfg.device == "cpu").to_dict()


def _tuner(cfg: PipelineConfig, out: Path, name: str, splits: dict, train: dict, num_samples: int,
           desc: str, family: ModelFamily, search_alg: Any = None, param_space: dict | None = None,
           threads: int = 1, deadline: float | None = None):
    """A fresh Tuner for ``out/name``, or the restored one when that folder holds an experiment.
    ``splits``: from :func:`share_splits`. ``threads``: CPUs (torch threads) per trial; trials
    run ``cfg.concurrency // threads`` at a time (at least one). ``deadline`` (``time.time()``):
    a searcher suggests no trial after it (the running ones finish); a grid is stopped then."""
    from ray.tune import RunConfig, TuneConfig, Tuner

    path = out.resolve() / name
    ship_by_value(family)
    trainable = tune.with_resources(
        tune.with_parameters(_finalist_trainable, splits=splits, train=train, threads=threads,
                             family=family.without_supernet()),
        {"cpu": threads, "gpu": 1 if cfg.device.startswith("cuda") else 0})
    if Tuner.can_restore(str(path)):
        from ray_nasrank.integrations.tune import NASRankSearcher

        from ._rundir import check_tune_state, restore_error

        check_tune_state(path, NASRankSearcher.FILE_KIND)  # a corrupt record is named, not read
        try:
            return Tuner.restore(str(path), trainable, resume_unfinished=True, resume_errored=True)
        except Exception as e:  # noqa: BLE001 - whatever Tune raises on its unreadable state: one clear error
            raise restore_error(path, e) from None
    concurrent, limit = max(1, cfg.concurrency // threads), None
    if deadline is not None and search_alg is not None:
        search_alg, concurrent = _UntilDeadline(search_alg, concurrent, deadline), None  # limits concurrency too
    elif deadline is not None:
        limit = max(1.0, deadline - time.time())
    return Tuner(
        trainable, param_space=param_space or {},
        tune_config=TuneConfig(search_alg=search_alg, num_samples=num_samples, time_budget_s=limit,
                               max_concurrent_trials=concurrent, reuse_actors=True),
        run_config=RunConfig(name=name, storage_path=str(out.resolve()), verbose=0,
                             callbacks=[_TrialProgress(num_samples, cfg.progress, desc)]))


def run_tune(cfg: PipelineConfig, out: Path, splits: Any, pool: Sequence[Arch], weak: pd.DataFrame,
             ranker: Any, family: ModelFamily, *, deadline: float | None = None) -> pd.DataFrame:
    """Run (or resume) the NASRank search; one row per finished trial (arch, order, metrics).

    A fresh experiment uses :class:`NASRankSearcher` with the ``nasrank`` strategy: the
    pretrained ranker proposes each round's top predicted unseen candidates and is fine-tuned on
    the finalists' true accuracies between rounds. When ``out/tune`` already holds an
    experiment, ``Tuner.restore(..., resume_unfinished=True)`` continues it instead.
    ``deadline`` (``time.time()``): propose no training after it; the search is the trainings
    finished by then (those running at the deadline finish).
    """
    from ray_nasrank.integrations.tune import NASRankSearcher

    round_size = max(cfg.round_sizes())
    weak_cols = {c: weak[c].to_numpy(dtype=np.float64) for c in weak.columns if c.startswith("weak_")}
    searcher = NASRankSearcher(
        space=family.space, metric=METRIC, mode=MODE, strategy="nasrank", seed=cfg.seed,
        strategy_kwargs={"candidates": list(pool), "weak": weak_cols, "predictor": ranker,
                         "batch_size": round_size, "first_batch": round_size,
                         # refit whenever a round is planned with new labels (concurrent trials
                         # may still be running when the next round starts)
                         "refit_every": 1,
                         # refit in a thread: the searcher answers "not yet" meanwhile
                         # instead of blocking Tune's control loop
                         "async_refit": True})
    tuner = _tuner(cfg, out, ARTEFACTS["tune"], splits, finalist_train_config(cfg), cfg.budget,
                   "NASRank finalists", family, search_alg=searcher, deadline=deadline)
    return _trial_rows(_fit(tuner, deadline), cfg.budget, out / ARTEFACTS["tune"], family)


def run_grid(cfg: PipelineConfig, out: Path, name: str, splits: Any, archs: Sequence[str], final: bool,
             desc: str, family: ModelFamily, *, deadline: float | None = None,
             threads: int | None = None) -> pd.DataFrame:
    """Train the given cells or configs (arch strings; a Tune grid, in this order) under the
    search recipe, or at full fidelity with ``final=True``; resumed like :func:`run_tune`.

    The full-fidelity retraining runs one winner at a time with all ``cfg.concurrency`` CPUs as
    torch threads (at most one node's CPUs): one full-size training in memory instead of one per
    CPU (the whole job then stays under 2 GB on 2 cores), at about the same total time.
    ``threads``: CPUs per trial instead (1: the winners of small data side by side)."""
    tuner = _tuner(cfg, out, name, splits, finalist_train_config(cfg, final=final), 1, desc, family,
                   param_space={GRID_KEY: tune.grid_search(list(archs))},
                   threads=threads or (_node_cpus(cfg.concurrency) if final and cfg.device == "cpu" else 1),
                   deadline=deadline)
    return _trial_rows(_fit(tuner, deadline), len(archs), out / name, family)


def _fit(tuner: Any, deadline: float | None) -> tuple[Any, bool]:
    """``tuner.fit()``, and whether it ran into ``deadline`` (its unfinished trials then are not
    an interruption: the time-budgeted job goes on with what finished)."""
    grid = tuner.fit()
    return grid, deadline is not None and time.time() >= deadline - 1.0


class _UntilDeadline(ConcurrencyLimiter):
    """A searcher that proposes no trial after ``deadline`` (``time.time()``): Tune then ends
    the experiment once the running trials finish (a time limit would kill them)."""

    def __init__(self, searcher: Any, max_concurrent: int, deadline: float) -> None:
        super().__init__(searcher, max_concurrent=max_concurrent)
        self.deadline = float(deadline)

    def suggest(self, trial_id: str) -> dict | str | None:
        if time.time() >= self.deadline:
            return Searcher.FINISHED
        return super().suggest(trial_id)


def _node_cpus(wanted: int) -> int:
    """``wanted`` CPUs, at most the CPUs of the largest alive node (a trial runs on one node)."""
    sizes = [int(n.get("Resources", {}).get("CPU", 0)) for n in ray.nodes() if n.get("Alive")]
    return max(1, min(int(wanted), max(sizes, default=1)))


def _arch_string(config: dict, family: ModelFamily) -> str | None:
    """The arch string of a trial's config (``None``: not a trial of this experiment)."""
    if GRID_KEY in config:
        return family.space.to_string(family.space.from_string(config[GRID_KEY]))
    return family.space.to_string(family.arch_of(config)) if config else None


def _trial_rows(fitted: tuple[Any, bool], expected: int, path: Path, family: ModelFamily) -> pd.DataFrame:
    grid, timed_out = fitted
    # a trial is finished when it errored or sent its final report; after a Ctrl-C Tune marks the
    # trials it stopped TERMINATED in the returned grid (its saved state keeps them resumable)
    finished = sum(1 for r in grid if r.error is not None or (r.metrics or {}).get("done") is True)
    if finished < expected and not timed_out:
        # Tune swallows Ctrl-C and returns what finished so far; writing results now would mark
        # the step as done and a re-run on --out would never train the rest
        raise KeyboardInterrupt(f"{path.name}: interrupted after {finished} of {expected} trainings; "
                                "re-run the same command to resume")
    rows = []
    for r in grid:
        arch = _arch_string(r.config or {}, family)
        if arch is None:
            continue
        m = r.metrics or {}
        if timed_out and r.error is None and m.get("done") is not True:
            continue  # stopped by the time limit before it finished: not a result
        trial_id = str(m.get("trial_id") or Path(r.path).name)
        rows.append({
            "arch": arch, "trial_id": trial_id,
            "suggested": _trial_number(trial_id, Path(r.path).name),
            METRIC: float(m[METRIC]) if (r.error is None and m.get("done") and METRIC in m) else np.nan,
            "test_acc": float(m["test_acc"]) if (r.error is None and "test_acc" in m) else np.nan,
            "params": m.get("params"), "train_seconds": m.get("train_seconds"),
            "error": None if r.error is None else f"{type(r.error).__name__}: {r.error}"[:300],
        })
    if not rows and timed_out:  # the deadline came before any training finished
        return pd.DataFrame(columns=["arch", "trial_id", METRIC, "test_acc", "params", "train_seconds", "error",
                                     "order"])
    if not rows:
        raise RuntimeError(f"the Tune experiment in {str(path)!r} has no trial results")
    df = pd.DataFrame(rows).sort_values("suggested", kind="stable").reset_index(drop=True)
    df["order"] = np.arange(1, len(df) + 1)
    return df.drop(columns="suggested")


def _trial_number(trial_id: str, dirname: str) -> int:
    """Tune numbers trials in creation (= suggestion) order in the trial folder's name:
    ``<trainable>_<trial_id>_<number>_<config...>``."""
    m = re.search(re.escape(trial_id) + r"_(\d+)_", dirname)
    if m is None:
        raise ValueError(f"cannot read the trial number from the trial folder {dirname!r}")
    return int(m.group(1))
