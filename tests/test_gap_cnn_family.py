"""The GAP-CNN family (examples/gap_cnn_family.py): its space, its models and its zero-cost proxies."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def family():
    from _load import load_example

    return load_example("gap_cnn_family")


def config(**over):
    return {"stages": 2, "width": 8, "growth": 2, "blocks": 1, "kernel": 3, "down": "stride", "residual": "no",
            "norm": "none", "act": "relu", "lr": 0.01, "wd": 1e-3, "label_smoothing": 0.1, "batch_size": 64, **over}


def test_docstring_example_runs(family):
    failed, attempted = doctest.testmod(family, optionflags=doctest.ELLIPSIS)
    assert attempted >= 3 and failed == 0


def convs(model):
    return [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]


def test_the_decisions_shape_the_model(family):
    # stem + per stage (a transition past the first) + 2 convs per block
    plain = family.build_model(config())
    assert [(c.in_channels, c.out_channels, c.stride) for c in convs(plain)] == [
        (1, 8, (1, 1)), (8, 8, (1, 1)), (8, 8, (1, 1)), (8, 16, (2, 2)), (16, 16, (1, 1)), (16, 16, (1, 1))]
    assert all(c.bias is not None for c in convs(plain)) and plain[-1].in_features == 16
    # pooling instead of a strided conv; 5x5 kernels; GroupNorm (and no conv bias) after every conv
    pooled = family.build_model(config(down="avgpool", kernel=5, norm="group", stages=3, blocks=2, growth=1))
    assert sum(isinstance(m, torch.nn.AvgPool2d) for m in pooled.modules()) == 2
    assert all(c.kernel_size == (5, 5) and c.stride == (1, 1) and c.bias is None for c in convs(pooled))
    assert sum(isinstance(m, torch.nn.GroupNorm) for m in pooled.modules()) == len(convs(pooled)) == 1 + 2 + 3 * 4
    batch = family.build_model(config(norm="batch", down="maxpool", act="silu"))
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in batch.modules()) == len(convs(batch))
    assert any(isinstance(m, torch.nn.MaxPool2d) for m in batch.modules())
    assert any(isinstance(m, torch.nn.SiLU) for m in batch.modules())
    for model in (plain, pooled, batch):
        assert model(torch.randn(3, 1, 8, 8)).shape == (3, 10)
        assert model(torch.randn(2, 1, 12, 12)).shape == (2, 10)  # the head pools globally


def test_the_residual_adds_the_blocks_input(family):
    torch.manual_seed(0)
    model = family.build_model(config(residual="yes", stages=1))
    block = model[1]
    x = torch.randn(2, 8, 8, 8)
    torch.testing.assert_close(block(x), torch.relu(x + block.body(x)))
    block.residual = False
    torch.testing.assert_close(block(x), torch.relu(block.body(x)))


def test_a_table_row_builds_and_sets_the_training(family):
    # the table's form: every value read back as text
    row = {k: str(v) for k, v in config(width=16, norm="batch", residual="yes").items()}
    assert family.build_model(row)(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    assert family.train_config(row) == {"lr": 0.01, "weight_decay": 1e-3, "label_smoothing": 0.1, "batch_size": 64}


@pytest.mark.parametrize("bad, match", [({"width": 12}, "width 12"), ({"norm": "layer"}, "norm 'layer'"),
                                        ({"act": "tanh"}, "act 'tanh'"), ({"down": "pool"}, "down 'pool'"),
                                        ({"stages": None}, "stages None")])
def test_a_bad_config_is_named(family, bad, match):
    with pytest.raises(ValueError, match=match):
        family.build_model(config(**bad))


def test_a_missing_decision_is_named(family):
    c = config()
    del c["kernel"]
    with pytest.raises(ValueError, match="missing 'kernel'"):
        family.build_model(c)


def test_the_table_proxies_are_finite_for_every_kind_of_config(family):
    """params, FLOPs, SynFlow, SNIP and jacov (the held-out table's weak labels) on every norm,
    activation, residual and downsampling choice, as ``--model
    examples/gap_cnn_family.py:build_model --input-shape 1,8,8``."""
    from ray_nasrank.proxies import ModelProxies

    # six configs that hold every choice of these four decisions at least once
    configs = [config(norm=family.NORMS[i % 3], act=tuple(family.ACTS)[(i // 2) % 3], residual=family.RESIDUALS[i % 2],
                      down=family.DOWNS[(i + 1) % 3], stages=2 + i % 2) for i in range(6)]
    for key, choices in (("norm", family.NORMS), ("act", tuple(family.ACTS)), ("residual", family.RESIDUALS),
                         ("down", family.DOWNS)):
        assert {c[key] for c in configs} == set(choices)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread avoids oversubscription on a shared machine
    try:
        labels = ModelProxies(family.build_model, input_shape=(1, 8, 8),
                              names=("params", "flops", "synflow", "snip", "jacov"), on_error="raise")(configs)
    finally:
        torch.set_num_threads(threads)
    assert all(np.isfinite(v).all() for v in labels.values())
    assert all(len(np.unique(labels[k])) > 1 for k in ("synflow", "snip", "jacov"))
    params = [sum(p.numel() for p in family.build_model(c).parameters()) for c in configs]
    assert np.allclose(labels["params"] * 1e6, params)
