"""Model families for the ``--space MODULE:FUNCTION`` tests (imported by name: ``_families:...``)."""

from __future__ import annotations

from ray import tune
from torch import nn


def mlp_family(in_channels: int = 1, num_classes: int = 10):
    """A (param_space, model_fn) family: a Tune dict with a categorical width, a numeric
    learning rate that names a recipe field, and a constant."""
    param_space = {"width": tune.choice([8, 32]), "depth": tune.choice([1, 2]),
                   "lr": tune.loguniform(0.02, 0.2), "dropout": 0.0}

    def model_fn(config: dict) -> nn.Module:
        layers: list[nn.Module] = [nn.Flatten(), nn.LazyLinear(config["width"]), nn.ReLU()]
        for _ in range(config["depth"] - 1):
            layers += [nn.Linear(config["width"], config["width"]), nn.ReLU()]
        return nn.Sequential(*layers, nn.Dropout(config["dropout"]), nn.Linear(config["width"], num_classes))

    return param_space, model_fn


def raising_family():
    space, model_fn = mlp_family()

    def broken(config: dict) -> nn.Module:
        if config["width"] == 32:
            raise RuntimeError("width 32 is not supported")
        return model_fn(config)

    return space, broken


def fixed_input_family(in_channels: int = 1, num_classes: int = 10):
    """A head sized for 4x4 inputs only: runs at a 4x4 search fidelity, not on 8x8 images."""
    return {"width": [8, 16]}, lambda config: nn.Sequential(nn.Flatten(), nn.Linear(in_channels * 16, num_classes))


def not_a_family():
    return 42


def three_items():
    return {"width": [8, 16]}, (lambda c: nn.Linear(1, 1)), "extra"


def not_callable_model():
    return {"width": [8, 16]}, "model"


def bad_param_space():
    return {"width": []}, (lambda c: nn.Linear(1, 1))


def raises_on_call():
    raise ImportError("needs a package this machine lacks")


NOT_A_FUNCTION = 3


def two_configs(in_channels: int = 1, num_classes: int = 10):
    """A space of two configs only."""
    return {"width": [8, 16]}, lambda config: nn.Sequential(nn.Flatten(), nn.LazyLinear(config["width"]), nn.ReLU(),
                                                            nn.Linear(config["width"], num_classes))
