"""Ray Tune's own OptunaSearch driven by NASRankSampler: ``OptunaSearch(sampler=...)``.

Useful when a Tune script already uses OptunaSearch (its storage, its study) and only the
sampler should become NAS-aware. The Tune ``param_space`` nests the NB201 edges under
``"cell"``; OptunaSearch flattens them to ``cell/e1_0``..., the names the sampler expects.

    python examples/optuna_search_tune.py --budget 6
"""

from __future__ import annotations

import argparse

import ray
import torch
from ray import tune
from ray.tune.search.optuna import OptunaSearch

from ray_nasrank.data import load_dataset
from ray_nasrank.integrations.optuna import NASRankSampler
from ray_nasrank.spaces import NB201Space
from ray_nasrank.training import TrainConfig, train_arch

SPACE = NB201Space()


def trainable(config: dict) -> None:
    torch.set_num_threads(1)
    arch = SPACE.from_config(config)  # the nested {"cell": {...}} config -> an NB201 cell
    splits = load_dataset("digits", seed=0)
    cfg = TrainConfig(epochs=config["epochs"], batch_size=32, channels=4, cells_per_stage=1)
    tune.report({"valid_acc": train_arch(arch, splits, cfg)["valid_acc"]})


def main(budget: int = 6, concurrency: int = 2, seed: int = 0) -> dict:
    # without a finite pool and weak labels the nasrank strategy explores first, then ranks
    sampler = NASRankSampler(SPACE, strategy="nasrank", seed=seed, strategy_kwargs={"batch_size": concurrency})
    search = OptunaSearch(metric="valid_acc", mode="max", sampler=sampler)
    started = not ray.is_initialized()
    if started:
        ray.init(include_dashboard=False, log_to_driver=False)
    try:
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": 1}),
            param_space={**SPACE.to_tune(), "epochs": 1},
            tune_config=tune.TuneConfig(search_alg=search, num_samples=budget, max_concurrent_trials=concurrency),
            run_config=tune.RunConfig(verbose=0),
        )
        grid = tuner.fit()
    finally:
        if started:
            ray.shutdown()
    best = grid.get_best_result("valid_acc", "max")
    archs = {SPACE.to_string(SPACE.from_config(r.config)) for r in grid}
    out = {"arch": SPACE.to_string(SPACE.from_config(best.config)), "valid_acc": best.metrics["valid_acc"],
           "distinct_archs": len(archs), "trials": len(grid)}
    print(f"best of {budget}: {out['arch']}  valid {out['valid_acc']:.2f} %")
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=6)
    ap.add_argument("--concurrency", type=int, default=2)
    main(**vars(ap.parse_args()))
