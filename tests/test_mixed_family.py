"""The mixed architecture + hyperparameter CNN family and the ground-truth builder that trains it."""

from __future__ import annotations

import csv
import doctest
import sys
from pathlib import Path

import pytest
import torch

from ray_nasrank.spaces import INACTIVE

REPO = Path(__file__).resolve().parents[1]


def load_script(name: str, path: Path):
    from _load import load_file

    return load_file(path, name)


def tiny_family(path: Path, limit_train: int) -> Path:
    """A family file reusing mixed_cnn with a seconds-sized digits recipe."""
    path.write_text(f"import sys\nsys.path.insert(0, {str(REPO / 'examples')!r})\n"
                    "from mixed_cnn import build_model, space, train_config  # noqa\n"
                    f"RECIPE = {{'dataset': 'digits', 'image_size': 8, 'limit_train': {limit_train}, "
                    "'limit_valid': 100, 'limit_test': 100, 'epochs': 1, 'batch_size': 64, 'bn_recalibrate': 0}\n")
    return path


@pytest.fixture(scope="module")
def family():
    return load_script("mixed_cnn_under_test", REPO / "examples" / "mixed_cnn.py")


def test_docstring_example_runs(family):
    failed, attempted = doctest.testmod(family, optionflags=doctest.ELLIPSIS)
    assert attempted >= 3 and failed == 0


def test_blocks_past_the_depth_are_inactive_and_absent_from_the_model(family):
    sp = family.space()
    arch = sp.validate((1, "conv5", 32, "sep3", 8, "conv1", 8, "gelu", 0.01, 1e-4, 0.5))
    assert arch[3:7] == (INACTIVE,) * 4
    model = family.build_model(sp.to_config(arch))
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(5, 5)] and convs[0].out_channels == 32
    deep = family.build_model(sp.to_config(sp.validate((3, "sep3", 8, "conv3", 16, "conv1", 32, "relu", 0.1, 1e-3, 0.0))))
    assert [m.out_channels for m in deep.modules() if isinstance(m, torch.nn.Conv2d)] == [1, 8, 16, 32]
    assert deep(torch.zeros(3, 1, 12, 12)).shape == (3, 10)
    # the table's form: inactive entries written out as "inactive", widths read back as text
    row = {"depth": 2, "op1": "conv3", "w1": "8", "op2": "conv1", "w2": "16", "op3": "inactive", "w3": "inactive",
           "act": "tanh", "lr": 0.1, "wd": 1e-4, "dropout": 0.2}
    assert family.build_model(row)(torch.zeros(1, 1, 10, 10)).shape == (1, 10)
    assert family.train_config(row) == {"lr": 0.1, "weight_decay": 1e-4}


@pytest.mark.parametrize("config, named", [
    ({"depth": 2, "op1": "conv3", "w1": 8, "act": "relu"}, "op2"),
    ({"depth": 1, "op1": "conv7", "w1": 8, "act": "relu"}, "conv7"),
    ({"depth": 1, "op1": "conv3", "w1": 8, "act": "swish"}, "swish"),
    ({"depth": 4, "op1": "conv3", "w1": 8, "act": "relu"}, "depth 4"),
])
def test_bad_configs_name_the_problem(family, config, named):
    with pytest.raises(ValueError, match=named):
        family.build_model(config)


def test_ground_truth_builder_writes_resumable_rows_with_hyperparameters(tmp_path):
    from ray_nasrank.benchmarks import TabularBenchmark

    fam = tiny_family(tmp_path / "tiny_mixed.py", limit_train=300)
    builder = load_script("own_model_ground_truth_under_test", REPO / "scripts" / "own_model_ground_truth.py")
    out = tmp_path / "gt.csv"
    args = ["--family", str(fam), "--num-configs", "3", "--out", str(out)]
    try:
        assert builder.main([*args, "--limit", "2"]) == 0
        with out.open() as f:
            first = list(csv.DictReader(f))
        assert len(first) == 2
        assert builder.main(args) == 0  # resumes: trains only the third config
    finally:
        sys.path[:] = [p for p in sys.path if p != str(tmp_path)]
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert rows[:2] == first and len(rows) == 3
    assert list(rows[0]) == ["depth", "op1", "w1", "op2", "w2", "op3", "w3", "act", "lr", "wd", "dropout",
                             "valid_acc", "test_acc", "params", "seconds", "cpu_seconds"]
    for r in rows:
        assert all(r[f"op{i}"] == "inactive" for i in range(int(r["depth"]) + 1, 4))
        assert 0 <= float(r["test_acc"]) <= 100 and float(r["cpu_seconds"]) > 0
    recipe = (tmp_path / "gt.recipe.json").read_text()
    assert '"dataset": "digits"' in recipe and '"per_config": "train_config(config)"' in recipe
    bench = TabularBenchmark.from_file(out, space="columns", arch_cols=["depth", "op1", "w1", "op2", "w2", "op3",
                                                                          "w3", "act"],
                                       num_cols=["lr:log", "wd:log", "dropout"], target="valid_acc")
    assert len(bench) == 3 and bench.space.numeric


def test_ground_truth_rows_do_not_depend_on_what_ran_before(tmp_path):
    """Weights, batch order and dropout masks are seeded per config: a shard trains a row as a
    single process would."""
    fam = tiny_family(tmp_path / "tiny_mixed2.py", limit_train=200)
    builder = load_script("own_model_ground_truth_under_test2", REPO / "scripts" / "own_model_ground_truth.py")
    try:
        builder.main(["--family", str(fam), "--num-configs", "2", "--out", str(tmp_path / "a.csv")])
        builder.main(["--family", str(fam), "--num-configs", "2", "--shard", "1/2", "--out", str(tmp_path / "b.csv")])
    finally:
        sys.path[:] = [p for p in sys.path if p != str(tmp_path)]
    with (tmp_path / "a.csv").open() as f:
        a = list(csv.DictReader(f))
    with (tmp_path / "b.csv").open() as f:
        b = list(csv.DictReader(f))
    keep = lambda r: {k: v for k, v in r.items() if "seconds" not in k}  # noqa: E731
    assert len(b) == 1 and keep(b[0]) == keep(a[1])


def test_learning_curve_table_records_every_epoch_and_resumes(tmp_path):
    """scripts/learning_curve_table.py shares the ground-truth script's sampling, resuming and
    training setup: one row per config with the validation accuracy after every epoch."""
    fam = tiny_family(tmp_path / "tiny_mixed3.py", limit_train=200)
    builder = load_script("learning_curve_table_under_test", REPO / "scripts" / "learning_curve_table.py")
    out = tmp_path / "lc.csv"
    args = ["--family", str(fam), "--num-configs", "2", "--epochs", "2", "--out", str(out)]
    try:
        assert builder.main([*args, "--limit", "1"]) == 0
        assert builder.main(args) == 0  # resumes: trains only the second config
    finally:
        sys.path[:] = [p for p in sys.path if p != str(tmp_path)]
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and rows[0] != rows[1]
    assert list(rows[0])[11:] == ["valid_acc_1", "valid_acc_2", "test_acc", "diverged_epoch", "params", "seconds",
                                  "cpu_seconds"]
    assert all(0 <= float(r[f"valid_acc_{e}"]) <= 100 for r in rows for e in (1, 2))
    recipe = (tmp_path / "lc.recipe.json").read_text()
    assert '"epochs": 2' in recipe and '"eval_every": 1' in recipe and "--epochs 2" in recipe


@pytest.mark.slow
def test_nasrank_beats_multivariate_tpe_and_random_on_the_mixed_table(tmp_path):
    """The docs/benchmarks/mixed_space.md figure: 20 seeds, mean best after 10/20/50 lookups."""
    from ray_nasrank.benchmarks import SearchBenchConfig, bench_search

    table = REPO / "results" / "mixed_cnn" / "fmnist.csv"
    cfg = SearchBenchConfig(
        table=str(table), space="columns", arch_cols=["depth", "op1", "w1", "op2", "w2", "op3", "w3", "act"],
        num_cols=["lr:log", "wd:log", "dropout"], target="test_acc",
        model=f"{REPO / 'examples' / 'mixed_cnn.py'}:build_model", input_shape=[1, 10, 10],
        intrinsic=["params", "synflow"], strategies=["nasrank", "optuna-tpe", "random"], budget=50, seeds=20,
        strategy_args={"optuna-tpe": {"sampler_kwargs": {"multivariate": True}}}, out=str(tmp_path / "s.json"))
    best = {k: v["best_at"] for k, v in bench_search(cfg)["strategies"].items()}
    for k in ("10", "20", "50"):
        assert best["nasrank"][k] >= max(best["optuna-tpe"][k], best["random"][k]), (k, best)
