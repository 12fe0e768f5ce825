"""A joint architecture + hyperparameter family of multilayer perceptrons on flattened images.

Decisions (``space()``): ``depth`` (1-4 hidden layers); per layer ``w<i>`` (32/64/128/256 units),
active only when ``depth`` reaches layer ``i``; ``act`` (relu/gelu/tanh); ``norm`` (``"batch"``:
BatchNorm after every hidden linear layer, ``"none"``); ``lr`` (log-uniform, SGD with Nesterov
momentum), ``wd`` (log-uniform weight decay) and ``dropout`` (uniform, after every hidden layer).

``build_model(config)`` is the freshly initialised model of one config (hyperparameters and extra
keys ignored; an inactive layer's width may be absent or ``"inactive"``, as in the committed
table); ``train_config(config)`` the :class:`~ray_nasrank.training.TrainConfig` fields the
config sets. ``RECIPE`` is the CPU-sized training recipe of the ground truth
``results/mlp_family/fmnist.csv`` (built by ``scripts/own_model_ground_truth.py --family
examples/mlp_family.py``), the family kept aside for the final check of the ranker's default;
use it as ``--model examples/mlp_family.py:build_model --input-shape 1,12,12``:

    >>> import torch
    >>> config = space().to_config(space().sample(0))
    >>> sorted(config)[:5]
    ['act', 'depth', 'dropout', 'lr', 'norm']
    >>> build_model(config)(torch.zeros(2, 1, 12, 12)).shape
    torch.Size([2, 10])

Run as a script, an Optuna define-by-run search over the family on sklearn digits with
``NASRankSampler`` (ranker pretrained on each config's parameter count and SNIP):

    python examples/mlp_family.py --budget 8
"""

from __future__ import annotations

import argparse
import math
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from ray_nasrank.spaces import Condition, Decision, Float, SearchSpace

#: hidden layers at most, and the choices of every layer
MAX_DEPTH = 4
WIDTHS = (32, 64, 128, 256)
ACTS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}
NORMS = ("none", "batch")

#: the ground truth's training recipe (TrainConfig fields plus the data subset)
RECIPE = {"dataset": "fashion-mnist", "image_size": 12, "limit_train": 3000, "limit_valid": 1000,
          "limit_test": 2000, "epochs": 3, "batch_size": 64, "optimizer": "sgd", "momentum": 0.9,
          "bn_recalibrate": 4, "seed": 0}


def space() -> SearchSpace:
    """The family's decisions; layer ``i``'s width is active only when ``depth >= i``."""
    decisions = [Decision("depth", tuple(range(1, MAX_DEPTH + 1)))]
    for i in range(1, MAX_DEPTH + 1):
        cond = None if i == 1 else Condition("depth", tuple(range(i, MAX_DEPTH + 1)))
        decisions.append(Decision(f"w{i}", WIDTHS, cond))
    decisions += [Decision("act", tuple(ACTS)),
                  Decision("norm", NORMS),
                  Decision("lr", Float(0.003, 1.0, log=True)),
                  Decision("wd", Float(1e-6, 0.1, log=True)),
                  Decision("dropout", Float(0.0, 0.7))]
    return SearchSpace(decisions, name="mlp_family")


def build_model(config: Mapping[str, Any], input_shape: Sequence[int] = (1, 12, 12),
                num_classes: int = 10) -> nn.Module:
    """The freshly initialised model of ``config`` (weights drawn from the global RNG).

    ``input_shape`` is one input's shape, which sizes the first layer (the table's 1x12x12 by
    default, so ``model_fn(config)`` callers such as ``--model`` get the table's model).

    Raises:
        ValueError: a missing key or an unknown width, depth, activation or norm (named).
    """
    try:
        depth = int(config["depth"])
        act = ACTS[str(config["act"])]
        norm = str(config["norm"])
        dropout = float(config.get("dropout", 0.0))
    except KeyError as e:
        raise ValueError(f"mlp_family config {dict(config)!r}: missing or unknown value for {e}") from None
    if not 1 <= depth <= MAX_DEPTH:
        raise ValueError(f"mlp_family config: depth {depth} outside 1..{MAX_DEPTH}")
    if norm not in NORMS:
        raise ValueError(f"mlp_family config: unknown norm {norm!r}; choose from {list(NORMS)}")
    layers: list[nn.Module] = [nn.Flatten()]
    width_in = math.prod(input_shape)
    for i in range(1, depth + 1):
        if f"w{i}" not in config or str(config[f"w{i}"]) == "inactive":
            raise ValueError(f"mlp_family config: depth {depth} but no w{i}")
        width = int(config[f"w{i}"])
        if width not in WIDTHS:
            raise ValueError(f"mlp_family config: w{i} {width} not one of {list(WIDTHS)}")
        # a linear layer followed by BatchNorm needs no bias of its own
        layers.append(nn.Linear(width_in, width, bias=norm == "none"))
        if norm == "batch":
            layers.append(nn.BatchNorm1d(width))
        layers += [act(), nn.Dropout(dropout)]
        width_in = width
    layers.append(nn.Linear(width_in, num_classes))
    return nn.Sequential(*layers)


def train_config(config: Mapping[str, Any]) -> dict:
    """The :class:`~ray_nasrank.training.TrainConfig` fields ``config`` decides."""
    return {"lr": float(config["lr"]), "weight_decay": float(config["wd"])}


def suggest(trial: Any) -> dict:
    """The config of an Optuna trial, suggested define-by-run (layer ``i`` only when ``depth >= i``)."""
    sp = {d.name: d.domain for d in space().decisions}
    config: dict[str, Any] = {"depth": trial.suggest_categorical("depth", sp["depth"].choices)}
    for i in range(1, config["depth"] + 1):
        config[f"w{i}"] = trial.suggest_categorical(f"w{i}", WIDTHS)
    config["act"] = trial.suggest_categorical("act", tuple(ACTS))
    config["norm"] = trial.suggest_categorical("norm", NORMS)
    for name in ("lr", "wd", "dropout"):
        config[name] = trial.suggest_float(name, sp[name].low, sp[name].high, log=sp[name].log)
    return config


def main(budget: int = 8, seed: int = 0, pool_size: int = 2000) -> dict:
    import optuna

    from ray_nasrank.data import load_dataset
    from ray_nasrank.integrations.optuna import NASRankSampler
    from ray_nasrank.search import WeakLabels
    from ray_nasrank.training import TrainConfig, train_model

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    splits = load_dataset("digits", seed=0)
    weak = WeakLabels(model_fn=lambda c: build_model(c, (1, 8, 8)), input_shape=(1, 8, 8))
    sampler = NASRankSampler(space(), strategy="nasrank", seed=seed, weak=weak, strategy_kwargs={"pool_size": pool_size})

    def objective(trial) -> float:
        config = suggest(trial)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            cfg = TrainConfig(epochs=2, batch_size=64, seed=seed, **train_config(config))
            return train_model(build_model(config, (1, 8, 8)), splits, cfg)["valid_acc"]

    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=budget)
    best = study.best_trial
    out = {"config": best.params, "valid_acc": best.value, "trials": len(study.trials)}
    print(f"best of {budget}: {out['config']}  valid {out['valid_acc']:.2f} %")
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=8)
    main(**vars(ap.parse_args()))
