"""A joint architecture + training family of small CNNs with a global-average-pooling head, on 8x8 digits.

Decisions (``space()``): ``stages`` (1-3 stages, each at half the resolution of the one before);
``width`` (8/16/32 channels in the first stage) and ``growth`` (1 or 2: the width factor from one
stage to the next); ``blocks`` (1 or 2 blocks a stage); ``kernel`` (3 or 5); ``down`` (how a stage
halves the resolution: ``"stride"``, a stride-2 convolution, or ``"maxpool"`` / ``"avgpool"``, a
2x2 pooling before the stage's convolution); ``residual`` (``"yes"``: each block adds its input to
its output, ``"no"``: a plain stack); ``norm`` (``"batch"``, ``"group"`` (4 groups) or ``"none"``);
``act`` (relu/silu/elu); and the training decisions ``lr`` (log-uniform, AdamW), ``wd``
(log-uniform decoupled weight decay), ``label_smoothing`` (uniform) and ``batch_size``
(32/64/128). The head is global average pooling then one linear layer, whatever the stages.

``build_model(config)`` is the freshly initialised model of one config (training decisions and
extra keys ignored; numbers may come as text, as in a CSV table); ``train_config(config)`` the
:class:`~ray_nasrank.training.TrainConfig` fields the config sets. ``RECIPE`` is the CPU-sized
recipe of the ground truth ``results/gap_cnn_family/digits.csv`` (built by
``scripts/own_model_ground_truth.py --family examples/gap_cnn_family.py``), a family no ranker
rule was chosen on, kept aside for the held-out check of the ranker's default; use it as
``--model examples/gap_cnn_family.py:build_model --input-shape 1,8,8``:

    >>> import torch
    >>> config = space().to_config(space().sample(0))
    >>> sorted(config)[:4]
    ['act', 'batch_size', 'blocks', 'down']
    >>> build_model(config)(torch.zeros(2, 1, 8, 8)).shape
    torch.Size([2, 10])

Run as a script, an Optuna define-by-run search over the family on sklearn digits with
``NASRankSampler`` (ranker pretrained on each config's parameter count and SNIP):

    python examples/gap_cnn_family.py --budget 8
"""

from __future__ import annotations

import argparse
from typing import Any, Mapping

import torch
from torch import nn

from ray_nasrank.spaces import Decision, Float, SearchSpace

#: the choices of every architecture decision
STAGES = (1, 2, 3)
WIDTHS = (8, 16, 32)
GROWTHS = (1, 2)
BLOCKS = (1, 2)
KERNELS = (3, 5)
DOWNS = ("stride", "maxpool", "avgpool")
RESIDUALS = ("no", "yes")
NORMS = ("none", "batch", "group")
ACTS = {"relu": nn.ReLU, "silu": nn.SiLU, "elu": nn.ELU}
BATCH_SIZES = (32, 64, 128)
#: groups of GroupNorm (every width above is a multiple of it)
GROUPS = 4

#: the ground truth's training recipe (TrainConfig fields plus the data: all of sklearn digits at 8x8)
RECIPE = {"dataset": "digits", "image_size": None, "limit_train": None, "limit_valid": None,
          "limit_test": None, "epochs": 8, "optimizer": "adamw", "bn_recalibrate": 4, "seed": 0}


def space() -> SearchSpace:
    """The family's decisions (none conditional: every config has a value for each)."""
    return SearchSpace([Decision("stages", STAGES), Decision("width", WIDTHS), Decision("growth", GROWTHS),
                        Decision("blocks", BLOCKS), Decision("kernel", KERNELS), Decision("down", DOWNS),
                        Decision("residual", RESIDUALS), Decision("norm", NORMS), Decision("act", tuple(ACTS)),
                        Decision("lr", Float(3e-4, 0.03, log=True)),
                        Decision("wd", Float(1e-5, 0.5, log=True)),
                        Decision("label_smoothing", Float(0.0, 0.3)),
                        Decision("batch_size", BATCH_SIZES)], name="gap_cnn_family")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(GROUPS, channels)
    return nn.Identity()


class ConvNormAct(nn.Sequential):
    """conv -> norm -> activation (no activation when ``act`` is None); a conv before a norm has no bias."""

    def __init__(self, c_in: int, c_out: int, kernel: int, norm: str, act: type[nn.Module] | None,
                 stride: int = 1) -> None:
        layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2,
                                             bias=norm == "none"), _norm(norm, c_out)]
        super().__init__(*layers, *([act()] if act is not None else []))


class Block(nn.Module):
    """Two convolutions at one width; with ``residual`` the input is added before the last activation."""

    def __init__(self, channels: int, kernel: int, norm: str, act: type[nn.Module], residual: bool) -> None:
        super().__init__()
        self.body = nn.Sequential(ConvNormAct(channels, channels, kernel, norm, act),
                                  ConvNormAct(channels, channels, kernel, norm, None))
        self.residual = residual
        self.act = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return self.act(x + y if self.residual else y)


def _choice(config: Mapping[str, Any], name: str, choices: tuple) -> Any:
    """``config[name]`` as one of ``choices`` (the table's text ``"16"`` reads as 16)."""
    if name not in config:
        raise ValueError(f"gap_cnn_family config {dict(config)!r}: missing {name!r}")
    value = config[name]
    for c in choices:
        if str(c) == str(value):
            return c
    raise ValueError(f"gap_cnn_family config: {name} {value!r} not one of {list(choices)}")


def build_model(config: Mapping[str, Any], in_channels: int = 1, num_classes: int = 10) -> nn.Module:
    """The freshly initialised model of ``config`` (weights drawn from the global RNG).

    Any input size works (the head pools globally); the table's is 1x8x8.

    Raises:
        ValueError: a missing decision or a value outside its choices (named).
    """
    stages, width, growth = (_choice(config, n, c) for n, c in
                             (("stages", STAGES), ("width", WIDTHS), ("growth", GROWTHS)))
    blocks, kernel, down = (_choice(config, n, c) for n, c in
                            (("blocks", BLOCKS), ("kernel", KERNELS), ("down", DOWNS)))
    residual = _choice(config, "residual", RESIDUALS) == "yes"
    norm = _choice(config, "norm", NORMS)
    act = ACTS[_choice(config, "act", tuple(ACTS))]
    layers: list[nn.Module] = [ConvNormAct(in_channels, width, kernel, norm, act)]
    c_in = width
    for s in range(stages):
        c_out = width * growth ** s
        if s > 0:  # halve the resolution and change the width on entering the stage
            if down == "stride":
                layers.append(ConvNormAct(c_in, c_out, kernel, norm, act, stride=2))
            else:
                pool = nn.MaxPool2d(2, ceil_mode=True) if down == "maxpool" else nn.AvgPool2d(2, ceil_mode=True)
                layers += [pool, ConvNormAct(c_in, c_out, kernel, norm, act)]
        layers += [Block(c_out, kernel, norm, act, residual) for _ in range(blocks)]
        c_in = c_out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, num_classes)]
    return nn.Sequential(*layers)


def train_config(config: Mapping[str, Any]) -> dict:
    """The :class:`~ray_nasrank.training.TrainConfig` fields ``config`` decides."""
    return {"lr": float(config["lr"]), "weight_decay": float(config["wd"]),
            "label_smoothing": float(config["label_smoothing"]), "batch_size": int(config["batch_size"])}


def suggest(trial: Any) -> dict:
    """The config of an Optuna trial, suggested define-by-run."""
    config: dict[str, Any] = {}
    for d in space().decisions:
        if isinstance(d.domain, Float):
            config[d.name] = trial.suggest_float(d.name, d.domain.low, d.domain.high, log=d.domain.log)
        else:
            config[d.name] = trial.suggest_categorical(d.name, d.domain.choices)
    return config


def main(budget: int = 8, seed: int = 0, pool_size: int = 2000, epochs: int = 2) -> dict:
    import optuna

    from ray_nasrank.data import load_dataset
    from ray_nasrank.integrations.optuna import NASRankSampler
    from ray_nasrank.search import WeakLabels
    from ray_nasrank.training import TrainConfig, train_model

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    splits = load_dataset("digits", seed=0)
    weak = WeakLabels(model_fn=build_model, input_shape=(1, 8, 8))
    sampler = NASRankSampler(space(), strategy="nasrank", seed=seed, weak=weak, strategy_kwargs={"pool_size": pool_size})

    def objective(trial) -> float:
        config = suggest(trial)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            cfg = TrainConfig(epochs=epochs, optimizer="adamw", seed=seed, **train_config(config))
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
