"""``ray-nasrank bench ranking`` on a small synthetic table, plus the NB201 target check (slow)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ray_nasrank.benchmarks._ranking import NOT_BASELINES, weak_valid_score
from ray_nasrank.cli import main
from ray_nasrank.cli.bench_ranking import METHODS, METRICS, markdown_table


@pytest.fixture()
def table(tmp_path):
    rows = list(itertools.product([1, 3, 5, 7], [8, 16, 32, 64], ["relu", "gelu", "tanh"]))
    rng = np.random.default_rng(0)
    acc = np.array([0.5 + 0.04 * k + 0.002 * w + {"relu": 0.0, "gelu": 0.05, "tanh": -0.1}[a] for k, w, a in rows])
    df = pd.DataFrame(rows, columns=["kernel", "width", "act"])
    df["acc"] = acc
    df["proxy"] = acc + rng.normal(0, 0.05, size=acc.size)
    df.loc[3, "proxy"] = np.nan  # a missing weak value is fine
    df["latency"] = df["width"] * df["kernel"] + rng.normal(0, 5, size=acc.size)
    df.loc[5, "latency"] = np.inf  # an overflowed weak value is treated as missing
    path = tmp_path / "tbl.csv"
    df.to_csv(path, index=False)
    return path, df


def _run(args):
    return main(["bench", "ranking", *map(str, args)])


def test_cli_columns_table_json_layout(table, tmp_path, capsys):
    path, df = table
    out = tmp_path / "res" / "r.json"
    rc = _run(["--table", path, "--space", "columns", "--arch-cols", "kernel,width,act", "--target", "acc",
               "--weak", "proxy,latency", "--labels", 12, "--seeds", 2, "--ensemble", 2, "--quiet", "--out", out])
    assert rc == 0
    res = json.loads(out.read_text())
    assert set(res["methods"]) == set(METHODS)
    assert res["config"]["labels"] == 12 and res["config"]["weak"] == ["proxy", "latency"]
    for m, v in res["methods"].items():
        assert set(METRICS) <= set(v)
        assert [r["seed"] for r in v["per_seed"]] == [0, 1]
        assert v["kendall_tau"] == pytest.approx(np.mean([r["kendall_tau"] for r in v["per_seed"]]))
    assert res["methods"]["nasrank"]["kendall_tau"] > 0.6 > res["methods"]["random"]["kendall_tau"]
    assert res["methods"]["nasrank"]["best_in_top10"] == pytest.approx(df["acc"].max())
    captured = capsys.readouterr()
    assert "nasrank" in captured.out
    assert "'latency': 1 inf value(s) treated as missing" in captured.err
    md = markdown_table([out])
    assert f"| {Path(path).parent.name}/tbl.csv | acc | proxy,latency | 12 | 2 |" in md  # the folder names the table too
    # each weak column alone, measured once: the better of proxy and latency per metric
    best = res["config"]["weak_single_best"]
    assert best["kendall_tau"] == "proxy"
    assert res["methods"]["weak_single"]["kendall_tau"] >= res["methods"]["weak"]["kendall_tau"] - 0.05
    # nasrank records the trust blend of each seed; the mse baseline has none
    for row in res["methods"]["nasrank"]["per_seed"]:
        assert set(row["trust"]) == {"tuned", "prior", "tree", "boost"} and sum(row["trust"].values()) == pytest.approx(1)
    # the column the labels would choose is a baseline; the oracle column is not
    chosen = [r["kendall_tau"] for r in res["methods"]["weak_valid"]["per_seed"]]
    assert all(t <= res["methods"]["weak_single"]["kendall_tau"] + 1e-9 for t in chosen)
    # the last column names where nasrank trails a baseline, with the winner
    last = md.splitlines()[-1].rsplit("|", 2)[1].strip()
    trails = [k for k in ("ndcg@10", "ndcg@50", "kendall_tau")
              if max(v[k] for m, v in res["methods"].items() if m not in ("nasrank", *NOT_BASELINES))
              > res["methods"]["nasrank"][k]]
    assert (last == "-") == (not trails) and all(k in last for k in trails)


def test_weak_valid_takes_the_column_that_orders_the_labels_not_the_whole_table():
    rng = np.random.default_rng(0)
    y = rng.normal(size=200)
    labelled = np.arange(0, 200, 10)
    good_on_labels = y + rng.normal(0, 2.0, size=200)
    good_on_labels[labelled] = y[labelled]  # orders the labels exactly, the rest barely
    better_elsewhere = y + rng.normal(0, 0.3, size=200)
    better_elsewhere[labelled] = -y[labelled]  # backwards exactly where the labels can see it
    name, s = weak_valid_score({"elsewhere": better_elsewhere, "labels": good_on_labels}, labelled, y)
    assert name == "labels" and np.array_equal(s[labelled].argsort(), y[labelled].argsort())
    assert weak_valid_score({"a": -y, "b": y}, labelled, -y)[0] == "a"  # a 'min' target flips the choice


def test_cli_mode_min_and_method_subset(table, tmp_path):
    path, df = table
    df = df.assign(err=1.0 - df["acc"])
    csv = tmp_path / "err.csv"
    df.to_csv(csv, index=False)
    out = tmp_path / "m.json"
    rc = _run(["--table", csv, "--space", "columns", "--arch-cols", "kernel,width,act", "--target", "err",
               "--mode", "min", "--labels", 10, "--seeds", 1, "--methods", "nasrank,random", "--ensemble", 1,
               "--quiet", "--out", out])
    assert rc == 0
    res = json.loads(out.read_text())
    assert list(res["methods"]) == ["nasrank", "random"]  # no weak columns: no 'weak' method anyway
    assert res["methods"]["nasrank"]["kendall_tau"] > 0.5
    assert res["methods"]["nasrank"]["best_in_top10"] == pytest.approx(df["err"].min())


def test_cli_first_seed_runs_the_same_draws_as_a_longer_run(table, tmp_path):
    """Settings can be chosen on other seeds than the reported ones: seed 1 is the same draw
    whether it is the second of ``--seeds 2`` or the only one of ``--first-seed 1``."""
    path, _ = table
    args = ["--table", path, "--space", "columns", "--arch-cols", "kernel,width,act", "--target", "acc",
            "--weak", "proxy", "--labels", 10, "--methods", "gbdt,random", "--quiet"]
    assert _run(args + ["--seeds", 2, "--out", tmp_path / "a.json"]) == 0
    assert _run(args + ["--seeds", 1, "--first-seed", 1, "--out", tmp_path / "b.json"]) == 0
    a, b = (json.loads((tmp_path / f).read_text()) for f in ("a.json", "b.json"))
    assert b["config"]["first_seed"] == 1 and "--first-seed 1" in b["config"]["command"]
    for m in ("gbdt", "random"):
        assert b["methods"][m]["per_seed"] == [a["methods"][m]["per_seed"][1]]
        assert a["methods"][m]["per_seed"][0] != a["methods"][m]["per_seed"][1]


@pytest.mark.parametrize("extra, message", [
    (["--labels", 1], "--labels must be >= 2"),
    (["--labels", 48], "must be smaller than the table's 48 rows"),
    (["--seeds", 0], "--seeds must be >= 1"),
    (["--first-seed", -1], "--first-seed must be >= 0"),
    (["--methods", "nasrank,oracle"], "unknown method(s) ['oracle']"),
    (["--weak", "nope"], "no column(s) ['nope']"),
    (["--encoder", "gcn"], "graph encoders need a space whose archs are graphs"),
    (["--intrinsic", "params"], "--intrinsic without --model needs a --space whose model family computes"),
    (["--model", "models:build"], "--model needs --input-shape C,H,W"),
    (["--model", "nope", "--input-shape", "1,8,8"], "--model must be MODULE:FUNCTION"),
    (["--model", "no_such_module_xyz:build", "--input-shape", "1,8,8"], "cannot import no_such_module_xyz"),
    (["--input-shape", "1,8,8"], "--input-shape describes the input of --model"),
    (["--space", "nb201", "--intrinsic", "latency"], "unknown --intrinsic label(s) ['latency']; nb201 computes"),
    (["--space", "nb202"], "unknown --space 'nb202'"),
    (["--predictor-args", "[1]"], "--predictor-args must be a JSON object"),
    (["--predictor-args", '{"bogus": 1}'], "unknown PredictorConfig keys ['bogus']"),
])
def test_cli_bad_input_exits_2(table, tmp_path, capsys, extra, message):
    path, _ = table
    args = ["--table", path, "--space", "columns", "--arch-cols", "kernel,width,act", "--target", "acc",
            "--labels", 10, "--seeds", 1, "--quiet", "--out", tmp_path / "x.json"]
    assert _run(args + extra) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_cli_intrinsic_labels_join_the_weak_columns_of_nb201_cells(tmp_path, capsys):
    from ray_nasrank.search import intrinsic_weak
    from ray_nasrank.spaces import NB201Space

    space = NB201Space()
    archs = space.sample_many(60, rng=0, unique=True)
    convs = np.array([a.count("nor_conv_3x3") + 0.5 * a.count("nor_conv_1x1") for a in archs])
    df = pd.DataFrame({"arch": [space.to_string(a) for a in archs],
                       "acc": convs + np.random.default_rng(1).normal(0, 0.3, size=60),
                       "noise": np.random.default_rng(2).normal(size=60)})
    df["params"] = df["noise"]  # a table column named like an intrinsic label
    path = tmp_path / "nb.csv"
    df.to_csv(path, index=False)
    base = ["--table", path, "--space", "nb201", "--arch-col", "arch", "--target", "acc", "--weak", "noise",
            "--labels", 10, "--seeds", 1, "--quiet", "--methods", "weak,random", "--ensemble", 1]
    assert _run(base + ["--intrinsic", "params,synflow", "--predictor-args", '{"weak_reg": 0.5}',
                        "--out", tmp_path / "i.json"]) == 0
    res = json.loads((tmp_path / "i.json").read_text())
    assert res["config"]["predictor"]["finetune"]["weak_reg"] == 0.5
    assert """--predictor-args '{"weak_reg": 0.5}'""" in res["config"]["command"]
    assert 'noise,params,synflow (predictor {"weak_reg": 0.5})' in markdown_table([tmp_path / "i.json"])
    assert res["config"]["weak"] == ["noise", "params", "synflow"]
    assert res["config"]["intrinsic"] == ["params", "synflow"]
    assert "--intrinsic params,synflow" in res["config"]["command"]
    # the weak-labels-alone ranking now follows the cells' size, which drives this target
    assert _run(base + ["--out", tmp_path / "n.json"]) == 0
    alone = json.loads((tmp_path / "n.json").read_text())["methods"]["weak"]["kendall_tau"]
    assert res["methods"]["weak"]["kendall_tau"] > alone + 0.2
    params = intrinsic_weak(space, archs, "params")["params"]
    assert np.corrcoef(params, convs)[0, 1] > 0.9
    # with --pretrain-cache the computed labels are kept (as arrays) and read back unchanged
    cached = base + ["--intrinsic", "params,synflow", "--pretrain-cache", tmp_path / "cache"]
    assert _run(cached + ["--out", tmp_path / "c1.json"]) == 0
    assert len(list((tmp_path / "cache").glob("weak_*.npz"))) == 1
    assert _run(cached + ["--out", tmp_path / "c2.json"]) == 0
    c1, c2 = (json.loads((tmp_path / f).read_text())["methods"] for f in ("c1.json", "c2.json"))
    assert c1 == c2 and c1["weak"] == res["methods"]["weak"]
    capsys.readouterr()
    assert _run(base + ["--intrinsic", "noise", "--out", tmp_path / "x.json"]) == 2
    clash = [x if x != "noise" else "params" for x in base]  # --weak params
    assert _run(clash + ["--intrinsic", "params", "--out", tmp_path / "x.json"]) == 2
    assert "given both in --weak and --intrinsic" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.data
def test_nb201_oneshot_targets(nb201_path, tmp_path):
    """The issue's targets: 50 labels, 10 seeds, one-shot supernet accuracy as weak label."""
    out = tmp_path / "nb201.json"
    rc = _run(["--table", nb201_path, "--space", "nb201", "--arch-col", "arch", "--target", "test_acc",
               "--weak", "supernet_oneshot_acc", "--labels", 50, "--seeds", 10, "--quiet", "--out", out])
    assert rc == 0
    res = json.loads(out.read_text())["methods"]
    # 0.496 with the trust blend and 0.495 with the previous ranker (the session-start code, re-run);
    # the 0.510 once committed came from an older pretraining and no longer reproduced
    assert res["nasrank"]["ndcg@50"] >= 0.49
    assert res["nasrank"]["kendall_tau"] >= 0.70
    others = {m: v["ndcg@50"] for m, v in res.items() if m != "nasrank"}
    assert all(res["nasrank"]["ndcg@50"] > v for v in others.values()), others


def test_cli_pretrain_cache_gives_identical_results(table, tmp_path):
    path, _ = table
    cache = tmp_path / "cache"
    base = ["--table", path, "--space", "columns", "--arch-cols", "kernel,width,act", "--target", "acc",
            "--weak", "proxy", "--labels", 10, "--seeds", 1, "--methods", "nasrank,mse", "--ensemble", 1,
            "--quiet", "--pretrain-cache", cache]
    assert _run(base + ["--out", tmp_path / "a.json"]) == 0
    assert len(list(cache.glob("pretrained_*.pt"))) == 1
    assert _run(base + ["--out", tmp_path / "b.json"]) == 0
    a, b = (json.loads((tmp_path / f).read_text()) for f in ("a.json", "b.json"))
    assert "pretrain" in a["config"]["seconds"] and "pretrain_loaded" in b["config"]["seconds"]
    assert a["methods"] == b["methods"]


MODELS = """
import torch
from torch import nn


def build(config):
    # a row's config: its arch columns by name
    if config["act"] == "tanh" and config["kernel"] == 7:
        raise RuntimeError("this row has no model")
    k, w = int(config["kernel"]), int(config["width"])
    act = {"relu": nn.ReLU(inplace=True), "gelu": nn.GELU(), "tanh": nn.Tanh()}[config["act"]]
    return nn.Sequential(nn.Conv2d(1, w, k, padding=k // 2), nn.BatchNorm2d(w), act,
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(w, 10))
"""


def test_cli_model_proxies_of_any_table(table, tmp_path, capsys):
    from ray_nasrank.benchmarks import RankingBenchConfig, bench_ranking

    path, df = table
    models = tmp_path / "my_models.py"
    models.write_text(MODELS)
    base = ["--table", path, "--space", "columns", "--arch-cols", "kernel,width,act", "--target", "acc",
            "--labels", 10, "--seeds", 1, "--quiet", "--methods", "weak,random", "--ensemble", 1,
            "--model", f"{models}:build", "--input-shape", "1,8,8"]
    assert _run(base + ["--out", tmp_path / "m.json"]) == 0
    res = json.loads((tmp_path / "m.json").read_text())
    assert res["config"]["weak"] == ["params", "snip"]
    assert f"--model {models}:build --input-shape 1,8,8" in res["config"]["command"]
    assert "proxy value(s) of --model" in capsys.readouterr().err  # the 4 tanh/kernel-7 rows: NaN, logged
    # the library function gives the same labels; params follow width and kernel as built
    cfg = RankingBenchConfig(table=str(path), space="columns", arch_cols=["kernel", "width", "act"], target="acc",
                             intrinsic=["params", "naswot"], model=f"{models}:build", input_shape=[1, 8, 8],
                             labels=10, seeds=1, methods=["weak"])
    labels = cfg.intrinsic_labels(cfg.load_table())
    bad = ((df["act"] == "tanh") & (df["kernel"] == 7)).to_numpy()
    assert np.isnan(labels["params"][bad]).all() and np.isfinite(labels["params"][~bad]).all()
    want = (df["width"] * df["kernel"] ** 2 + 3 * df["width"] + 10 * df["width"] + 10) / 1e6
    np.testing.assert_allclose(labels["params"][~bad], want[~bad])
    assert bench_ranking(cfg)["methods"]["weak"]["kendall_tau"] > 0


def test_column_choice_script_takes_the_column_that_orders_the_labels(tmp_path):
    """scripts/column_choice.py: a column equal to the target always validates best, a noise column never;
    a 'min' target flips the columns with it."""
    import importlib.util
    import json
    from pathlib import Path

    import numpy as np
    import pandas as pd

    from ray_nasrank.spaces import NB201Space

    path = Path(__file__).resolve().parents[1] / "scripts" / "column_choice.py"
    spec = importlib.util.spec_from_file_location("column_choice_script", path)
    cc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cc)
    space = NB201Space()
    archs = space.sample_many(400, rng=0, unique=True)
    rng = np.random.default_rng(0)
    err = rng.random(400)
    table = tmp_path / "t.csv"
    pd.DataFrame({"arch": [space.to_string(a) for a in archs], "err": err,
                  "exact": err, "noise": rng.random(400)}).to_csv(table, index=False)
    out = tmp_path / "cc.json"
    cc.main(["--table", str(table), "--target", "err", "--mode", "min", "--weak", "exact,noise",
             "--labels", "10,40", "--draws", "30", "--out", str(out)])
    res = json.loads(out.read_text())
    assert res["columns"]["exact"]["kendall_tau"] == 1.0 and abs(res["columns"]["noise"]["kendall_tau"]) < 0.15
    for n in ("10", "40"):
        assert res["labels"][n]["taken_share"] == {"exact": 1.0, "noise": 0.0}
        assert res["labels"][n]["taken_ndcg@50"] == 1.0
    # 40 of 400 rows labelled: about 40 * 50 / 400 = 5 of them in the true top 50
    assert 3.0 < res["labels"]["40"]["labels_in_true_top50"] < 7.0


def test_merge_script_adds_a_rerun_methods_to_the_same_cell_only(tmp_path):
    """scripts/merge_ranking_runs.py: the new run's methods replace or join the base run's; a run of
    another cell is refused."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "merge_ranking_runs.py"
    spec = importlib.util.spec_from_file_location("merge_ranking_runs", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    cell = {"table": "/a/t.csv", "target": "acc", "weak": ["w"], "labels": 10, "seeds": 2, "first_seed": 0,
            "rows": 50}
    base = {"config": {**cell, "command": "old"}, "methods": {"nasrank": {"kendall_tau": 0.1}, "gbdt": {"kendall_tau": 0.2}}}
    new = {"config": {**cell, "table": "/b/t.csv", "command": "new"},
           "methods": {"nasrank": {"kendall_tau": 0.3}, "weak_valid": {"kendall_tau": 0.4}}}
    merged = mod.merge(new, base)
    assert merged["methods"] == {"nasrank": {"kendall_tau": 0.3}, "gbdt": {"kendall_tau": 0.2},
                                 "weak_valid": {"kendall_tau": 0.4}}
    assert merged["config"]["command"] == "new" and merged["config"]["baselines_command"] == "old"
    # merged again after another change of the default: the baselines still name the run they came from
    again = mod.merge({**new, "config": {**new["config"], "command": "newer"}}, merged)
    assert again["config"]["command"] == "newer" and again["config"]["baselines_command"] == "old"
    with pytest.raises(ValueError, match="labels"):
        mod.merge({**new, "config": {**new["config"], "labels": 20}}, base)
