"""The end-to-end search: config checks, a tiny digits run, resume, report rebuild, CLI."""

from __future__ import annotations

import io
import json
import re
import shutil
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ray_nasrank.cli import main
from ray_nasrank.pipeline import ConfigMismatchError, PipelineConfig, load_config
from ray_nasrank.pipeline._steps import prepare_out_dir, round_of

TINY = ["--dataset", "digits", "--budget", "4", "--rounds", "2", "--concurrency", "2", "--pool-size", "24",
        "--train-size", "400", "--valid-size", "200", "--test-size", "200", "--channels", "4",
        "--batch-size", "64", "--supernet-epochs", "1", "--finalist-epochs", "1", "--ranker-epochs", "5",
        "--image-size", "0", "--final-epochs", "1", "--final-train-size", "600", "--final-valid-size", "200",
        "--final-test-size", "200", "--min-steps", "0", "--no-progress"]


# ---------------------------------------------------------------------------------------- config
def test_config_round_trip_and_validation(tmp_path):
    cfg = PipelineConfig(dataset="digits", budget=6, rounds=3)
    assert PipelineConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert cfg.round_sizes() == [2, 2, 2] and PipelineConfig(budget=7, rounds=3).round_sizes() == [3, 2, 2]
    assert round_of(np.arange(1, 8), PipelineConfig(budget=7, rounds=3)).tolist() == [0, 0, 0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="unknown pipeline config keys \\['bogus'\\]"):
        PipelineConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    with pytest.raises(ValueError, match="dataset"):
        PipelineConfig(dataset="cifar100")
    with pytest.raises(ValueError, match="budget"):
        PipelineConfig(budget=0)
    with pytest.raises(ValueError, match="rounds=5 exceeds budget=4"):
        PipelineConfig(budget=4, rounds=5)
    with pytest.raises(ValueError, match="pool_size=3"):
        PipelineConfig(budget=4, pool_size=3)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_config(tmp_path / "config.json")


def test_cli_defaults_mirror_the_config_defaults():
    import argparse

    from ray_nasrank.cli import cmd_search

    parser = argparse.ArgumentParser()
    cmd_search.register(parser.add_subparsers())
    args = parser.parse_args(["search", "--out", "x"])
    cfg = cmd_search.config_from_args(args)
    assert cfg.to_dict() == {**PipelineConfig().to_dict(), "progress": None}


def test_config_mismatch_names_the_differing_keys(tmp_path):
    prepare_out_dir(tmp_path, PipelineConfig(dataset="digits", budget=4))
    # runtime keys may change between a run and its resumption
    prepare_out_dir(tmp_path, PipelineConfig(dataset="digits", budget=4, concurrency=1, address="auto"))
    with pytest.raises(ConfigMismatchError, match=r"budget: saved 4 vs now 6.*seed: saved 0 vs now 1"):
        prepare_out_dir(tmp_path, PipelineConfig(dataset="digits", budget=6, seed=1))
    rc = main(["search", "--out", str(tmp_path), *TINY[:2], "--budget", "5"])
    assert rc == 2


def test_unwritable_out_dir_fails_before_any_work(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rc = main(["search", "--out", str(blocker / "run"), *TINY])
    err = capsys.readouterr().err
    assert rc == 2 and "cannot create output directory" in err
    rc = main(["search", "--out", str(blocker), *TINY])
    assert rc == 2 and "File exists" in capsys.readouterr().err


def test_bad_user_data_is_one_clear_error_before_any_work(tmp_path, capsys):
    np.savez(tmp_path / "one.npz", x=np.zeros((10, 6, 6)), y=np.zeros(10))
    rc = main(["search", "--out", str(tmp_path / "run"), "--data", str(tmp_path / "one.npz"), "--no-progress"])
    assert rc == 2 and "one class only" in capsys.readouterr().err
    assert not (tmp_path / "run" / "data.json").exists() and not (tmp_path / "run" / "supernet.pt").exists()


# ---------------------------------------------------------------------------------------- end to end
class _Terminal(io.StringIO):
    """A captured stderr that says it is a terminal, so progress bars are drawn into it."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(scope="module")
def finished_run(ray_cluster, tmp_path_factory):
    """One tiny search through the CLI, on the session cluster by ``--address`` (the driver
    holds no Ray connection of its own), with the driver unable to train a supernet: the
    supernet must train inside its actor."""
    import ray

    import ray_nasrank.supernet as sn_pkg
    import ray_nasrank.supernet.train as sn_train

    ray.shutdown()
    out = tmp_path_factory.mktemp("pipeline") / "run"

    def no_training_in_the_driver(*a, **k):
        raise AssertionError("the supernet trained in the driver")

    buf, err = io.StringIO(), _Terminal()
    with pytest.MonkeyPatch.context() as mp, redirect_stdout(buf), redirect_stderr(err):
        mp.setattr(sn_train, "train_supernet", no_training_in_the_driver)
        mp.setattr(sn_pkg, "train_supernet", no_training_in_the_driver)
        # retrain as with large data: one winner at a time on both CPUs
        mp.setattr("ray_nasrank.pipeline._halving.SMALL_DATA_BYTES", 0)
        for var in ("TQDM_DISABLE", "CI"):  # progress shows as it would on a user's terminal
            mp.delenv(var, raising=False)
        rc = main(["search", "--out", str(out), *TINY[:-1], "--address", ray_cluster.address])
    connected = ray.is_initialized()
    ray.init(address=ray_cluster.address, log_to_driver=False)
    assert rc == 0, buf.getvalue() + err.getvalue()
    assert not connected, "the search left its Ray connection open"
    return out, buf.getvalue(), err.getvalue()


def _trial_dirs(out: Path) -> list[str]:
    return sorted(p.name for p in (out / "tune").iterdir() if p.is_dir())


@pytest.mark.ray
def test_search_end_to_end_writes_every_artefact(finished_run, ray_cluster):
    out, printed, _ = finished_run
    for name in ("config.json", "data.json", "steps.json", "supernet.pt", "random.parquet", "final.parquet", "weak_labels.parquet", "ranker.pt", "results.parquet", "best.json",
                 "report/index.html", "report/predicted_vs_true.png", "report/best_so_far.png",
                 "report/op_distribution.png"):
        assert (out / name).is_file(), name
    weak = pd.read_parquet(out / "weak_labels.parquet")
    assert len(weak) == 24 and weak["iso"].is_unique and weak["weak_supernet"].between(0, 100).all()
    from ray_nasrank.predictor import RankPredictor

    # the ranker is pretrained on the supernet's weak label and the cells' intrinsic labels
    assert RankPredictor.load(out / "ranker.pt").weak_names == ["weak_supernet", "params", "flops", "synflow"]
    res = pd.read_parquet(out / "results.parquet")
    assert len(res) == 4 and res["arch"].is_unique and set(res["arch"]) <= set(weak["arch"])
    assert res["order"].tolist() == [1, 2, 3, 4] and res["round"].tolist() == [0, 0, 1, 1]
    assert res["valid_acc"].between(0, 100).all() and res["test_acc"].between(0, 100).all()
    # round 0 is scored by the pretrained ranker; round 1 by the ranker fine-tuned on round 0
    np.testing.assert_allclose(res.loc[res["round"] == 0, "predicted"], res.loc[res["round"] == 0, "predicted_prior"])
    assert np.isfinite(res["predicted"]).all()
    best = json.loads((out / "best.json").read_text())
    assert best["search_valid_acc"] == res["valid_acc"].max() and best["arch"] in set(res["arch"])
    assert f"best architecture: {best['arch']}" in printed and "report: " in printed
    assert len(_trial_dirs(out)) == 4
    assert best["ray_address"] == ray_cluster.address
    # every step's time, the supernet's included (trained in its actor: the driver could not)
    assert {"data", "supernet", "weak_labels", "ranker", "search", "random_arm", "final", "report",
            "total_this_call"} <= set(best["step_seconds"])
    assert all(v >= 0 for v in best["step_seconds"].values())
    import torch

    sn = torch.load(out / "supernet.pt", weights_only=True)
    assert len(sn["history"]["epoch_loss"]) == 1 and np.isfinite(sn["history"]["epoch_loss"]).all()


@pytest.mark.ray
def test_random_arm_and_full_fidelity_retraining(finished_run):
    out, printed, _ = finished_run
    res = pd.read_parquet(out / "results.parquet")
    rnd = pd.read_parquet(out / "random.parquet")
    weak = pd.read_parquet(out / "weak_labels.parquet")
    # the random arm: as many distinct pool cells, the same recipe, weak labels attached
    assert len(rnd) == len(res) == 4 and rnd["arch"].is_unique and set(rnd["arch"]) <= set(weak["arch"])
    assert rnd["order"].tolist() == [1, 2, 3, 4] and rnd["valid_acc"].between(0, 100).all()
    assert np.isfinite(rnd["weak_supernet"]).all()
    final = pd.read_parquet(out / "final.parquet").set_index("arm")
    assert list(final.index) == ["nasrank", "random"]
    for arm, df in (("nasrank", res), ("random", rnd)):
        row = final.loc[arm]
        assert row["arch"] == df.loc[df["valid_acc"].idxmax(), "arch"]  # each arm's best is retrained
        assert row["search_valid_acc"] == df["valid_acc"].max()
        assert 0 <= row["test_acc"] <= 100 and 0 <= row["valid_acc"] <= 100
    best = json.loads((out / "best.json").read_text())
    assert best["test_acc"] == final.loc["nasrank", "test_acc"]
    assert best["random_baseline"]["test_acc"] == final.loc["random", "test_acc"]
    assert "random arm (4 random candidates, same recipe)" in printed
    data = json.loads((out / "data.json").read_text())
    assert data["splits"]["search"] == {"train": 400, "valid": 144, "test": 200, "image_shape": [1, 8, 8]}
    assert data["splits"]["final"]["train"] == 600 and data["num_classes"] == 10 and data["fingerprint"]
    # the search trains one cell per CPU; the retraining one winner at a time on both CPUs (one
    # full-size training in memory at a time)
    def threads(folder: str) -> list[int]:
        return [json.loads((d / "result.json").read_text().strip().splitlines()[-1])["threads"]
                for d in sorted((out / folder).iterdir()) if d.is_dir()]

    assert set(threads("tune")) == set(threads("tune_random")) == {1}
    assert threads("tune_final") and set(threads("tune_final")) == {2}


@pytest.mark.ray
def test_every_step_shows_progress(finished_run):
    _, _, err = finished_run
    err = re.sub(r"\x1b\[[0-9;]*m", "", err)  # rich's colours
    for bar in ("supernet epochs (in its actor)", "weak labels", "NASRank finalists", "random arm",
                "full-fidelity retraining"):
        assert bar in err, bar
    for name in ("data", "ranker pretraining", "report"):
        assert f"{name} done in" in err, name


@pytest.mark.ray
def test_rerun_resumes_without_training(finished_run, capsys):
    out, _, _ = finished_run
    before = json.loads((out / "best.json").read_text())
    trials = _trial_dirs(out)
    mtime = (out / "supernet.pt").stat().st_mtime
    assert main(["search", "--out", str(out), *TINY]) == 0
    printed = capsys.readouterr().out
    assert "nothing to train" in printed and before["arch"] in printed
    assert json.loads((out / "best.json").read_text())["arch"] == before["arch"]
    assert _trial_dirs(out) == trials and (out / "supernet.pt").stat().st_mtime == mtime


@pytest.mark.ray
def test_interrupted_after_tune_restores_the_experiment(finished_run, tmp_path):
    """Without results.parquet the Tune step runs again: Tuner.restore, no new trial."""
    src, _, _ = finished_run
    out = tmp_path / "copy"
    shutil.copytree(src, out)
    before = pd.read_parquet(out / "results.parquet")
    for name in ("results.parquet", "best.json"):
        (out / name).unlink()
    shutil.rmtree(out / "report")
    from ray_nasrank.pipeline import run_search

    res = run_search(load_config(out / "config.json"), out)
    assert res.ran == ["tune", "random", "final", "report"]
    assert _trial_dirs(out) == _trial_dirs(src)
    pd.testing.assert_series_equal(res.results["arch"], before["arch"])
    np.testing.assert_allclose(res.results["valid_acc"], before["valid_acc"])


@pytest.mark.ray
def test_report_command_rebuilds_from_results(finished_run, tmp_path, capsys):
    src, _, _ = finished_run
    out = tmp_path / "rep"
    out.mkdir()
    for name in ("results.parquet", "best.json"):
        shutil.copy(src / name, out / name)
    assert main(["report", str(out), "--top-k", "2"]) == 0
    printed = capsys.readouterr().out
    assert "best_so_far" in printed and (out / "report" / "index.html").is_file()
    html = (out / "report" / "index.html").read_text()
    assert json.loads((src / "best.json").read_text())["arch"] in html
    assert main(["report", str(tmp_path / "missing")]) == 2


@pytest.mark.ray
def test_shared_splits_are_the_data_and_need_no_copy_for_channels_last(ray_session):
    import torch

    from ray_nasrank.data import DatasetSplits, TensorSplit
    from ray_nasrank.pipeline._ray import open_splits, share_splits
    from ray_nasrank.training import _channels_last

    def part(n: int) -> TensorSplit:
        return TensorSplit(torch.randn(n, 3, 6, 6), torch.randint(0, 4, (n,)))

    splits = DatasetSplits(part(20), part(8), part(8), 4, "rgb")
    opened = open_splits(share_splits(splits))
    for name in ("train", "valid", "test"):
        assert torch.equal(getattr(opened, name).x, getattr(splits, name).x)
        assert torch.equal(getattr(opened, name).y, getattr(splits, name).y)
    # colour images in the object store are already channels-last: a trial maps them, never copies
    assert _channels_last(opened).train.x.data_ptr() == opened.train.x.data_ptr()
