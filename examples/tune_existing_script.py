"""Plug NASRankSearcher into an existing Ray Tune script.

Your script already has a trainable that reads an NB201 cell from its config and reports an
accuracy; only the ``search_alg`` line changes. The searcher's ranker is pretrained on a cheap
weak label of every candidate (here: parameter count, a zero-cost proxy) and proposes the top
predicted unseen cells; each finished trial fine-tunes it.

    python examples/tune_existing_script.py --budget 8
"""

from __future__ import annotations

import argparse

import numpy as np
import ray
import torch
from ray import tune

from ray_nasrank.data import load_dataset
from ray_nasrank.integrations.tune import NASRankSearcher
from ray_nasrank.nn import NB201Network, count_parameters
from ray_nasrank.spaces import NB201Space
from ray_nasrank.training import TrainConfig, train_arch


# ---- the existing trainable: unchanged ------------------------------------------------------
def trainable(config: dict, epochs: int = 1) -> None:
    torch.set_num_threads(1)
    splits = load_dataset("digits", seed=0)
    cfg = TrainConfig(epochs=epochs, batch_size=32, channels=4, cells_per_stage=1)
    result = train_arch(config["arch"], splits, cfg)
    tune.report({"valid_acc": result["valid_acc"], "test_acc": result["test_acc"]})


def main(budget: int = 8, concurrency: int = 2, pool_size: int = 200, seed: int = 0) -> dict:
    space = NB201Space()
    pool = space.sample_many(pool_size, rng=seed, unique=True)
    params = np.array([count_parameters(NB201Network(a, channels=4, cells_per_stage=1, in_channels=1))
                       for a in pool], dtype=float)
    # ---- the one new piece: the searcher ------------------------------------------------------
    searcher = NASRankSearcher(space=space, metric="valid_acc", mode="max", strategy="nasrank", seed=seed,
                               strategy_kwargs={"candidates": pool, "weak": {"params": params},
                                                "batch_size": concurrency})
    started = not ray.is_initialized()
    if started:
        ray.init(include_dashboard=False, log_to_driver=False)
    try:
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": 1}),
            tune_config=tune.TuneConfig(search_alg=searcher, num_samples=budget,
                                        max_concurrent_trials=concurrency, reuse_actors=True),
            run_config=tune.RunConfig(verbose=0, storage_path=None),
        )
        best = tuner.fit().get_best_result("valid_acc", "max")
    finally:
        if started:
            ray.shutdown()
    out = {"arch": best.config["arch"], "valid_acc": best.metrics["valid_acc"],
           "test_acc": best.metrics["test_acc"], "trials": searcher.num_suggested}
    print(f"best of {budget}: {out['arch']}  valid {out['valid_acc']:.2f} %  test {out['test_acc']:.2f} %")
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=8)
    ap.add_argument("--concurrency", type=int, default=2)
    main(**vars(ap.parse_args()))
