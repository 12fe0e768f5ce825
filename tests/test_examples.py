"""Every example runs with a tiny budget (imported ``main(budget=...)``, inside the test Ray)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
ARCH = re.compile(r"^\|[a-z_0-9]+~0\|\+\|.*\|$")


def load(name: str):
    from _load import load_example

    return load_example(name)


def test_every_example_is_tested():
    tested = {"tune_existing_script", "optuna_ask_tell", "optuna_search_tune", "own_space_and_trainable", "cnn_family",
              "mixed_cnn", "mlp_family", "gap_cnn_family"}
    assert {p.stem for p in EXAMPLES.glob("*.py")} == tested


def test_optuna_ask_tell():
    out = load("optuna_ask_tell").main(budget=4, batch=2, pool_size=50)
    assert out["trials"] == 4 and ARCH.match(out["arch"]) and 0 <= out["valid_acc"] <= 100
    assert out["valid_acc"] > 20  # trained for real: well above the 10 % of chance


def test_cnn_family_with_model_weak_labels():
    out = load("cnn_family").main(budget=4, batch=2)
    assert out["trials"] == 4 and out["pretrained_on"] == ["params", "synflow"]
    assert out["valid_acc"] > 20  # trained for real: well above the 10 % of chance


def test_mixed_cnn_define_by_run_search():
    out = load("mixed_cnn").main(budget=3, pool_size=100)
    assert out["trials"] == 3 and 1 <= out["config"]["depth"] <= 3 and 0.003 <= out["config"]["lr"] <= 1.0
    assert out["valid_acc"] > 20


def test_mlp_family_define_by_run_search():
    out = load("mlp_family").main(budget=3, pool_size=100)
    assert out["trials"] == 3 and 1 <= out["config"]["depth"] <= 4 and 0.003 <= out["config"]["lr"] <= 1.0
    assert out["valid_acc"] > 20


def test_gap_cnn_family_define_by_run_search():
    out = load("gap_cnn_family").main(budget=3, pool_size=100)
    assert out["trials"] == 3 and 1 <= out["config"]["stages"] <= 3 and 3e-4 <= out["config"]["lr"] <= 0.03
    assert out["valid_acc"] > 20


@pytest.mark.ray
def test_tune_existing_script(ray_session):
    out = load("tune_existing_script").main(budget=4, concurrency=2, pool_size=50)
    assert out["trials"] == 4 and ARCH.match(out["arch"]) and out["valid_acc"] > 20


@pytest.mark.ray
def test_optuna_search_tune(ray_session):
    out = load("optuna_search_tune").main(budget=3, concurrency=2)
    assert out["trials"] == 3 and out["distinct_archs"] == 3 and ARCH.match(out["arch"])


@pytest.mark.ray
def test_own_space_and_trainable(ray_session):
    out = load("own_space_and_trainable").main(budget=4, concurrency=2)
    assert out["trials"] == 4 and out["space_size"] == 3 * 4 * 3 * 2
    assert set(out["model"]) == {"depth", "width", "act", "dropout"} and out["valid_acc"] > 50
