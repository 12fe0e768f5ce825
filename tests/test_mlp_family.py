"""The MLP family (examples/mlp_family.py): its space, its models and its zero-cost proxies."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch

from ray_nasrank.spaces import INACTIVE


@pytest.fixture(scope="module")
def family():
    from _load import load_example

    return load_example("mlp_family")


def test_docstring_example_runs(family):
    failed, attempted = doctest.testmod(family, optionflags=doctest.ELLIPSIS)
    assert attempted >= 3 and failed == 0


def test_layers_past_the_depth_are_inactive_and_absent_from_the_model(family):
    sp = family.space()
    arch = sp.validate((1, 256, 32, 64, 128, "gelu", "none", 0.01, 1e-4, 0.5))
    assert arch[2:5] == (INACTIVE,) * 3
    model = family.build_model(sp.to_config(arch))
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(144, 256), (256, 10)]
    assert linears[0].bias is not None and not any(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules())
    deep = family.build_model(sp.to_config(sp.validate((4, 32, 64, 128, 256, "tanh", "batch", 0.1, 1e-3, 0.2))))
    linears = [m for m in deep.modules() if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == [32, 64, 128, 256, 10] and linears[0].bias is None
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in deep.modules()) == 4
    assert deep(torch.zeros(3, 1, 12, 12)).shape == (3, 10)
    # the table's form: inactive entries written out as "inactive", widths read back as text
    row = {"depth": 2, "w1": "64", "w2": "32", "w3": "inactive", "w4": "inactive", "act": "relu", "norm": "batch",
           "lr": 0.1, "wd": 1e-4, "dropout": 0.2}
    assert family.build_model(row)(torch.zeros(2, 1, 12, 12)).shape == (2, 10)
    assert family.build_model(row, (1, 8, 8))(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    assert family.train_config(row) == {"lr": 0.1, "weight_decay": 1e-4}


@pytest.mark.parametrize("bad, match", [({"depth": 3, "w1": 64, "w2": 64}, "no w3"),
                                        ({"depth": 5}, "depth 5"),
                                        ({"norm": "layer"}, "unknown norm"),
                                        ({"w1": 48}, "w1 48"),
                                        ({"act": "elu"}, "act")])
def test_a_bad_config_is_named(family, bad, match):
    config = {"depth": 1, "w1": 64, "act": "relu", "norm": "none", "dropout": 0.0, **bad}
    with pytest.raises(ValueError, match=match):
        family.build_model(config)


def test_the_table_proxies_are_finite_for_every_kind_of_config(family):
    """params, synflow, snip and jacov (the held-out table's weak labels) on both norms and all
    three activations, as ``--model examples/mlp_family.py:build_model --input-shape 1,12,12``."""
    from ray_nasrank.proxies import ModelProxies

    sp = family.space()
    configs = [sp.to_config(a) for a in sp.sample_many(12, 0, unique=True)]
    assert {(c["act"], c["norm"]) for c in configs} >= {("relu", "none"), ("tanh", "batch")}
    labels = ModelProxies(family.build_model, input_shape=(1, 12, 12), names=("params", "synflow", "snip", "jacov"),
                          on_error="raise")(configs)
    assert all(np.isfinite(v).all() for v in labels.values())
    params = [sum(p.numel() for p in family.build_model(c).parameters()) for c in configs]
    assert np.allclose(labels["params"] * 1e6, params)
