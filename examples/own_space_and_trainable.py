"""Bring your own Tune search space and trainable (not NB201).

Any ``param_space`` whose domains are ``tune.choice``/``tune.randint`` (nested dicts allowed) is
searchable: NASRankSearcher turns it into a categorical space (one-hot features for the ranker),
and constants such as ``epochs`` pass through to the trainable. Here: a small MLP on the
8x8 digits, searching depth, width, activation and dropout.

    python examples/own_space_and_trainable.py --budget 8
"""

from __future__ import annotations

import argparse

import ray
import torch
from ray import tune
from torch import nn

from ray_nasrank.data import load_dataset
from ray_nasrank.integrations.tune import NASRankSearcher

PARAM_SPACE = {
    "model": {"depth": tune.choice([1, 2, 3]), "width": tune.choice([16, 32, 64, 128]),
              "act": tune.choice(["relu", "tanh", "gelu"]), "dropout": tune.choice([0.0, 0.2])},
    "epochs": 3,          # a constant: passed through unchanged
}


def trainable(config: dict) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    m = config["model"]
    splits = load_dataset("digits", seed=0)
    act = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}[m["act"]]
    layers, d = [nn.Flatten()], 64
    for _ in range(m["depth"]):
        layers += [nn.Linear(d, m["width"]), act(), nn.Dropout(m["dropout"])]
        d = m["width"]
    net = nn.Sequential(*layers, nn.Linear(d, 10))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for epoch in range(config["epochs"]):
        net.train()
        for x, y in splits.train.batches(64, generator=gen):
            opt.zero_grad()
            nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            acc = 100.0 * (net(splits.valid.x).argmax(1) == splits.valid.y).float().mean().item()
        tune.report({"valid_acc": acc, "epoch": epoch})


def main(budget: int = 8, concurrency: int = 2, seed: int = 0) -> dict:
    searcher = NASRankSearcher(metric="valid_acc", mode="max", strategy="nasrank", seed=seed,
                               strategy_kwargs={"batch_size": concurrency})
    started = not ray.is_initialized()
    if started:
        ray.init(include_dashboard=False, log_to_driver=False)
    try:
        tuner = tune.Tuner(tune.with_resources(trainable, {"cpu": 1}), param_space=PARAM_SPACE,
                           tune_config=tune.TuneConfig(search_alg=searcher, num_samples=budget,
                                                       max_concurrent_trials=concurrency),
                           run_config=tune.RunConfig(verbose=0))
        grid = tuner.fit()
    finally:
        if started:
            ray.shutdown()
    best = grid.get_best_result("valid_acc", "max")
    out = {"model": best.config["model"], "valid_acc": best.metrics["valid_acc"], "trials": len(grid),
           "space_size": searcher.space.size}
    print(f"best of {budget} (space of {out['space_size']}): {out['model']}  valid {out['valid_acc']:.2f} %")
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=8)
    ap.add_argument("--concurrency", type=int, default=2)
    main(**vars(ap.parse_args()))
