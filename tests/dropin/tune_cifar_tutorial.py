"""In the shape of Ray Tune's PyTorch CIFAR tutorial (``Net(l1, l2)``, ``tune.sample_from`` layer
sizes, log-uniform lr, choice of batch size, per-epoch reports), on 8x8 digits instead of CIFAR.

``main(fixed=False)`` is the tutorial as written: its ``sample_from`` layer sizes are the
architecture, and a searcher cannot fill them, so NASRankSearcher stops with one error naming
both keys. ``main(fixed=True)`` writes them as ``tune.choice`` over the same values and runs."""

from __future__ import annotations

import numpy as np
import torch
from _data import digits
from ray import tune
from torch import nn

from ray_nasrank.integrations.tune import NASRankSearcher


class Net(nn.Module):
    def __init__(self, l1: int = 120, l2: int = 84) -> None:
        super().__init__()
        self.fc1 = nn.Linear(64, l1)
        self.fc2 = nn.Linear(l1, l2)
        self.fc3 = nn.Linear(l2, 10)

    def forward(self, x):
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


def train_digits(config):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    xt, yt, xv, yv = (torch.from_numpy(a) for a in digits())
    net = Net(config["l1"], config["l2"])
    opt = torch.optim.SGD(net.parameters(), lr=config["lr"], momentum=0.9)
    bs = config["batch_size"]
    for epoch in range(config.get("epochs", 2)):
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), bs):
            idx = perm[i:i + bs]
            opt.zero_grad()
            nn.functional.cross_entropy(net(xt[idx]), yt[idx]).backward()
            opt.step()
        with torch.no_grad():
            logits = net(xv)
            loss = nn.functional.cross_entropy(logits, yv).item()
            acc = (logits.argmax(1) == yv).float().mean().item()
        tune.report({"loss": loss, "accuracy": acc})


def main(fixed: bool = True, num_samples: int = 6, storage_path: str | None = None) -> dict:
    if fixed:
        sizes = [2 ** i for i in range(2, 9)]
        config = {"l1": tune.choice(sizes), "l2": tune.choice(sizes)}
    else:
        config = {"l1": tune.sample_from(lambda _: 2 ** np.random.randint(2, 9)),
                  "l2": tune.sample_from(lambda _: 2 ** np.random.randint(2, 9))}
    config.update({"lr": tune.loguniform(1e-4, 1e-1), "batch_size": tune.choice([8, 16, 32, 64])})
    tuner = tune.Tuner(
        train_digits,
        tune_config=tune.TuneConfig(metric="loss", mode="min", search_alg=NASRankSearcher(seed=0),
                                    num_samples=num_samples, max_concurrent_trials=2),
        run_config=tune.RunConfig(verbose=0, storage_path=storage_path),
        param_space=config,
    )
    results = tuner.fit()
    best = results.get_best_result("loss", "min")
    return {"trials": len(results), "best_config": best.config, "best_loss": best.metrics["loss"],
            "configs": [r.config for r in results]}


if __name__ == "__main__":
    print(main())
