"""In the shape of Ray Tune's ``optuna_example.py``: a function trainable, a param_space with a
log-uniform learning rate and a choice of architecture, a searcher passed to TuneConfig.
Only the searcher line differs from the original (``OptunaSearch()`` -> ``NASRankSearcher()``)."""

from __future__ import annotations

import warnings

from _data import digits
from ray import tune
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

from ray_nasrank.integrations.tune import NASRankSearcher


def objective(config):
    xt, yt, xv, yv = digits()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier(hidden_layer_sizes=config["hidden"], activation=config["activation"],
                            learning_rate_init=config["lr"], alpha=config["alpha"], max_iter=config["steps"],
                            random_state=0).fit(xt, yt)
    tune.report({"mean_accuracy": clf.score(xv, yv)})


def main(num_samples: int = 10, concurrency: int = 2, storage_path: str | None = None) -> dict:
    searcher = NASRankSearcher(seed=0)  # was: OptunaSearch()
    tuner = tune.Tuner(
        objective,
        tune_config=tune.TuneConfig(metric="mean_accuracy", mode="max", search_alg=searcher,
                                    num_samples=num_samples, max_concurrent_trials=concurrency),
        run_config=tune.RunConfig(verbose=0, storage_path=storage_path),
        param_space={
            "steps": 30,
            "lr": tune.loguniform(1e-4, 1e-1),
            "alpha": tune.loguniform(1e-6, 1e-2),
            "activation": tune.choice(["relu", "tanh"]),
            "hidden": tune.choice([(16,), (64,), (32, 32)]),
        },
    )
    results = tuner.fit()
    best = results.get_best_result()
    return {"trials": len(results), "best_config": best.config, "best_accuracy": best.metrics["mean_accuracy"],
            "configs": [r.config for r in results]}


if __name__ == "__main__":
    print(main())
