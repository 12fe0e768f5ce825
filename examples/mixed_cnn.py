"""A joint architecture + hyperparameter family: a small CNN whose op, width and depth are searched
together with its learning rate, weight decay and dropout.

Decisions (``space()``): ``depth`` (1-3 blocks); per block ``op<i>`` (3x3 conv, 5x5 conv,
depthwise-separable 3x3, 1x1 conv) and ``w<i>`` (8/16/32 channels), active only when ``depth``
reaches block ``i``; ``act`` (relu/gelu/tanh); ``lr`` (log-uniform, SGD with Nesterov momentum),
``wd`` (log-uniform weight decay) and ``dropout`` (uniform, before the classifier). Blocks after
the first halve the resolution with a 2x2 max pool first.

``build_model(config)`` is the freshly initialised model of one config (hyperparameters and extra
keys ignored; an inactive block's entries may be absent or ``"inactive"``, as in the committed
table); ``train_config(config)`` the :class:`~ray_nasrank.training.TrainConfig` fields the
config sets. ``RECIPE`` is the CPU-sized training recipe of the ground truth
``results/mixed_cnn/fmnist.csv`` (built by ``scripts/own_model_ground_truth.py --family
examples/mixed_cnn.py``), e.g. for ``--model examples/mixed_cnn.py:build_model --input-shape
1,10,10`` of ``ray-nasrank bench search``:

    >>> import torch
    >>> config = space().to_config(space().sample(0))
    >>> sorted(config)[:6]
    ['act', 'depth', 'dropout', 'lr', 'op1', 'op2']
    >>> build_model(config)(torch.zeros(2, 1, 10, 10)).shape
    torch.Size([2, 10])

Run as a script, an Optuna define-by-run search over the family on sklearn digits with
``NASRankSampler`` (ranker pretrained on each config's parameter count and SynFlow):

    python examples/mixed_cnn.py --budget 8
"""

from __future__ import annotations

import argparse
from typing import Any, Mapping

import torch
from torch import nn

from ray_nasrank.spaces import Condition, Decision, Float, SearchSpace

#: blocks at most, and the choices of every block
MAX_DEPTH = 3
OPS = ("conv3", "conv5", "sep3", "conv1")
WIDTHS = (8, 16, 32)
ACTS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}

#: the ground truth's training recipe (TrainConfig fields plus the data subset)
RECIPE = {"dataset": "fashion-mnist", "image_size": 10, "limit_train": 3000, "limit_valid": 1000,
          "limit_test": 2000, "epochs": 3, "batch_size": 64, "optimizer": "sgd", "momentum": 0.9,
          "bn_recalibrate": 4, "seed": 0}


def space() -> SearchSpace:
    """The family's decisions; block ``i``'s op and width are active only when ``depth >= i``."""
    decisions = [Decision("depth", tuple(range(1, MAX_DEPTH + 1)))]
    for i in range(1, MAX_DEPTH + 1):
        cond = None if i == 1 else Condition("depth", tuple(range(i, MAX_DEPTH + 1)))
        decisions += [Decision(f"op{i}", OPS, cond), Decision(f"w{i}", WIDTHS, cond)]
    decisions += [Decision("act", tuple(ACTS)),
                  Decision("lr", Float(0.003, 1.0, log=True)),
                  Decision("wd", Float(1e-6, 0.1, log=True)),
                  Decision("dropout", Float(0.0, 0.7))]
    return SearchSpace(decisions, name="mixed_cnn")


def _op(name: str, c_in: int, c_out: int) -> nn.Module:
    if name == "conv3":
        return nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
    if name == "conv5":
        return nn.Conv2d(c_in, c_out, 5, padding=2, bias=False)
    if name == "sep3":
        return nn.Sequential(nn.Conv2d(c_in, c_in, 3, padding=1, groups=c_in, bias=False),
                             nn.Conv2d(c_in, c_out, 1, bias=False))
    if name == "conv1":
        return nn.Conv2d(c_in, c_out, 1, bias=False)
    raise ValueError(f"unknown op {name!r}; choose from {list(OPS)}")


def build_model(config: Mapping[str, Any], in_channels: int = 1, num_classes: int = 10) -> nn.Module:
    """The freshly initialised model of ``config`` (weights drawn from the global RNG).

    Raises:
        ValueError: a missing key or an unknown op, width, depth or activation (named).
    """
    try:
        depth = int(config["depth"])
        act = ACTS[str(config["act"])]
        dropout = float(config.get("dropout", 0.0))
    except KeyError as e:
        raise ValueError(f"mixed_cnn config {dict(config)!r}: missing or unknown value for {e}") from None
    if not 1 <= depth <= MAX_DEPTH:
        raise ValueError(f"mixed_cnn config: depth {depth} outside 1..{MAX_DEPTH}")
    layers: list[nn.Module] = []
    c = in_channels
    for i in range(1, depth + 1):
        if f"op{i}" not in config or f"w{i}" not in config:
            raise ValueError(f"mixed_cnn config: depth {depth} but no op{i}/w{i}")
        width = int(config[f"w{i}"])
        if i > 1:
            layers.append(nn.MaxPool2d(2))
        layers += [_op(str(config[f"op{i}"]), c, width), nn.BatchNorm2d(width), act()]
        c = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(c, num_classes)]
    return nn.Sequential(*layers)


def train_config(config: Mapping[str, Any]) -> dict:
    """The :class:`~ray_nasrank.training.TrainConfig` fields ``config`` decides."""
    return {"lr": float(config["lr"]), "weight_decay": float(config["wd"])}


def suggest(trial: Any) -> dict:
    """The config of an Optuna trial, suggested define-by-run (block ``i`` only when ``depth >= i``)."""
    sp = {d.name: d.domain for d in space().decisions}
    config: dict[str, Any] = {"depth": trial.suggest_categorical("depth", sp["depth"].choices)}
    for i in range(1, config["depth"] + 1):
        config[f"op{i}"] = trial.suggest_categorical(f"op{i}", OPS)
        config[f"w{i}"] = trial.suggest_categorical(f"w{i}", WIDTHS)
    config["act"] = trial.suggest_categorical("act", tuple(ACTS))
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
    weak = WeakLabels(model_fn=build_model, input_shape=(1, 8, 8), proxies=("params", "synflow"))
    sampler = NASRankSampler(space(), strategy="nasrank", seed=seed, weak=weak, strategy_kwargs={"pool_size": pool_size})

    def objective(trial) -> float:
        config = suggest(trial)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            cfg = TrainConfig(epochs=2, batch_size=64, seed=seed, **train_config(config))
            return train_model(build_model(config), splits, cfg)["valid_acc"]

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
