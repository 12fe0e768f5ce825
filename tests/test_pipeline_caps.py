"""The main job's caps: --max-params, --max-flops, --max-latency-ms (pool filtering, refusals,
latency measurement, best.json, the report's plots, and a run end to end)."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from ray_nasrank.cli import main
from ray_nasrank.pipeline import ConfigMismatchError, PipelineConfig, load_config
from ray_nasrank.pipeline._caps import (
    LatencyMethod,
    PoolCosts,
    _built_costs,
    cap_pool,
    measure_latency,
    model_costs,
    parse_count,
)
from ray_nasrank.pipeline._prechecks import PrecheckError
from ray_nasrank.pipeline._steps import family_of, prepare_out_dir

NB201_TINY = ["--dataset", "digits", "--budget", "2", "--rounds", "1", "--pool-size", "12", "--channels", "4",
              "--train-size", "300", "--valid-size", "150", "--test-size", "150", "--batch-size", "64",
              "--image-size", "0", "--final-train-size", "400", "--final-valid-size", "150",
              "--final-test-size", "150", "--min-steps", "0", "--no-progress"]


def _run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


# ------------------------------------------------------------------------------ flags and config
@pytest.mark.parametrize("flag,value", [("--max-params", "0"), ("--max-params", "-5"), ("--max-flops", "lots"),
                                        ("--max-flops", "nan"), ("--max-latency-ms", "inf"),
                                        ("--max-latency-ms", "2k"), ("--max-params", "1.5Q")])
def test_a_bad_cap_is_one_argparse_error(flag, value, tmp_path):
    rc, _, err = _run_cli(["search", "--out", str(tmp_path / "run"), "--dataset", "digits", flag, value])
    assert rc == 2 and err.count("\n") == 1, err
    assert f"argument {flag}" in err and repr(value) in err
    assert not (tmp_path / "run").exists()  # refused before anything is written


def test_caps_parse_counts_and_are_checked_in_the_config(tmp_path):
    assert parse_count("1.5M") == 1.5e6 and parse_count("250k") == 2.5e5 and parse_count("20") == 20.0
    with pytest.raises(ValueError, match="max_latency_ms must be"):
        PipelineConfig(dataset="digits", max_latency_ms=0)
    with pytest.raises(ValueError, match="latency_batch_size must be"):
        PipelineConfig(dataset="digits", latency_batch_size=0)
    cfg = PipelineConfig(dataset="digits", max_params=5e4)
    assert PipelineConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_resuming_with_other_caps_is_refused_once_the_capped_pool_was_used(tmp_path):
    prepare_out_dir(tmp_path, PipelineConfig(dataset="digits", max_params=5e4))
    # nothing computed from the capped pool yet (a refused cap): other caps start over
    prepare_out_dir(tmp_path, PipelineConfig(dataset="digits", max_params=6e4))
    assert json.loads((tmp_path / "config.json").read_text())["max_params"] == 6e4
    (tmp_path / "weak_labels.parquet").write_bytes(b"computed from the capped pool")
    prepare_out_dir(tmp_path, PipelineConfig(dataset="digits", max_params=60000))  # the same cap
    with pytest.raises(ConfigMismatchError, match=r"max_latency_ms: saved None vs now 2\.0.*max_params: saved "
                                                  r"60000\.0 vs now 70000\.0"):
        prepare_out_dir(tmp_path, PipelineConfig(dataset="digits", max_params=7e4, max_latency_ms=2))
    with pytest.raises(ConfigMismatchError, match=r"budget: saved 8 vs now 4"):  # other keys as before
        prepare_out_dir(tmp_path, PipelineConfig(dataset="digits", max_params=6e4, budget=4))


# ------------------------------------------------------------------------------ measurements
def test_params_and_flops_are_those_of_the_built_models():
    """NB201's fast path (from five networks) and a user family's built models give the counts
    of the model as trained: trainable parameters, and multiply-accumulates of one image."""
    from torch.utils.flop_counter import FlopCounterMode

    cfg = PipelineConfig(dataset="digits", channels=4)
    for spec in ("nb201", "_families:mlp_family"):
        fam = family_of(PipelineConfig(dataset="digits", channels=4, space=spec), 1, 10)
        pool = fam.candidate_pool(6, seed=1)
        got = model_costs(fam, pool, (1, 8, 8), 10, network={"channels": cfg.channels, "cells_per_stage": 1})
        for i, arch in enumerate(pool):
            net = fam.check_input(fam.config(arch), torch.zeros(1, 1, 8, 8)).eval()
            counter = FlopCounterMode(display=False)
            with counter, torch.no_grad():
                net(torch.zeros(1, 1, 8, 8))
            assert got["params"][i] == sum(p.numel() for p in net.parameters() if p.requires_grad)
            assert got["flops"][i] == counter.get_total_flops() // 2
        assert got["params"].nunique() > 1


def test_latency_is_the_median_of_the_timed_passes_after_the_warm_up():
    calls = []
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.LazyLinear(10))
    net(torch.zeros(1, 1, 8, 8))
    net.register_forward_hook(lambda m, i, o: calls.append((i[0].shape[0], torch.is_grad_enabled(), m.training)))
    method = LatencyMethod(batch_size=3, warmup=2, repeats=5)
    threads = torch.get_num_threads()
    ms = measure_latency(net, torch.zeros(3, 1, 8, 8), method)
    assert 0 < ms < 1000 and torch.get_num_threads() == threads  # the thread count is restored
    assert calls == [(3, False, False)] * 7  # warm-up and timed passes, eval mode, no gradients
    assert "median of 5 timed forward passes of a batch of 3 (after 2 warm-up passes)" in method.describe()


def test_the_pool_keeps_what_meets_every_cap_and_the_file_keeps_the_values(tmp_path):
    cfg = PipelineConfig(dataset="digits", channels=4, budget=2, max_params=8300, max_latency_ms=1e4,
                         latency_batch_size=2, progress=False)
    fam = family_of(cfg, 1, 10)
    pool = fam.candidate_pool(12, seed=0)
    path = tmp_path / "costs.json"
    kept, costs = cap_pool(cfg, fam, pool, (1, 8, 8), 10, "cpu", path=path)
    params = np.array([_built_costs(fam, a, (1, 8, 8))[1] for a in pool])
    assert [fam.space.to_string(a) for a in kept] == [fam.space.to_string(a) for a, p in zip(pool, params)
                                                      if p <= 8300]
    assert 0 < len(kept) < len(pool)
    # latencies only for the candidates under the params cap
    lat = costs.table["latency_ms"].to_numpy()
    assert np.isfinite(lat[params <= 8300]).all() and np.isnan(lat[params > 8300]).all()
    assert costs.latency.batch_size == 2 and costs.latency.threads == 1
    # saved and read back unchanged: a resumed run measures nothing again
    again = PoolCosts.from_json(json.loads(path.read_text()))
    pd.testing.assert_frame_equal(again.table, costs.table)
    kept2, costs2 = cap_pool(cfg, fam, pool, (1, 8, 8), 10, "cpu", path=path)
    assert costs2.table["latency_ms"].equals(costs.table["latency_ms"]) and len(kept2) == len(kept)


def test_caps_that_leave_too_few_candidates_for_the_budget_are_refused(tmp_path):
    fam = family_of(PipelineConfig(dataset="digits", channels=4), 1, 10)
    pool = fam.candidate_pool(12, seed=0)
    params = sorted(_built_costs(fam, a, (1, 8, 8))[1] for a in pool)
    cfg = PipelineConfig(dataset="digits", channels=4, budget=2, max_params=params[2], progress=False)
    with pytest.raises(PrecheckError, match=r"3 of the pool's 12 candidates meet --max-params .* trains 4 distinct"):
        cap_pool(cfg, fam, pool, (1, 8, 8), 10, "cpu", path=tmp_path / "costs.json")


@pytest.mark.parametrize("cap", ["--max-params", "--max-latency-ms"])
def test_a_cap_below_the_pool_minimum_is_refused_before_ray_with_that_minimum(cap, tmp_path):
    import ray

    was = ray.is_initialized()
    out = tmp_path / "run"
    rc, printed, err = _run_cli(["search", "--out", str(out), *NB201_TINY, cap, "0.0001"])
    assert rc == 2, printed + err
    costs = PoolCosts.from_json(json.loads((out / "costs.json").read_text()))
    name = {"--max-params": "params", "--max-latency-ms": "latency_ms"}[cap]
    smallest = costs.table[name].min()
    if name == "params":  # the minimum of the pool's models, counted independently
        fam = family_of(PipelineConfig(dataset="digits", channels=4), 1, 10)
        assert smallest == min(_built_costs(fam, a, (1, 8, 8))[1] for a in fam.candidate_pool(12, seed=0))
        assert f"the smallest of the 12 candidates is {smallest:,.0f} parameters" in err
    else:
        assert f"the smallest of the 12 candidates is {smallest:.3g} ms" in err
    assert f"{cap} 0.0001: no candidate of the pool meets it" in err
    assert not (out / "weak_labels.parquet").exists() and ray.is_initialized() == was
    # the folder takes a corrected cap (nothing was computed from the refused one)
    saved = load_config(out / "config.json")
    prepare_out_dir(out, replace(saved, **{cap[2:].replace("-", "_"): 1e6}))


# ------------------------------------------------------------------------------ report
def test_the_accuracy_against_cost_plot_marks_the_front_and_the_cap():
    from ray_nasrank.report import plot_accuracy_vs_cost

    df = pd.DataFrame({"arch": list("abcde"), "arm": ["nasrank"] * 3 + ["random"] * 2,
                       "params": [10.0, 20.0, 30.0, 25.0, 15.0], "valid_acc": [70.0, 80.0, 85.0, 75.0, 65.0],
                       "test_acc": [69.0, 79.0, 86.0, 74.0, np.nan]})
    fig = plot_accuracy_vs_cost(df, "params", cap=28.0, winner="b")
    ax = fig.axes[0]
    front = next(line for line in ax.lines if line.get_label() == "Pareto front")
    # d (25, 75) and e (15, 65) are dominated; the line holds to the costliest training
    assert list(front.get_xdata()) == [10.0, 20.0, 30.0, 30.0] and list(front.get_ydata()) == [70.0, 80.0, 85.0, 85.0]
    cap = next(line for line in ax.lines if line.get_label() == "cap 28")
    assert list(cap.get_xdata()) == [28.0, 28.0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"nasrank (3)", "random (2)", "winner"} <= set(labels)
    assert "random (1)" in [t.get_text() for t in fig.axes[1].get_legend().get_texts()]  # a NaN is not drawn
    with pytest.raises(ValueError, match="needs columns 'flops'"):
        plot_accuracy_vs_cost(df, "flops")


# ------------------------------------------------------------------------------ end to end
@pytest.mark.ray
def test_a_capped_search_never_trains_a_candidate_over_the_cap(ray_cluster, tmp_path):
    """The command line on a user's (param_space, model_fn) family and digits, --max-params at
    the pool's 30 % quantile and a latency cap: every trial of both arms (read from Tune's own
    records) is under the cap, best.json and the summary say so, and the report draws accuracy
    against each capped quantity."""
    import ray

    small = dict(space="_families:mlp_family", dataset="digits", pool_size=16)
    fam = family_of(PipelineConfig(**small), 1, 10)
    pool = fam.candidate_pool(16, seed=0)
    params = np.array([_built_costs(fam, a, (1, 8, 8))[1] for a in pool])
    cap = float(np.quantile(params, 0.3))
    assert (params > cap).any()
    ray.shutdown()
    out = tmp_path / "run"
    rc, printed, err = _run_cli([
        "search", "--out", str(out), "--space", small["space"], "--dataset", "digits", "--pool-size", "16",
        "--budget", "2", "--rounds", "1", "--rungs", "1", "--train-size", "300", "--valid-size", "150",
        "--test-size", "150", "--batch-size", "64", "--finalist-epochs", "1", "--ranker-epochs", "5",
        "--image-size", "0", "--final-epochs", "1", "--final-train-size", "400", "--final-valid-size", "150",
        "--final-test-size", "150", "--min-steps", "0", "--no-progress", "--max-params", f"{cap:g}",
        "--max-latency-ms", "1000", "--address", ray_cluster.address])
    ray.init(address=ray_cluster.address, log_to_driver=False)
    assert rc == 0, printed + err
    trials = [d for arm in ("tune", "tune_random") for d in (out / arm).iterdir() if d.is_dir()]
    assert len(trials) == 4
    for d in trials:
        last = json.loads((d / "result.json").read_text().strip().splitlines()[-1])
        assert last["done"] and last["params"] <= cap, (d.name, last["params"], cap)
    best = json.loads((out / "best.json").read_text())
    rec = best["constraints"]
    assert rec["caps"] == {"params": cap, "latency_ms": 1000.0}
    assert rec["latency_method"]["batch_size"] == 1 and rec["latency_method"]["statistic"] == "median"
    assert rec["pool"] == {"candidates": 16, "meet_caps": int((params <= cap).sum()),
                           "smallest": {"params": float(params.min()), "latency_ms": pytest.approx(
                               rec["pool"]["smallest"]["latency_ms"])}}
    assert sorted(f["arm"] for f in rec["finalists"]) == ["nasrank", "nasrank", "random", "random"]
    assert all(f["meets_caps"] and f["params"] <= cap and 0 < f["latency_ms"] <= 1000 for f in rec["finalists"])
    win = rec["winners"]["nasrank"]
    assert win["arch"] == best["arch"] and win["meets_caps"]
    final = pd.read_parquet(out / "final.parquet")
    assert win["params"] == final.loc[final["arm"] == "nasrank", "params"].iloc[0]  # what the retraining counted
    assert "the winner meets every cap" in printed and f"caps: params <= {cap:,.0f} parameters" in printed
    for name in ("params", "latency_ms"):
        assert (out / "report" / f"cost_{name}.png").is_file()
    page = (out / "report" / "index.html").read_text()
    assert "Accuracy against trainable parameters" in page and "median of 20 timed forward passes" in page
    # the report command redraws them from the folder alone
    (out / "report" / "cost_params.png").unlink()
    assert main(["report", str(out)]) == 0 and (out / "report" / "cost_params.png").is_file()
    manifest = json.loads((out / "manifest.json").read_text())["artefacts"]
    assert "costs.json" in manifest


@pytest.mark.ray
@pytest.mark.slow  # ~1-2 min: an NB201 supernet and two Tune arms under a time budget
def test_a_refused_latency_cap_corrected_on_the_same_folder_under_a_time_budget(ray_cluster, tmp_path):
    """NB201 through the command line: a latency cap below the pool is refused (the measured
    values stay in the folder); the same folder then runs with a cap at their median under a
    time budget, from those same measurements, and trains nothing over it."""
    import ray

    ray.shutdown()
    out = tmp_path / "run"
    args = ["search", "--out", str(out), *NB201_TINY, "--time-budget", "240", "--address", ray_cluster.address]
    rc, printed, err = _run_cli([*args, "--max-latency-ms", "0.0001"])
    assert rc == 2 and "--max-latency-ms 0.0001: no candidate of the pool meets it" in err, printed + err
    measured = PoolCosts.from_json(json.loads((out / "costs.json").read_text())).table.set_index("arch")["latency_ms"]
    cap = float(measured.median())
    rc, printed, err = _run_cli([*args, "--max-latency-ms", repr(cap)])
    ray.init(address=ray_cluster.address, log_to_driver=False)
    assert rc == 0, printed + err
    costs = PoolCosts.from_json(json.loads((out / "costs.json").read_text())).table.set_index("arch")["latency_ms"]
    pd.testing.assert_series_equal(costs, measured)  # not measured again
    trained = pd.concat([pd.read_parquet(out / "results.parquet"), pd.read_parquet(out / "random.parquet")])
    assert len(trained) >= 2 and (costs[trained["arch"]] <= cap).all()
    best = json.loads((out / "best.json").read_text())
    assert best["constraints"]["winners"]["nasrank"]["meets_caps"] and best["time_budget_s"] == 240
    assert "the winner meets every cap" in printed and (out / "report" / "cost_latency_ms.png").is_file()
