"""In the shape of optuna-examples' ``pytorch_simple.py``: the number of layers, each layer's
width and dropout, the optimizer and a log-scaled learning rate are suggested while the model is
built (``n_units_l1`` exists only with 2+ layers). Only the sampler argument is added; the
second entry point runs the same objective through Ray Tune's ``OptunaSearch(sampler=...)``."""

from __future__ import annotations

import optuna
import torch
from _data import digits
from torch import nn

from ray_nasrank.integrations.optuna import NASRankSampler

EPOCHS = 3


def define_model(trial):
    n_layers = trial.suggest_int("n_layers", 1, 3)
    layers = []
    in_features = 64
    for i in range(n_layers):
        out_features = trial.suggest_int(f"n_units_l{i}", 4, 128)
        layers += [nn.Linear(in_features, out_features), nn.ReLU()]
        p = trial.suggest_float(f"dropout_l{i}", 0.2, 0.5)
        layers.append(nn.Dropout(p))
        in_features = out_features
    layers.append(nn.Linear(in_features, 10))
    return nn.Sequential(*layers)


def train_and_score(trial) -> float:
    torch.manual_seed(0)
    model = define_model(trial)
    optimizer_name = trial.suggest_categorical("optimizer", ["Adam", "RMSprop", "SGD"])
    lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
    optimizer = getattr(torch.optim, optimizer_name)(model.parameters(), lr=lr)
    xt, yt, xv, yv = (torch.from_numpy(a) for a in digits())
    accuracy = 0.0
    for epoch in range(EPOCHS):
        model.train()
        for i in range(0, len(xt), 64):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(xt[i:i + 64]), yt[i:i + 64]).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            accuracy = (model(xv).argmax(1) == yv).float().mean().item()
        trial.report(accuracy, epoch)
        if trial.should_prune():
            raise optuna.exceptions.TrialPruned()
    return accuracy


def main(n_trials: int = 20) -> optuna.Study:
    torch.set_num_threads(1)
    study = optuna.create_study(direction="maximize", sampler=NASRankSampler())
    study.optimize(train_and_score, n_trials=n_trials)
    return study


def define_by_run(trial):
    """Tune's define-by-run search space: the same suggestions, without training."""
    define_model(trial)
    trial.suggest_categorical("optimizer", ["Adam", "RMSprop", "SGD"])
    trial.suggest_float("lr", 1e-5, 1e-1, log=True)


def trainable(config):
    from ray import tune

    torch.set_num_threads(1)
    tune.report({"accuracy": train_and_score(optuna.trial.FixedTrial(config))})


def tune_main(num_samples: int = 6, storage_path: str | None = None):
    """The same objective in Ray Tune: OptunaSearch's define-by-run space, our sampler."""
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    search = OptunaSearch(space=define_by_run, metric="accuracy", mode="max", sampler=NASRankSampler(seed=0))
    tuner = tune.Tuner(trainable, tune_config=tune.TuneConfig(search_alg=search, num_samples=num_samples,
                                                              max_concurrent_trials=2),
                       run_config=tune.RunConfig(verbose=0, storage_path=storage_path))
    return tuner.fit(), search


if __name__ == "__main__":
    print(main().best_trial)
