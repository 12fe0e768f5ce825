"""Train a weight-sharing supernet, write weak labels, rank them (``ray-nasrank bench supernet``).

Writes ``out/weak_labels.parquet`` (``arch``, ``weak_acc``, ``weak_loss``; every arch of the
sweep: all 15,625 by default) and ``out/summary.json`` (``kendall_tau``, ``ndcg@50`` against
``ground_truth`` when given, ``train_seconds``, ``weak_labels_per_second`` and the whole
configuration).

Landmarks: with ``ground_truth`` and ``landmarks=K``, the first K ground-truth rows become
landmarks and are held out of the ranking metrics for EVERY method, so all methods are scored on
the same archs; ``kendall_tau_all_gt`` scores all ground-truth archs.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from ray_nasrank._checks import ConfigError, check_int
from ray_nasrank._config import option

log = logging.getLogger(__name__)

METHODS = ("spos", "landmark", "rd", "fewshot")
#: validation images from this index on feed the landmark hinge; weak labels use the ones before
LANDMARK_VALID_FROM = 1024

_WEAK = "weak labels"
_LANDMARK = "landmark regularization"
_RD = "RD-NAS ranking distillation"
_FEWSHOT = "few-shot split"


@dataclass
class SupernetBenchConfig:
    """One ``bench supernet`` run: the supernet, its training method, the weak-label sweep.

    Raises:
        ConfigError: a bad value; the message names its key.

    >>> SupernetBenchConfig(out="runs/spos").method
    'spos'
    >>> SupernetBenchConfig(out="runs/lm", method="landmark")
    Traceback (most recent call last):
    ...
    ray_nasrank._checks.ConfigError: method landmark needs ground_truth and landmarks >= 2
    """

    dataset: str = option("fashion-mnist", "fashion-mnist or digits")
    method: str = option("spos", "supernet training method", choices=METHODS)
    epochs: int = option(10, "total supernet epochs (all phases together)")
    sampler: str = option("uniform", "paths per training step (spos, landmark, fewshot): uniform (one path) or fair "
                                     "(FairNAS: one path per op, every op of every edge once)",
                          choices=("uniform", "fair"))
    channels: int = option(16, "stem channels")
    cells_per_stage: int = option(5, "cells per stage")
    device: str = option("auto", "cpu, cuda, cuda:N or auto")
    ground_truth: str | None = option(None, "CSV with columns arch,test_acc[,valid_acc]")
    gt_column: str = option("test_acc", "ground-truth column to rank against")
    out: str | None = option(None, "output directory", required=True)
    seed: int = option(0, "seed of the data split, weights and sampling")
    batch_size: int = option(128, "training batch size")
    lr: float = option(0.05, "learning rate")
    weight_decay: float = option(5e-4, "weight decay")
    limit_train: int | None = option(None, "use only this many training images")
    image_size: int | None = option(None, "resample images to this size (match the ground truth's recipe, e.g. 16)")
    threads: int | None = option(None, "torch CPU threads")
    archs: str = option("all", "all: every cell; iso: one cell per isomorphism class (6,466), value copied to "
                        "the class; gt: only the ground-truth archs", choices=("all", "iso", "gt"), group=_WEAK)
    eval_batch_size: int = option(128, "images per evaluation batch", group=_WEAK)
    calib_batches: int = option(2, "training batches for BN recalibration", group=_WEAK)
    eval_batches: int = option(2, "validation batches scored per arch", group=_WEAK)
    chunk: int | None = option(None, "archs evaluated together (default: by memory)", group=_WEAK)
    amp: str = option("auto", "bf16 autocast (auto: on for cuda)", choices=("auto", "on", "off"), group=_WEAK)
    channels_last: str = option("auto", "channels_last memory layout in the sweep (auto: on)",
                                choices=("auto", "on", "off"), group=_WEAK)
    landmarks: int = option(30, "the first K ground-truth rows are landmarks (held out of the metrics for "
                                "every method)", group=_LANDMARK)
    landmarks_from: str | None = option(None, "summary.json of an earlier run: use its landmark_archs as the "
                                              "landmarks / held-out set instead of the first K rows (they must "
                                              "all be in --ground-truth)", group=_LANDMARK)
    landmark_coef: float = option(10.0, "landmark hinge weight", group=_LANDMARK)
    landmark_start: float = option(0.375, "start, as a fraction of --epochs", group=_LANDMARK)
    landmark_warmup: float = option(0.1, "cosine warm-up, fraction of --epochs", group=_LANDMARK)
    teacher: str = option("params", "zero-cost teacher: params (exact count) or a ray_nasrank.proxies name "
                                    "(synflow, ...)", group=_RD)
    rd_weight: float = option(2.0, "distillation loss weight", group=_RD)
    rd_ramp: float = option(0.25, "weight ramp length, fraction of --epochs", group=_RD)
    rd_margin: float = option(0.1, "ranking hinge margin", group=_RD)
    rd_mu: float = option(6.7, "group-distance threshold for pairs", group=_RD)
    fewshot_edge: str = option("e1_0", "edge key (e1_0 ... e3_2) whose op splits the supernet", group=_FEWSHOT)
    fewshot_groups: str | None = option(None, "op groups, ';'-separated lists of ','-separated ops "
                                              "(default: one per op)", group=_FEWSHOT)
    fewshot_split_at: float = option(0.5, "split point, fraction of --epochs", group=_FEWSHOT)
    save_supernet: bool = option(False, "also write OUT/supernet.pt")
    load_supernet: str | None = option(None, "skip training: evaluate the weights of a supernet.pt saved by an "
                                             "earlier run with the same method, shape and split")

    def __post_init__(self) -> None:
        if not self.out:
            raise ConfigError("`out` is required")
        if self.method not in METHODS:
            raise ConfigError(f"unknown `method` {self.method!r}; choose from {list(METHODS)}")
        if self.sampler not in ("uniform", "fair"):
            raise ConfigError(f"unknown `sampler` {self.sampler!r}; choose from ['uniform', 'fair']")
        if self.sampler == "fair" and self.method == "rd":
            raise ConfigError("`sampler` fair does not apply to method rd (its pairs come from the group-distance sampler)")
        for key in ("epochs", "channels", "cells_per_stage", "batch_size", "eval_batch_size", "calib_batches",
                    "eval_batches"):
            check_int(key, getattr(self, key), low=1)
        check_int("landmarks", self.landmarks, low=0)
        for key in ("landmark_start", "landmark_warmup", "rd_ramp", "fewshot_split_at"):
            v = getattr(self, key)
            if not 0 <= v <= 1:
                raise ConfigError(f"`{key}` is a fraction of `epochs` in [0, 1], got {v}")
        if self.landmarks_from and self.ground_truth is None:
            raise ConfigError("`landmarks_from` needs `ground_truth`")
        if self.method == "landmark" and (self.ground_truth is None or self.landmarks < 2):
            raise ConfigError("`method` landmark needs `ground_truth` and `landmarks` >= 2")
        if self.archs == "gt" and self.ground_truth is None:
            raise ConfigError("`archs` gt needs `ground_truth`")


def _csv(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process so far (all its threads)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _read_ground_truth(path: str, column: str):
    import pandas as pd

    from ray_nasrank.spaces import NB201Space

    df = pd.read_csv(path)
    for col in ("arch", column):
        if col not in df.columns:
            raise ValueError(f"ground truth {path!r} has no column {col!r}; columns: {list(df.columns)}")
    space = NB201Space()
    archs = [space.validate(a) for a in df["arch"]]
    if len(set(archs)) != len(archs):
        raise ValueError(f"ground truth {path!r} lists an arch twice")
    acc = df[column].to_numpy(dtype=float)
    return archs, acc


def _teacher(name: str, sn, cfg: SupernetBenchConfig, in_channels: int, image_size, num_classes: int):
    from ray_nasrank.supernet.regularizers import ParamCountTeacher

    if name == "params":
        return ParamCountTeacher(sn)
    from ray_nasrank.proxies import compute_proxies, resolve_names

    (canon,) = resolve_names([name])

    def score(arch):
        return compute_proxies(arch, names=(canon,), channels=cfg.channels, cells_per_stage=cfg.cells_per_stage,
                               input_shape=(in_channels, *image_size), num_classes=num_classes, seed=cfg.seed,
                               batch_size=32)[canon]

    return score


def bench_supernet(config: SupernetBenchConfig) -> dict:
    """Train (or load) the supernet of ``config``, write its weak labels and summary under ``config.out``.

    Progress (epoch losses, the final line) goes to the ``ray_nasrank`` logger at INFO.

    Args:
        config: the run.

    Returns:
        The summary written to ``out/summary.json``.

    Raises:
        ConfigError: a bad value (e.g. landmarks not in the ground truth, weights that do not fit).
        ValueError: a malformed ground-truth file.
    """
    import os
    import platform
    import time

    import numpy as np
    import pandas as pd
    import torch

    from ray_nasrank._io import atomic_write_json, atomic_write_parquet, check_writable_dir
    from ray_nasrank.data import TensorSplit, load_dataset, resolve_device
    from ray_nasrank.metrics import kendall_tau, ndcg_at_k, spearman
    from ray_nasrank.nn import NB201Supernet
    from ray_nasrank.spaces import EDGE_KEYS, NB201Space
    from ray_nasrank.supernet.evaluate import evaluate_configs, iso_representatives
    from ray_nasrank.supernet.fewshot import FewShotSupernet, parse_split
    from ray_nasrank.supernet.regularizers import LandmarkRegularizer, RankDistiller
    from ray_nasrank.supernet.sampling import FairSampler, GroupDistancePairSampler
    from ray_nasrank.supernet.train import SupernetTrainConfig, train_supernet

    cfg = config
    out = check_writable_dir(cfg.out)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    groups = None
    if cfg.fewshot_groups:
        groups = [_csv(g) for g in cfg.fewshot_groups.split(";")]
    space = NB201Space()
    if cfg.fewshot_edge not in EDGE_KEYS:
        raise ConfigError(f"unknown `fewshot_edge` {cfg.fewshot_edge!r}; edges: {list(EDGE_KEYS)}")
    edge = EDGE_KEYS.index(cfg.fewshot_edge)
    split_label, groups = parse_split(space, edge, groups)
    torch.manual_seed(cfg.seed)

    gt_archs, gt_acc = ([], np.array([]))
    if cfg.ground_truth:
        gt_archs, gt_acc = _read_ground_truth(cfg.ground_truth, cfg.gt_column)
    # landmarks are the FIRST K ground-truth rows (a random sample in file order): the choice stays
    # the same when the file grows, so a saved supernet can be rescored against a longer file
    n_land = min(cfg.landmarks, max(0, len(gt_archs) - 2)) if gt_archs else 0
    land_idx = np.arange(n_land)
    if cfg.landmarks_from:
        import json

        with open(cfg.landmarks_from) as f:
            named = json.load(f).get("landmark_archs")
        if not named:
            raise ConfigError(f"`landmarks_from` {cfg.landmarks_from!r} lists no landmark_archs")
        pos = {space.to_string(a): i for i, a in enumerate(gt_archs)}
        missing = [a for a in named if a not in pos]
        if missing:
            raise ConfigError(f"{len(missing)} landmark arch(s) of `landmarks_from` {cfg.landmarks_from!r} are not in the ground "
                             f"truth, e.g. {missing[0]!r}")
        land_idx = np.array(sorted(pos[a] for a in named), dtype=int)
    eval_mask = np.ones(len(gt_archs), bool)
    eval_mask[land_idx] = False

    data = load_dataset(cfg.dataset, seed=cfg.seed, device=device, limit_train=cfg.limit_train,
                        image_size=cfg.image_size)
    sn = NB201Supernet(channels=cfg.channels, cells_per_stage=cfg.cells_per_stage,
                       in_channels=data.in_channels, num_classes=data.num_classes).to(device)
    cuda = device.type == "cuda"
    amp = cfg.amp == "on" or (cfg.amp == "auto" and cuda)
    tcfg = SupernetTrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                      weight_decay=cfg.weight_decay, seed=cfg.seed, amp=amp)
    E = cfg.epochs
    landmark = distill = None
    if cfg.method == "landmark":
        landmark = LandmarkRegularizer([(gt_archs[i], gt_acc[i]) for i in land_idx], coef=cfg.landmark_coef,
                                       start=cfg.landmark_start * E, warmup=cfg.landmark_warmup * E,
                                       rng=cfg.seed)
    if cfg.method == "rd":
        teacher = _teacher(cfg.teacher, sn, cfg, data.in_channels, data.image_size, data.num_classes)
        distill = RankDistiller(teacher, weight=cfg.rd_weight, ramp=cfg.rd_ramp * E, margin=cfg.rd_margin,
                                sampler=GroupDistancePairSampler(mu=cfg.rd_mu, rng=cfg.seed))

    sampler = FairSampler(cfg.seed) if cfg.sampler == "fair" else None

    def on_epoch(e, hist):
        log.info(f"[{cfg.method}] epoch {e + 1}/{E} loss {hist['epoch_loss'][-1]:.4f}")

    # CPU time (user + sys of this process) is the budget that holds on a shared machine, where
    # wall time depends on the other jobs; the load average says how shared it was
    load_start = os.getloadavg()
    cpu0 = _cpu_seconds()
    t0 = time.perf_counter()
    model = sn
    if cfg.load_supernet:
        if cfg.method == "fewshot":
            model = FewShotSupernet(sn, split_label, groups=groups).to(device)
        state = torch.load(cfg.load_supernet, map_location=device, weights_only=True)
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise ConfigError(f"`load_supernet` {cfg.load_supernet!r} does not fit a {cfg.method} supernet "
                             f"with C={cfg.channels}, N={cfg.cells_per_stage}: {str(e).splitlines()[0]}") from None
    elif cfg.method == "fewshot":
        e1 = int(round(cfg.fewshot_split_at * E))
        if e1 > 0:
            train_supernet(sn, data.train, SupernetTrainConfig(**{**tcfg.to_dict(), "epochs": e1}), total_epochs=E,
                           sampler=sampler, on_epoch=on_epoch)
        model = FewShotSupernet(sn, split_label, groups=groups).to(device)
        if E - e1 > 0:
            train_supernet(model, data.train, SupernetTrainConfig(**{**tcfg.to_dict(), "epochs": E - e1}),
                           start_epoch=e1, total_epochs=E, sampler=sampler, on_epoch=on_epoch)
    else:
        # the landmark hinge sees validation images the weak labels are NOT scored on
        land_split = TensorSplit(data.valid.x[LANDMARK_VALID_FROM:], data.valid.y[LANDMARK_VALID_FROM:]) \
            if len(data.valid) - LANDMARK_VALID_FROM >= cfg.batch_size else None
        train_supernet(sn, data.train, tcfg, landmark=landmark, distill=distill, sampler=sampler, on_epoch=on_epoch,
                       landmark_data=land_split if landmark is not None else None)
    if cuda:
        torch.cuda.synchronize(device)
    train_seconds = time.perf_counter() - t0
    train_cpu_seconds = _cpu_seconds() - cpu0
    trained_by = None
    if cfg.load_supernet:
        # report the training time of the run that produced these weights, when it left a summary
        import json
        from pathlib import Path

        prev = Path(cfg.load_supernet).with_name("summary.json")
        trained_by = json.loads(prev.read_text()) if prev.is_file() else None
        train_seconds = trained_by.get("train_seconds") if trained_by else None
        train_cpu_seconds = trained_by.get("train_cpu_seconds") if trained_by else None

    # fixed calibration (training) and evaluation (validation) batches, shared by every arch
    gen = torch.Generator().manual_seed(cfg.seed + 7)
    bs = cfg.eval_batch_size
    perm = torch.randperm(len(data.train), generator=gen)[: bs * cfg.calib_batches]
    calib = [data.train.x[perm[i * bs:(i + 1) * bs].to(device)] for i in range(cfg.calib_batches)]
    n_eval = min(min(len(data.valid), LANDMARK_VALID_FROM) // bs, cfg.eval_batches)
    if n_eval < 1:
        raise ValueError(f"validation split has {len(data.valid)} images, fewer than `eval_batch_size` {bs}")
    evaluation = [(data.valid.x[i * bs:(i + 1) * bs], data.valid.y[i * bs:(i + 1) * bs]) for i in range(n_eval)]
    cl = cfg.channels_last == "on" or cfg.channels_last == "auto"
    ev_kwargs = dict(chunk=cfg.chunk, amp=amp, channels_last=cl)

    if cfg.archs == "gt":
        archs = list(gt_archs)
    else:
        archs = list(space.enumerate())
    t1 = time.perf_counter()
    cpu1 = _cpu_seconds()
    # one cell per isomorphism class with --archs iso (its value copied to the class): inside the
    # supernet isomorphic cells use different edges' weights, so the copy is an approximation
    reps, members = iso_representatives(archs, space) if cfg.archs == "iso" else (archs, np.arange(len(archs)))
    acc, loss = evaluate_configs(model, reps, calib, evaluation, **ev_kwargs)
    if cuda:
        torch.cuda.synchronize(device)
    res = {"weak_acc": acc[members], "weak_loss": loss[members], "evaluated": len(reps),
           "seconds": time.perf_counter() - t1}
    eval_seconds = time.perf_counter() - t1
    eval_cpu_seconds = _cpu_seconds() - cpu1

    table = pd.DataFrame({"arch": [space.to_string(a) for a in archs], "weak_acc": res["weak_acc"],
                          "weak_loss": res["weak_loss"]})
    atomic_write_parquet(out / "weak_labels.parquet", table)

    summary = {
        "method": cfg.method,
        "train_seconds": train_seconds,
        "train_cpu_seconds": train_cpu_seconds,
        "loaded_supernet": cfg.load_supernet,
        "eval_seconds": eval_seconds,
        "eval_cpu_seconds": eval_cpu_seconds,
        "load_average": {"start": list(load_start), "end": list(os.getloadavg())},
        "weak_labels_per_second": res["evaluated"] / res["seconds"],
        "weak_label_rows": len(table),
        "archs_evaluated": res["evaluated"],
        "device": str(device) if cuda else f"cpu ({torch.get_num_threads()} threads, {os.cpu_count()} cores, "
                                            f"{platform.processor() or platform.machine()})",
        "config": asdict(cfg),
        "train_config": tcfg.to_dict(),
        "fewshot": {"edge": edge, "groups": groups} if cfg.method == "fewshot" else None,
        "dataset": {"name": data.name, "image_size": list(data.image_size), "train": len(data.train),
                    "valid": len(data.valid),
                    "calib_images": bs * cfg.calib_batches, "eval_images": bs * n_eval},
    }
    if cfg.ground_truth:
        lookup = dict(zip(table["arch"], table["weak_acc"]))
        lookup_loss = dict(zip(table["arch"], table["weak_loss"]))
        keys = [space.to_string(a) for a in gt_archs]
        w = np.array([lookup[k] for k in keys])
        wl = -np.array([lookup_loss[k] for k in keys])
        t = np.asarray(gt_acc)
        m = eval_mask
        k = min(50, int(m.sum()))
        summary.update({
            "kendall_tau": kendall_tau(t[m], w[m]),
            "spearman": spearman(t[m], w[m]),
            "ndcg@50": ndcg_at_k(t[m], w[m], k),
            "kendall_tau_neg_loss": kendall_tau(t[m], wl[m]),
            "kendall_tau_all_gt": kendall_tau(t, w),
            "kendall_tau_neg_loss_all_gt": kendall_tau(t, wl),
            "n_ranked": int(m.sum()),
            "n_landmarks": int(len(land_idx)),
            "landmark_archs": [keys[i] for i in land_idx],
            "ground_truth_column": cfg.gt_column,
        })
    if cfg.save_supernet:
        torch.save(model.state_dict(), out / "supernet.pt")
    atomic_write_json(out / "summary.json", summary)
    msg = f"[{cfg.method}] train {train_seconds or 0:.1f}s, {res['evaluated']} archs in {eval_seconds:.1f}s"
    if cfg.ground_truth:
        msg += f", kendall_tau {summary['kendall_tau']:.3f} on {summary['n_ranked']} archs"
    log.info(msg)
    return summary
