"""An Optuna ask/tell loop with NASRankSampler choosing the architecture.

The sampler fills every NB201 edge (``cell/e1_0`` ...) from the ``nasrank`` strategy and leaves
other parameters (here the learning rate) to an independent sampler. Results go back with
``study.tell``; the ranker is fine-tuned on them before the next batch.

    python examples/optuna_ask_tell.py --budget 8
"""

from __future__ import annotations

import argparse

import numpy as np
import optuna
import torch

from ray_nasrank.data import load_dataset
from ray_nasrank.integrations.optuna import NASRankSampler
from ray_nasrank.nn import NB201Network, count_parameters
from ray_nasrank.spaces import NB201Space
from ray_nasrank.training import TrainConfig, train_arch


def main(budget: int = 8, batch: int = 2, pool_size: int = 200, seed: int = 0) -> dict:
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = NB201Space()
    pool = space.sample_many(pool_size, rng=seed, unique=True)
    params = np.array([count_parameters(NB201Network(a, channels=4, cells_per_stage=1, in_channels=1))
                       for a in pool], dtype=float)
    sampler = NASRankSampler(space, strategy="nasrank", seed=seed,
                             strategy_kwargs={"candidates": pool, "weak": {"params": params}, "batch_size": batch})
    study = optuna.create_study(direction="maximize", sampler=sampler)
    splits = load_dataset("digits", seed=0)
    distributions = {**space.to_optuna(), "lr": optuna.distributions.FloatDistribution(0.02, 0.2, log=True)}
    while len(study.trials) < budget:
        # ask a batch (e.g. one per GPU), evaluate, tell: the sampler never repeats a cell
        trials = [study.ask(distributions) for _ in range(min(batch, budget - len(study.trials)))]
        for trial in trials:
            arch = space.from_config(trial.params)
            cfg = TrainConfig(epochs=1, batch_size=32, channels=4, cells_per_stage=1, lr=trial.params["lr"])
            study.tell(trial, train_arch(arch, splits, cfg)["valid_acc"])
    best = study.best_trial
    out = {"arch": space.to_string(space.from_config(best.params)), "valid_acc": best.value,
           "lr": best.params["lr"], "trials": len(study.trials)}
    print(f"best of {budget}: {out['arch']}  valid {out['valid_acc']:.2f} %  lr {out['lr']:.3f}")
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=8)
    ap.add_argument("--batch", type=int, default=2)
    main(**vars(ap.parse_args()))
