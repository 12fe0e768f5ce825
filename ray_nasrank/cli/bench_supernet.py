"""``ray-nasrank bench supernet``: train a weight-sharing supernet, write weak labels, rank them.

Writes ``DIR/weak_labels.parquet`` (``arch``, ``weak_acc``, ``weak_loss``; every arch of the
sweep: all 15,625 by default) and ``DIR/summary.json`` (``kendall_tau``, ``ndcg@50`` against
``--ground-truth`` when given, ``train_seconds``, ``weak_labels_per_second`` and the whole
configuration).

Landmarks: with ``--ground-truth`` and ``--landmarks K``, the first K ground-truth rows become
landmarks and are held out of the ranking metrics for EVERY method, so all methods are scored on
the same archs; ``kendall_tau_all_gt`` scores all ground-truth archs.
"""

from __future__ import annotations

import argparse

from . import UsageError, parse_csv_list

METHODS = ("spos", "landmark", "rd", "fewshot")
#: validation images from this index on feed the landmark hinge; weak labels use the ones before
LANDMARK_VALID_FROM = 1024


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "supernet", help="train an NB201 supernet (SPOS / landmark / RD-NAS / few-shot) and write weak labels",
        description="Train an NB201 weight-sharing supernet, write weak labels for the cells and "
                    "(with --ground-truth) Kendall tau and NDCG@50 against stand-alone accuracies.")
    p.add_argument("--dataset", default="fashion-mnist", help="fashion-mnist or digits")
    p.add_argument("--method", default="spos", choices=METHODS)
    p.add_argument("--epochs", type=int, default=10, help="total supernet epochs (all phases together)")
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--cells-per-stage", type=int, default=5)
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--ground-truth", default=None, help="CSV with columns arch,test_acc[,valid_acc]")
    p.add_argument("--gt-column", default="test_acc", help="ground-truth column to rank against")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--limit-train", type=int, default=None, help="use only this many training images")
    p.add_argument("--image-size", type=int, default=None,
                   help="resample images to this size (match the ground truth's recipe, e.g. 16)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    g = p.add_argument_group("weak labels")
    g.add_argument("--archs", default="all", choices=["all", "iso", "gt"],
                   help="all: every cell; iso: one cell per isomorphism class (6,466), value copied to "
                        "the class; gt: only the ground-truth archs")
    g.add_argument("--eval-batch-size", type=int, default=128)
    g.add_argument("--calib-batches", type=int, default=2, help="training batches for BN recalibration")
    g.add_argument("--eval-batches", type=int, default=2, help="validation batches scored per arch")
    g.add_argument("--chunk", type=int, default=None, help="archs evaluated together (default: by memory)")
    g.add_argument("--amp", choices=["auto", "on", "off"], default="auto", help="bf16 autocast (auto: on for cuda)")
    g.add_argument("--channels-last", choices=["auto", "on", "off"], default="auto",
                   help="channels_last memory layout in the sweep (auto: on)")
    g = p.add_argument_group("landmark regularization")
    g.add_argument("--landmarks", type=int, default=30, help="the first K ground-truth rows are landmarks (held out of the metrics for every method)")
    g.add_argument("--landmarks-from", default=None,
                   help="summary.json of an earlier run: use its landmark_archs as the landmarks / held-out "
                        "set instead of the first K rows (they must all be in --ground-truth)")
    g.add_argument("--landmark-coef", type=float, default=10.0)
    g.add_argument("--landmark-start", type=float, default=0.375, help="start, as a fraction of --epochs")
    g.add_argument("--landmark-warmup", type=float, default=0.1, help="cosine warm-up, fraction of --epochs")
    g = p.add_argument_group("RD-NAS ranking distillation")
    g.add_argument("--teacher", default="params",
                   help="zero-cost teacher: params (exact count) or a ray_nasrank.proxies name (synflow, ...)")
    g.add_argument("--rd-weight", type=float, default=2.0)
    g.add_argument("--rd-ramp", type=float, default=0.25, help="weight ramp length, fraction of --epochs")
    g.add_argument("--rd-margin", type=float, default=0.1)
    g.add_argument("--rd-mu", type=float, default=6.7, help="group-distance threshold for pairs")
    g = p.add_argument_group("few-shot split")
    g.add_argument("--fewshot-edge", default="e1_0", help="edge key (e1_0 ... e3_2) whose op splits the supernet")
    g.add_argument("--fewshot-groups", default=None,
                   help="op groups, ';'-separated lists of ','-separated ops (default: one per op)")
    g.add_argument("--fewshot-split-at", type=float, default=0.5, help="split point, fraction of --epochs")
    p.add_argument("--save-supernet", action="store_true", help="also write DIR/supernet.pt")
    p.add_argument("--load-supernet", default=None,
                   help="skip training: evaluate the weights of a supernet.pt saved by an earlier run "
                        "with the same method, shape and split")
    p.set_defaults(func=run)


def _check_args(args: argparse.Namespace) -> None:
    for name in ("epochs", "channels", "cells_per_stage", "batch_size", "eval_batch_size", "calib_batches",
                 "eval_batches"):
        v = getattr(args, name)
        if v < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {v}")
    if args.landmarks < 0:
        raise UsageError(f"--landmarks must be >= 0, got {args.landmarks}")
    for name in ("landmark_start", "landmark_warmup", "rd_ramp", "fewshot_split_at"):
        v = getattr(args, name)
        if not 0 <= v <= 1:
            raise UsageError(f"--{name.replace('_', '-')} is a fraction of --epochs in [0, 1], got {v}")
    if args.landmarks_from and args.ground_truth is None:
        raise UsageError("--landmarks-from needs --ground-truth")
    if args.method == "landmark" and (args.ground_truth is None or args.landmarks < 2):
        raise UsageError("--method landmark needs --ground-truth and --landmarks >= 2")
    if args.archs == "gt" and args.ground_truth is None:
        raise UsageError("--archs gt needs --ground-truth")


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


def _teacher(name: str, sn, args, in_channels: int, image_size, num_classes: int):
    from ray_nasrank.supernet import ParamCountTeacher

    if name == "params":
        return ParamCountTeacher(sn)
    from ray_nasrank.proxies import compute_proxies, resolve_names

    (canon,) = resolve_names([name])

    def score(arch):
        return compute_proxies(arch, names=(canon,), channels=args.channels, cells_per_stage=args.cells_per_stage,
                               input_shape=(in_channels, *image_size), num_classes=num_classes, seed=args.seed,
                               batch_size=32)[canon]

    return score


def run(args: argparse.Namespace) -> int:
    _check_args(args)
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
    from ray_nasrank.spaces import NB201Space
    from ray_nasrank.supernet import (BatchedEvaluator, FewShotSupernet, LandmarkRegularizer, RankDistiller,
                                      TrainConfig, parse_split, train_supernet)
    from ray_nasrank.supernet.sampling import GroupDistancePairSampler

    out = check_writable_dir(args.out)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    groups = None
    if args.fewshot_groups:
        groups = [parse_csv_list(g) for g in args.fewshot_groups.split(";")]
    edge, groups = parse_split(args.fewshot_edge, groups)
    space = NB201Space()
    torch.manual_seed(args.seed)

    gt_archs, gt_acc = ([], np.array([]))
    if args.ground_truth:
        gt_archs, gt_acc = _read_ground_truth(args.ground_truth, args.gt_column)
    # landmarks are the FIRST K ground-truth rows (a random sample in file order): the choice stays
    # the same when the file grows, so a saved supernet can be rescored against a longer file
    n_land = min(args.landmarks, max(0, len(gt_archs) - 2)) if gt_archs else 0
    land_idx = np.arange(n_land)
    if args.landmarks_from:
        import json

        with open(args.landmarks_from) as f:
            named = json.load(f).get("landmark_archs")
        if not named:
            raise ValueError(f"--landmarks-from {args.landmarks_from!r} lists no landmark_archs")
        pos = {space.to_string(a): i for i, a in enumerate(gt_archs)}
        missing = [a for a in named if a not in pos]
        if missing:
            raise ValueError(f"{len(missing)} landmark arch(s) of {args.landmarks_from!r} are not in the ground "
                             f"truth, e.g. {missing[0]!r}")
        land_idx = np.array(sorted(pos[a] for a in named), dtype=int)
    eval_mask = np.ones(len(gt_archs), bool)
    eval_mask[land_idx] = False

    data = load_dataset(args.dataset, seed=args.seed, device=device, limit_train=args.limit_train,
                        image_size=args.image_size)
    sn = NB201Supernet(channels=args.channels, cells_per_stage=args.cells_per_stage,
                       in_channels=data.in_channels, num_classes=data.num_classes).to(device)
    cuda = device.type == "cuda"
    amp = args.amp == "on" or (args.amp == "auto" and cuda)
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                      weight_decay=args.weight_decay, seed=args.seed, amp=amp)
    E = args.epochs
    landmark = distill = None
    if args.method == "landmark":
        landmark = LandmarkRegularizer([(gt_archs[i], gt_acc[i]) for i in land_idx], coef=args.landmark_coef,
                                       start=args.landmark_start * E, warmup=args.landmark_warmup * E,
                                       rng=args.seed)
    if args.method == "rd":
        teacher = _teacher(args.teacher, sn, args, data.in_channels, data.image_size, data.num_classes)
        distill = RankDistiller(teacher, weight=args.rd_weight, ramp=args.rd_ramp * E, margin=args.rd_margin,
                                sampler=GroupDistancePairSampler(mu=args.rd_mu, rng=args.seed))

    def log(e, hist):
        print(f"[{args.method}] epoch {e + 1}/{E} loss {hist['epoch_loss'][-1]:.4f}", flush=True)

    t0 = time.perf_counter()
    model = sn
    if args.load_supernet:
        if args.method == "fewshot":
            model = FewShotSupernet(sn, edge=edge, groups=groups).to(device)
        state = torch.load(args.load_supernet, map_location=device, weights_only=True)
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise ValueError(f"--load-supernet {args.load_supernet!r} does not fit a {args.method} supernet "
                             f"with C={args.channels}, N={args.cells_per_stage}: {str(e).splitlines()[0]}") from None
    elif args.method == "fewshot":
        e1 = int(round(args.fewshot_split_at * E))
        if e1 > 0:
            train_supernet(sn, data.train, TrainConfig(**{**cfg.to_dict(), "epochs": e1}), total_epochs=E,
                           on_epoch=log)
        model = FewShotSupernet(sn, edge=edge, groups=groups).to(device)
        if E - e1 > 0:
            train_supernet(model, data.train, TrainConfig(**{**cfg.to_dict(), "epochs": E - e1}),
                           start_epoch=e1, total_epochs=E, on_epoch=log)
    else:
        # the landmark hinge sees validation images the weak labels are NOT scored on
        land_split = TensorSplit(data.valid.x[LANDMARK_VALID_FROM:], data.valid.y[LANDMARK_VALID_FROM:]) \
            if len(data.valid) - LANDMARK_VALID_FROM >= args.batch_size else None
        train_supernet(sn, data.train, cfg, landmark=landmark, distill=distill, on_epoch=log,
                       landmark_data=land_split if landmark is not None else None)
    if cuda:
        torch.cuda.synchronize(device)
    train_seconds = time.perf_counter() - t0
    trained_by = None
    if args.load_supernet:
        # report the training time of the run that produced these weights, when it left a summary
        import json
        from pathlib import Path

        prev = Path(args.load_supernet).with_name("summary.json")
        trained_by = json.loads(prev.read_text()) if prev.is_file() else None
        train_seconds = trained_by.get("train_seconds") if trained_by else None

    # fixed calibration (training) and evaluation (validation) batches, shared by every arch
    gen = torch.Generator().manual_seed(args.seed + 7)
    bs = args.eval_batch_size
    perm = torch.randperm(len(data.train), generator=gen)[: bs * args.calib_batches]
    calib = [data.train.x[perm[i * bs:(i + 1) * bs].to(device)] for i in range(args.calib_batches)]
    n_eval = min(min(len(data.valid), LANDMARK_VALID_FROM) // bs, args.eval_batches)
    if n_eval < 1:
        raise ValueError(f"validation split has {len(data.valid)} images, fewer than --eval-batch-size {bs}")
    evaluation = [(data.valid.x[i * bs:(i + 1) * bs], data.valid.y[i * bs:(i + 1) * bs]) for i in range(n_eval)]
    cl = args.channels_last == "on" or args.channels_last == "auto"
    ev_kwargs = dict(chunk=args.chunk, amp=amp, channels_last=cl)

    if args.archs == "gt":
        archs = list(gt_archs)
    else:
        archs = list(space.enumerate())
    t1 = time.perf_counter()
    if args.method == "fewshot":
        from ray_nasrank.supernet import iso_representatives

        reps, members = iso_representatives(archs) if args.archs == "iso" else (archs, np.arange(len(archs)))
        acc, loss = model.evaluate(reps, calib, evaluation, **ev_kwargs)
        if cuda:
            torch.cuda.synchronize(device)
        res = {"weak_acc": acc[members], "weak_loss": loss[members], "evaluated": len(reps),
               "seconds": time.perf_counter() - t1}
    else:
        ev = BatchedEvaluator(sn, calib, evaluation, **ev_kwargs)
        res = ev.evaluate_all(archs, iso=args.archs == "iso")
    eval_seconds = time.perf_counter() - t1

    table = pd.DataFrame({"arch": [space.to_string(a) for a in archs], "weak_acc": res["weak_acc"],
                          "weak_loss": res["weak_loss"]})
    atomic_write_parquet(out / "weak_labels.parquet", table)

    summary = {
        "method": args.method,
        "train_seconds": train_seconds,
        "loaded_supernet": args.load_supernet,
        "eval_seconds": eval_seconds,
        "weak_labels_per_second": res["evaluated"] / res["seconds"],
        "weak_label_rows": len(table),
        "archs_evaluated": res["evaluated"],
        "device": str(device) if cuda else f"cpu ({torch.get_num_threads()} threads, {os.cpu_count()} cores, "
                                            f"{platform.processor() or platform.machine()})",
        "config": {k: v for k, v in vars(args).items() if k != "func"},
        "train_config": cfg.to_dict(),
        "fewshot": {"edge": edge, "groups": groups} if args.method == "fewshot" else None,
        "dataset": {"name": data.name, "image_size": list(data.image_size), "train": len(data.train),
                    "valid": len(data.valid),
                    "calib_images": bs * args.calib_batches, "eval_images": bs * n_eval},
    }
    if args.ground_truth:
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
            "n_ranked": int(m.sum()),
            "n_landmarks": int(len(land_idx)),
            "landmark_archs": [keys[i] for i in land_idx],
            "ground_truth_column": args.gt_column,
        })
    if args.save_supernet:
        torch.save(model.state_dict(), out / "supernet.pt")
    atomic_write_json(out / "summary.json", summary)
    msg = f"[{args.method}] train {train_seconds or 0:.1f}s, {res['evaluated']} archs in {eval_seconds:.1f}s"
    if args.ground_truth:
        msg += f", kendall_tau {summary['kendall_tau']:.3f} on {summary['n_ranked']} archs"
    print(msg, flush=True)
    return 0
