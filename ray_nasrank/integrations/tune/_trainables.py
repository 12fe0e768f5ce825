"""Ready Tune trainables (function API): a table lookup and from-scratch NB201 training.

Any user trainable works with :class:`NASRankSearcher` too: it only has to read the architecture
from its config (``space.from_config(config)``, or ``config["arch"]`` for NB201) and report the
searcher's metric with ``ray.tune.report``.

Example::

    trainable = make_table_trainable(bench)                 # reports {bench.target_name: value}
    tuner = tune.Tuner(trainable, param_space=bench.space.to_tune(), tune_config=...)

    tuner = tune.Tuner(tune.with_resources(nb201_trainable, {"cpu": 1}),
                       param_space={**NB201Space().to_tune(), "dataset": "digits", "epochs": 2,
                                    "channels": 4, "cells_per_stage": 1})
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

from ray import tune

from ray_nasrank.spaces import NB201Space


def _table_trainable(config: dict, bench: Any, sleep_s: float) -> None:
    # the table arrives through the object store (tune.with_parameters), once per worker
    started = time.time()
    arch = bench.space.validate(config)
    if sleep_s > 0:
        time.sleep(sleep_s)  # simulated training time, so trials overlap in concurrency tests
    import ray

    tune.report({
        bench.target_name: bench.lookup(arch),
        "arch": bench.space.to_string(arch),
        "node_id": ray.get_runtime_context().get_node_id(),
        "started_at": started,
        "finished_at": time.time(),
    })


def make_table_trainable(bench: Any, sleep_s: float = 0.0) -> Callable[[dict], None]:
    """A trainable that "trains" an architecture by looking it up in a ``TabularBenchmark``.

    Reports ``{bench.target_name: value, "arch": str, "node_id": str, "started_at": float,
    "finished_at": float}`` once (wall-clock times show how trials overlapped). ``sleep_s`` adds
    a simulated training time per trial. The table goes through Ray's object store with
    ``tune.with_parameters``, not inside every trial's pickled closure.

    Args:
        bench: the table to look architectures up in.
        sleep_s: simulated training seconds per trial (>= 0).

    Returns:
        A Tune function trainable taking the trial's config.

    Raises:
        TypeError: ``bench`` is not a :class:`~ray_nasrank.benchmarks.TabularBenchmark`.
        ValueError: ``sleep_s`` is negative.
    """
    from ray_nasrank.tabular import TabularBenchmark

    if not isinstance(bench, TabularBenchmark):
        raise TypeError(f"bench must be a TabularBenchmark, got {type(bench).__name__}")
    if sleep_s < 0:
        raise ValueError(f"sleep_s must be >= 0, got {sleep_s}")
    return tune.with_parameters(_table_trainable, bench=bench, sleep_s=float(sleep_s))


#: config keys of nb201_trainable that are not TrainConfig fields
NB201_TRAINABLE_KEYS = ("arch", "dataset", "data_seed", "limit_train", "valid_fraction", "train")


def nb201_trainable(config: dict) -> None:
    """Train the NB201 cell of ``config`` from scratch and report each epoch to Tune.

    Reads the cell from ``config["arch"]`` (NB201 string) or the nested ``{"cell": {...}}``
    edges, the data set from ``config["dataset"]`` (default ``"digits"``;
    ``"fashion-mnist"`` needs the Debian files) and every ``TrainConfig`` field
    (``epochs``, ``channels``, ``cells_per_stage``, ``lr``...) from the config, either at the top
    level or in a ``config["train"]`` dict (top-level keys win). Per-epoch
    metrics of ``ray_nasrank.training.train_arch`` are reported as they come, then the final
    result (``valid_acc``, ``test_acc``, ``params``, ``seconds``) with ``done=True``.

    Args:
        config: the trial's config: the cell, ``dataset``, ``data_seed``, ``limit_train``,
            ``valid_fraction``, ``TrainConfig`` fields and an optional ``train`` dict of them.

    Raises:
        ValueError: an invalid cell, an unknown config key (the message lists the
            ``TrainConfig`` fields), ``config["train"]`` not a dict, or an invalid training or
            data setting.
        FloatingPointError: training diverged.
    """
    from ray_nasrank.data import load_dataset
    from ray_nasrank.training import TrainConfig, train_arch

    arch = NB201Space().validate(config["arch"] if isinstance(config.get("arch"), str) else config)
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(k for k in config if k not in fields and k not in NB201_TRAINABLE_KEYS and k != "cell")
    if unknown:
        raise ValueError(f"nb201_trainable: unknown config key(s) {unknown}; TrainConfig fields are {sorted(fields)}")
    nested = config.get("train") or {}
    if not isinstance(nested, dict):
        raise ValueError(f"nb201_trainable: config['train'] must be a dict of TrainConfig fields, got {nested!r}")
    bad = sorted(k for k in nested if k not in fields)
    if bad:
        raise ValueError(f"nb201_trainable: unknown config['train'] key(s) {bad}; TrainConfig fields are {sorted(fields)}")
    cfg = TrainConfig(**{**nested, **{k: v for k, v in config.items() if k in fields}})
    data_kwargs = {"seed": config.get("data_seed", 0), "device": getattr(cfg, "device", "cpu")}
    if config.get("limit_train") is not None:
        data_kwargs["limit_train"] = int(config["limit_train"])
    if config.get("valid_fraction") is not None:
        data_kwargs["valid_fraction"] = float(config["valid_fraction"])
    splits = load_dataset(config.get("dataset", "digits"), **data_kwargs)

    def report(epoch: int, metrics: dict) -> None:
        tune.report({**_numbers(metrics), "epoch": int(epoch), "done": False})

    result = train_arch(arch, splits, cfg, report=report)
    tune.report({**_numbers(result), "done": True})


def _numbers(metrics: dict) -> dict:
    """Keep numeric entries (Tune aggregates results; strings and tensors would confuse it)."""
    out = {}
    for k, v in metrics.items():
        if hasattr(v, "item") and getattr(v, "ndim", 1) == 0:
            v = v.item()
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = v
    return out
