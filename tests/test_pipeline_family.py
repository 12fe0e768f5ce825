"""``ray-nasrank search --space MODULE:FUNCTION``: the main job on the user's own model family.

Two families end to end on digits (a ChoiceSupernet through the CLI, a ``(param_space,
model_fn)`` pair through :func:`run_search`), and one clear error for each kind of bad input.
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ray_nasrank.cli import main
from ray_nasrank.families import ModelFamily, SpaceError, family_from, load_family, sampled_pool
from ray_nasrank.pipeline import PipelineConfig

CNN = str(Path(__file__).resolve().parents[1] / "examples" / "cnn_family.py") + ":family"
TINY = ["--dataset", "digits", "--budget", "3", "--rounds", "2", "--concurrency", "2", "--pool-size", "12",
        "--train-size", "300", "--valid-size", "150", "--test-size", "150", "--batch-size", "64",
        "--supernet-epochs", "1", "--finalist-epochs", "1", "--ranker-epochs", "5", "--image-size", "0",
        "--final-epochs", "1", "--final-train-size", "400", "--final-valid-size", "150",
        "--final-test-size", "150", "--min-steps", "0", "--no-progress"]


# ---------------------------------------------------------------------------------------- loading
def test_a_choice_supernet_gives_its_space_models_and_itself():
    from ray_nasrank.nn import ChoiceSupernet

    fam = load_family(CNN, in_channels=3, num_classes=4)
    assert isinstance(fam.supernet, ChoiceSupernet) and fam.space == fam.supernet.space
    assert fam.space.size == 576 and fam.module and fam.constants == {}
    config = fam.config(fam.space.sample(0))
    net = fam.build(config)
    import torch

    # the data's channels and classes reached the function
    assert net(torch.zeros(2, 3, 8, 8)).shape == (2, 4)
    # a fresh model: not the supernet's (trained) weights
    assert all(p.data_ptr() != q.data_ptr() for p in net.parameters() for q in fam.supernet.parameters())


def test_a_pair_gives_the_tune_space_its_constants_and_the_recipe_fields():
    from _families import mlp_family

    fam = family_from(mlp_family(), "_families:mlp_family")
    assert [d.name for d in fam.space.decisions] == ["width", "depth", "lr"] and fam.supernet is None
    assert fam.constants == {"dropout": 0.0}
    config = fam.config(fam.space.sample(1))
    assert config["dropout"] == 0.0 and 0.02 <= config["lr"] <= 0.2
    recipe = fam.train_config({"epochs": 3, "lr": 0.5, "batch_size": 32}, config)
    assert recipe.lr == config["lr"] and recipe.epochs == 3 and recipe.batch_size == 32
    with pytest.raises(SpaceError, match="training recipe.*lr"):
        fam.train_config({"epochs": 1}, {**config, "lr": -1.0})


def test_a_search_space_object_is_taken_as_is():
    from torch import nn

    from ray_nasrank.spaces import Float, SearchSpace

    space = SearchSpace({"width": [4, 8], "weight_decay": Float(1e-5, 1e-3, log=True)})
    fam = family_from((space, lambda c: nn.Linear(1, c["width"])), "x:y")
    assert fam.space is space and isinstance(fam, ModelFamily)
    assert set(fam.recipe(fam.config(space.sample(0)))) == {"weight_decay"}


@pytest.mark.parametrize("spec, message", [
    ("no_such_module_xyz:family", "cannot import no_such_module_xyz"),
    ("_families:nope", "has no callable 'nope'"),
    ("_families:NOT_A_FUNCTION", "has no callable 'NOT_A_FUNCTION'"),
    ("missing/file.py:family", "no file missing/file.py"),
    ("_families:not_a_family", "returned a int; return a ModelFamily, a ChoiceSupernet"),
    ("_families:three_items", "returned 3 items"),
    ("_families:not_callable_model", "the second item must be model_fn"),
    ("_families:bad_param_space", "malformed param_space"),
    ("_families:raises_on_call", "raised ImportError: needs a package"),
    ("_families:", "MODULE:FUNCTION"),
])
def test_bad_space_is_one_clear_error_before_any_work(spec, message, tmp_path, capsys):
    rc = main(["search", "--out", str(tmp_path / "run"), "--space", spec, *TINY])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and spec in err, err
    assert not (tmp_path / "run" / "weak_labels.parquet").exists()


def test_a_model_that_cannot_take_the_full_fidelity_inputs_fails_before_any_work(tmp_path, capsys):
    # 4x4 at the search fidelity runs; the 8x8 retraining would not
    rc = main(["search", "--out", str(tmp_path / "run"), "--space", "_families:fixed_input_family",
               *TINY[:-7], "--image-size", "4", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "full-fidelity inputs of shape (1, 8, 8)" in err and "'width'" in err, err


def test_config_checks_of_a_model_family():
    assert PipelineConfig(space="pkg.models:family").space == "pkg.models:family"
    with pytest.raises(ValueError, match="unknown space 'nb202'.*MODULE:FUNCTION"):
        PipelineConfig(space="nb202")



def test_a_pool_of_every_candidate_needs_a_small_finite_space():
    from ray_nasrank.spaces import Float, SearchSpace

    small = SearchSpace({"w": [8, 16], "k": [3, 5, 7]})
    assert sorted(sampled_pool(small, 0, seed=0)) == sorted(small.enumerate())
    with pytest.raises(ValueError, match="pool_size=0.*finite space"):
        sampled_pool(SearchSpace({"lr": Float(1e-3, 1e-1, log=True)}), 0, seed=0)


def test_a_space_smaller_than_the_search_is_one_clear_error(tmp_path, capsys):
    rc = main(["search", "--out", str(tmp_path / "run"), "--space", "_families:two_configs", *TINY])
    err = capsys.readouterr().err
    assert rc == 2 and "asks for 6 distinct trainings (both arms), but the candidate pool holds 2" in err, err
    assert "would take" in err and len(err.strip().splitlines()) == 1, err


# ---------------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def cnn_run(ray_cluster, tmp_path_factory):
    """examples/cnn_family.py:family (a ChoiceSupernet) through the CLI on the session cluster."""
    import ray

    ray.shutdown()
    out = tmp_path_factory.mktemp("family") / "run"
    buf, err = io.StringIO(), io.StringIO()
    with redirect_stdout(buf), redirect_stderr(err):
        rc = main(["search", "--out", str(out), "--space", CNN, *TINY, "--address", ray_cluster.address])
    ray.init(address=ray_cluster.address, log_to_driver=False)
    assert rc == 0, buf.getvalue() + err.getvalue()
    return out, buf.getvalue()


@pytest.mark.ray
@pytest.mark.slow  # ~1 min idle (3 Tune runs and a supernet); the pair family below covers the default suite
def test_choice_supernet_family_end_to_end(cnn_run):
    out, printed = cnn_run
    fam = load_family(CNN, 1, 10)
    weak = pd.read_parquet(out / "weak_labels.parquet")
    # the supernet trained in its actor plus the models' zero-cost proxies
    assert {"weak_supernet", "weak_params", "weak_snip"} <= set(weak.columns)
    assert len(weak) == 12 and weak["arch"].is_unique and np.isfinite(weak.filter(like="weak_")).all().all()
    assert weak["weak_supernet"].between(0, 100).all() and (out / "supernet.pt").is_file()
    res = pd.read_parquet(out / "results.parquet")
    rnd = pd.read_parquet(out / "random.parquet")
    final = pd.read_parquet(out / "final.parquet")
    for table in (res, rnd):
        assert len(table) == 3 and set(table["arch"]) <= set(weak["arch"]) and table["error"].isna().all()
        assert table["valid_acc"].between(0, 100).all()
        for a in table["arch"]:
            fam.space.from_string(a)  # strings of the family's space
    assert final["arm"].tolist() == ["nasrank", "random"] and final["test_acc"].between(0, 100).all()
    best = json.loads((out / "best.json").read_text())
    assert best["space"] == CNN and best["arch"] in set(res["arch"])
    assert {"supernet", "weak_labels", "search", "random_arm", "final"} <= set(best["step_seconds"])
    assert f"best architecture: {best['arch']}" in printed
    page = (out / "report" / "index.html").read_text()
    assert (out / "report" / "decisions.png").is_file() and not (out / "report" / "op_distribution.png").exists()
    assert "Decisions of the top architectures" in page and "op per edge" not in page


@pytest.mark.ray
@pytest.mark.slow
def test_rerun_of_a_family_run_resumes_and_the_report_command_reads_it(cnn_run, capsys):
    out, _ = cnn_run
    import ray

    ray.shutdown()
    assert main(["search", "--out", str(out), "--space", CNN, *TINY]) == 0
    assert "nothing to train" in capsys.readouterr().out
    assert main(["report", str(out)]) == 0


@pytest.mark.ray
def test_param_space_and_model_fn_family_end_to_end(ray_session, tmp_path):
    from ray_nasrank.pipeline import run_search

    cfg = PipelineConfig(space="_families:mlp_family", dataset="digits", budget=3, rounds=1, baseline="none",
                         pool_size=12, train_size=300, valid_size=150, test_size=150, batch_size=64,
                         finalist_epochs=1, ranker_epochs=5, image_size=0, final_epochs=1, final_train_size=400,
                         final_valid_size=150, final_test_size=150, min_steps=0, progress=False)
    res = run_search(cfg, tmp_path / "run")
    out = res.out
    weak = pd.read_parquet(out / "weak_labels.parquet")
    # no supernet: the weak labels are the models' zero-cost proxies
    assert not (out / "supernet.pt").exists() and "weak_supernet" not in weak.columns
    assert {"weak_params", "weak_snip"} <= set(weak.columns) and len(weak) == 12
    # no training failed: model_fn also got the constant (it reads config["dropout"])
    assert len(res.results) == 3 and res.results["error"].isna().all()
    assert res.best["test_acc"] is not None and 0 <= res.best["test_acc"] <= 100
    # the sampled learning rate of each finalist reached its training recipe
    for trial in (out / "tune").iterdir():
        if not trial.is_dir():
            continue
        last = json.loads((trial / "result.json").read_text().strip().splitlines()[-1])
        assert last["lr"] == pytest.approx(last["config"]["lr"])


@pytest.mark.ray
def test_a_model_fn_raising_for_a_candidate_names_it(ray_session, tmp_path):
    from ray_nasrank.pipeline import run_search

    cfg = PipelineConfig(space="_families:raising_family", dataset="digits", budget=2, rounds=1, baseline="none",
                         pool_size=8, train_size=200, valid_size=100, test_size=100, image_size=0,
                         min_steps=0, progress=False)
    with pytest.raises(SpaceError, match=r"raised for config \{.*'width': 32.*width 32 is not supported"):
        run_search(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "weak_labels.parquet").exists()


def test_the_howto_page_families_load_and_build():
    """The two families of docs/howto/own_model_family.md, as written, give a working family."""
    import re

    import torch

    page = (Path(__file__).resolve().parents[1] / "docs" / "howto" / "own_model_family.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", page, re.S) if "def family(" in b]
    assert len(blocks) == 2
    for code in blocks:
        ns: dict = {}
        exec(compile(code, "own_model_family.md", "exec"), ns)  # noqa: S102 -- the page's own snippet
        fam = family_from(ns["family"](in_channels=1, num_classes=10), "doc:family")
        config = fam.config(fam.space.sample(0))
        net = fam.check_input(config, torch.zeros(2, 1, 14, 14), "the doc's inputs")
        assert net(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
