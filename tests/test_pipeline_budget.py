"""The main job's budget end to end: successive-halving rungs, the adaptive recipe, a search
already at the full fidelity (no retraining), and a time budget too short to run."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout

import pandas as pd
import pytest

from ray_nasrank.cli import main
from ray_nasrank.pipeline import PipelineConfig

SMALL = dict(space="_families:mlp_family", dataset="digits", pool_size=12, valid_size=150, test_size=150,
             batch_size=64, ranker_epochs=5, image_size=0, supernet_epochs=1, progress=False)


def _last(trial_dir) -> dict:
    return json.loads((trial_dir / "result.json").read_text().strip().splitlines()[-1])


@pytest.mark.ray
def test_successive_halving_climbs_to_the_full_fidelity(ray_session, tmp_path):
    from ray_nasrank.pipeline import run_search

    # 200 training images of 64: 4 steps an epoch, so --min-steps 8 makes the 1 epoch asked 2
    cfg = PipelineConfig(**SMALL, budget=4, rounds=2, rungs=3, halving=2, min_steps=8, train_size=200,
                         finalist_epochs=1, final_epochs=1, final_train_size=600, final_valid_size=150,
                         final_test_size=150)
    res = run_search(cfg, tmp_path / "run")
    out = res.out
    plan = json.loads((out / "plan.json").read_text())
    assert [r["configs"] for r in plan["rungs"]] == [4, 2, 1]
    assert [r["fidelity"]["train_images"] for r in plan["rungs"]] == [200, 346, 600]
    assert {r["fidelity"]["epochs"] for r in plan["rungs"]} == {2}  # the adaptive recipe's, not the 1 asked
    # every training really ran at its rung's epochs
    for folder in ("tune", "tune_random", "tune_rung2", "tune_final"):
        trials = [d for d in (out / folder).iterdir() if d.is_dir()]
        assert trials and {_last(d)["epoch"] for d in trials} == {2}, folder
    # small data: the two winners train side by side, one CPU each
    assert {_last(d)["threads"] for d in (out / "tune_final").iterdir() if d.is_dir()} == {1}
    rungs = pd.read_parquet(out / "rungs.parquet")
    for arm, first in (("nasrank", res.results), ("random", pd.read_parquet(out / "random.parquet"))):
        second = rungs[(rungs["arm"] == arm) & (rungs["rung"] == 2)]
        # each arm promotes its own two best of the first rung
        assert list(second["arch"]) == list(first.sort_values(["valid_acc", "order"], ascending=[False, True])
                                             ["arch"].head(2))
        top = rungs[(rungs["arm"] == arm) & (rungs["rung"] == 3)]
        assert len(top) == 1 and top["arch"].iloc[0] == second.sort_values("valid_acc", ascending=False,
                                                                            kind="stable")["arch"].iloc[0]
        assert top["train_images"].iloc[0] == 600
    final = pd.read_parquet(out / "final.parquet").set_index("arm")
    best = res.best
    assert best["arch"] == final.loc["nasrank", "arch"] and best["test_acc"] == final.loc["nasrank", "test_acc"]
    assert best["retrained"] and final["retrained"].all()
    # the fidelities actually trained at, not the configured limits
    assert best["fidelity"]["search"]["train_images"] == 200 and best["fidelity"]["search"]["epochs"] == 2
    assert best["fidelity"]["full"]["train_images"] == 600 and best["fidelity"]["full"]["image_size"] == 8
    lines = "\n".join(res.summary_lines())
    assert "successive halving: 4 -> 2 -> 1 candidates per arm over 3 rungs" in lines
    assert "full fidelity (8x8, 600 images, 2 epochs)" in lines
    page = (out / "report" / "index.html").read_text()
    assert "Successive halving" in page and "search fidelity (actually trained)" in page


@pytest.mark.ray
def test_a_search_at_the_full_fidelity_is_not_retrained(ray_session, tmp_path):
    from ray_nasrank.pipeline import run_search

    # the whole training split at its own size, the same epochs: retraining would repeat it
    cfg = PipelineConfig(**SMALL, budget=2, rounds=1, baseline="none", min_steps=20, halving=2, train_size=0,
                         finalist_epochs=2, final_epochs=2, final_valid_size=150, final_test_size=150)
    res = run_search(cfg, tmp_path / "run")
    out = res.out
    assert not (out / "tune_final").exists()
    best = res.best
    assert best["retrained"] is False and best["fidelity"]["search"] == best["fidelity"]["full"]
    data = json.loads((out / "data.json").read_text())["splits"]["final"]
    # what the data really has, not the 10,000 of the default limit nor the 14x14 of the default size
    assert (best["fidelity"]["full"]["train_images"], best["fidelity"]["full"]["image_size"]) == (data["train"], 8)
    assert any(n.startswith("full-fidelity retraining skipped") for n in best["notes"])
    row = res.results.loc[res.results["arch"] == best["arch"]].iloc[0]
    assert best["test_acc"] == pytest.approx(row["test_acc"])  # its search training is the result
    lines = "\n".join(res.summary_lines())
    assert "not retrained" in lines and "note: full-fidelity retraining skipped" in lines


def test_a_time_budget_shorter_than_the_smallest_search_is_refused_before_ray(tmp_path):
    import ray

    was = ray.is_initialized()
    err, buf = io.StringIO(), io.StringIO()
    with redirect_stderr(err), redirect_stdout(buf):
        rc = main(["search", "--out", str(tmp_path / "run"), "--dataset", "digits", "--space",
                   "_families:mlp_family", "--time-budget", "3", "--pool-size", "12", "--no-progress"])
    assert rc == 2, buf.getvalue() + err.getvalue()
    msg = err.getvalue()
    assert "a time budget of 3 s is shorter than the smallest search: about" in msg
    assert "Give at least --time-budget" in msg and "(or --baseline none" in msg
    assert not (tmp_path / "run" / "weak_labels.parquet").exists() and ray.is_initialized() == was
    # a longer budget on the same folder is not a different experiment
    assert json.loads((tmp_path / "run" / "config.json").read_text())["time_budget"] == "3"
