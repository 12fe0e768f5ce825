"""Your own model family, written once with choice modules, searched with model weak labels.

A small CNN family (576 configs) built with ray_nasrank's choice modules.

Choices (labels): stem width ``w1`` (8/16/24/32), first op ``op1`` (3x3 conv, 1x1 conv, max
pool, skip), width after the strided conv ``w2`` (16/32/48), activation ``act`` (relu/gelu),
residual blocks ``depth`` (0-2) and an extra hidden layer in the head ``head`` (0/1).

``family()`` is the weight-sharing supernet; ``build_model(config)`` the stand-alone, freshly
initialised model of one config (extra keys ignored), e.g. for ``--model
examples/cnn_family.py:build_model`` of ``ray-nasrank bench ranking``, for
``WeakLabels(model_fn=...)`` of the searchers, or to train a finalist::

    from ray_nasrank.integrations.tune import NASRankSearcher
    from ray_nasrank.search import WeakLabels
    sn = family()
    searcher = NASRankSearcher(metric="acc", mode="max",
                               weak=WeakLabels(model_fn=build_model, input_shape=(1, 12, 12)))
    tuner = tune.Tuner(train_fn, param_space=sn.param_space({"epochs": 3}),
                       tune_config=tune.TuneConfig(search_alg=searcher, num_samples=20))

Run as a script, an Optuna ask/tell search over the family on sklearn digits: NASRankSampler
pretrains its ranker on the zero-cost proxies of every config's model, then each asked config is
trained from scratch and told back.

    python examples/cnn_family.py --budget 8
"""

from __future__ import annotations

import argparse

import torch
from torch import nn
from torch.nn import functional as F

from ray_nasrank.nn import (
    ChoiceSupernet,
    DepthChoice,
    OpChoice,
    SlimBatchNorm1d,
    SlimBatchNorm2d,
    SlimConv2d,
    SlimLinear,
    ValueChoice,
    WidthChoice,
    skip_choice,
)


class Act(nn.Module):
    """The activation the ``act`` choice names."""

    def __init__(self, act: ValueChoice) -> None:
        super().__init__()
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x) if self.act.value == "relu" else F.gelu(x)


def conv_bn_act(c_in, c_out, k: int, act: ValueChoice, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(SlimConv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=False),
                         SlimBatchNorm2d(c_out), Act(act))


class ResBlock(nn.Module):
    def __init__(self, w: WidthChoice, act: ValueChoice) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn_act(w, w, 3, act), SlimConv2d(w, w, 3, padding=1, bias=False),
                                  SlimBatchNorm2d(w))
        self.act = Act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


def family(in_channels: int = 1, num_classes: int = 10) -> ChoiceSupernet:
    """The model family as one weight-sharing supernet."""
    w1, w2 = WidthChoice("w1", [8, 16, 24, 32]), WidthChoice("w2", [16, 32, 48])
    act = ValueChoice("act", ["relu", "gelu"])
    return ChoiceSupernet(nn.Sequential(
        conv_bn_act(in_channels, w1, 3, act),
        OpChoice({"conv3": conv_bn_act(w1, w1, 3, act), "conv1": conv_bn_act(w1, w1, 1, act),
                  "maxpool": nn.MaxPool2d(3, 1, 1), "skip": nn.Identity()}, label="op1"),
        conv_bn_act(w1, w2, 3, act, stride=2),
        DepthChoice([ResBlock(w2, act) for _ in range(2)], label="depth", depths=(0, 1, 2)),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        skip_choice(nn.Sequential(SlimLinear(w2, w2), SlimBatchNorm1d(w2), Act(act)), label="head"),
        SlimLinear(w2, num_classes)))


def space():
    """The family's decisions (one categorical decision per choice label)."""
    return family().space


def build_model(config: dict, in_channels: int = 1, num_classes: int = 10) -> nn.Module:
    """The freshly initialised stand-alone model of ``config`` (weights drawn from the global RNG)."""
    return family(in_channels, num_classes).extract(config, reset=True)


def main(budget: int = 8, batch: int = 2, seed: int = 0) -> dict:
    import optuna

    from ray_nasrank.data import load_dataset
    from ray_nasrank.integrations.optuna import NASRankSampler
    from ray_nasrank.search import WeakLabels
    from ray_nasrank.training import TrainConfig, train_model

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = family().space
    # the ranker is pretrained on the parameter count and SynFlow of every config's model
    weak = WeakLabels(model_fn=build_model, input_shape=(1, 8, 8), proxies=("params", "synflow"))
    sampler = NASRankSampler(space, strategy="nasrank", seed=seed, weak=weak, strategy_kwargs={"batch_size": batch})
    study = optuna.create_study(direction="maximize", sampler=sampler)
    splits = load_dataset("digits", seed=0)
    distributions = space.to_optuna()
    while len(study.trials) < budget:
        trials = [study.ask(distributions) for _ in range(min(batch, budget - len(study.trials)))]
        for trial in trials:
            torch.manual_seed(seed)
            model = build_model(trial.params)
            study.tell(trial, train_model(model, splits, TrainConfig(epochs=2, batch_size=64, lr=0.05))["valid_acc"])
    best = study.best_trial
    out = {"config": best.params, "valid_acc": best.value, "trials": len(study.trials),
           "pretrained_on": list(sampler.strategy._pretrained.weak_names)}
    print(f"best of {budget}: {out['config']}  valid {out['valid_acc']:.2f} %  (ranker pretrained on "
          f"{', '.join(out['pretrained_on'])})")
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=8)
    ap.add_argument("--batch", type=int, default=2)
    main(**vars(ap.parse_args()))
