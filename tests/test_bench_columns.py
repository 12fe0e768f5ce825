"""Tables of mixed and large spaces in ``bench ranking`` / ``bench search``: --num-cols, exact float
matching, clear errors for missing values, and a non-enumerable categorical space without weak labels."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ray_nasrank.benchmarks import TabularBenchmark
from ray_nasrank.cli import main
from ray_nasrank.spaces import Float, Integer


@pytest.fixture()
def mixed_table(tmp_path):
    rng = np.random.default_rng(0)
    n = 120
    df = pd.DataFrame({"act": rng.choice(["relu", "gelu"], n), "lr": 10 ** rng.uniform(-4, -1, n),
                       "wd": 10 ** rng.uniform(-5, -2, n), "dropout": rng.choice([0.0, 0.1, 0.2, 0.3], n),
                       "depth": rng.integers(1, 5, n)})
    df["acc"] = (0.5 + 0.1 * (df["act"] == "gelu") - 0.05 * (np.log10(df["lr"]) + 2.5) ** 2 - 0.2 * df["dropout"]
                 + 0.02 * df["depth"] + rng.normal(0, 0.01, n))
    path = tmp_path / "mixed.csv"
    df.to_csv(path, index=False)
    return path, df


def test_numeric_columns_become_decisions_and_rows_match_exactly(mixed_table):
    path, df = mixed_table
    bench = TabularBenchmark.from_file(path, space="columns", arch_cols=["act"], num_cols=["lr:log", "wd:log", "dropout", "depth"],
                                       target="acc")
    doms = {d.name: d.domain for d in bench.space.decisions}
    assert doms["lr"] == Float(df["lr"].min(), df["lr"].max(), log=True)
    assert isinstance(doms["depth"], Integer) and not doms["dropout"].log
    reread = pd.read_csv(path)  # floats read back from text match their rows exactly
    for i in (0, 7, 119):
        row = reread.iloc[i]
        cfg = (row["act"], float(row["lr"]), float(row["wd"]), float(row["dropout"]), int(row["depth"]))
        assert bench.lookup(cfg) == pytest.approx(df["acc"].iloc[i])
    with pytest.raises(KeyError, match="not in the table"):
        bench.lookup(("relu", float(df["lr"].iloc[0]) * (1 + 1e-9), *cfg[2:]))


@pytest.mark.parametrize("edit, message", [
    (lambda df: df.assign(lr=df["lr"].where(df.index != 4)), "row 4 has no value in decision column 'lr'"),
    (lambda df: df.assign(act=df["act"].where(df.index != 2)), "row 2 has no value in decision column 'act'"),
    (lambda df: df.assign(wd=df["wd"].astype(object).where(df.index != 3, "big")), "row 3 of numeric column 'wd' holds 'big'"),
    (lambda df: df.assign(dropout=df["dropout"] - 0.1), "'dropout'"),
])
def test_bad_numeric_columns_name_row_and_column(mixed_table, tmp_path, edit, message):
    _, df = mixed_table
    num = ["lr:log", "wd:log", "dropout:log" if "dropout" in message else "dropout"]
    with pytest.raises(ValueError, match=message):
        TabularBenchmark.from_frame(edit(df), space="columns", arch_cols=["act"], num_cols=num, target="acc")


def test_cli_ranking_and_search_take_num_cols(mixed_table, tmp_path, capsys):
    path, _ = mixed_table
    out = tmp_path / "r.json"
    assert main(["bench", "ranking", "--table", str(path), "--space", "columns", "--arch-cols", "act",
                 "--num-cols", "lr:log,wd:log,dropout,depth", "--target", "acc", "--labels", "15", "--seeds", "1",
                 "--ensemble", "1", "--methods", "nasrank,random", "--quiet", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["config"]["num_cols"] == ["lr:log", "wd:log", "dropout", "depth"]
    assert res["methods"]["nasrank"]["spearman"] > res["methods"]["random"]["spearman"]
    out = tmp_path / "s.json"
    assert main(["bench", "search", "--table", str(path), "--space", "columns", "--arch-cols", "act",
                 "--num-cols", "lr:log,wd:log,dropout,depth", "--target", "acc", "--budget", "12", "--seeds", "2",
                 "--strategies", "random,nasrank", "--out", str(out)]) == 0
    assert main(["bench", "search", "--table", str(path), "--space", "columns", "--num-cols", "lr:sqrt",
                 "--target", "acc", "--out", str(out)]) == 2
    assert "'lr:sqrt'" in capsys.readouterr().err


def test_a_large_categorical_table_without_weak_labels_ranks(tmp_path):
    rng = np.random.default_rng(1)
    n = 150
    df = pd.DataFrame({f"p{i}": rng.choice(["a", "b", "c", "d"], n) for i in range(37)})
    df["acc"] = rng.random(n) + (df["p0"] == "a")
    path = tmp_path / "t37.csv"
    df.to_csv(path, index=False)
    out = tmp_path / "r.json"
    cols = ",".join(f"p{i}" for i in range(37))
    assert main(["bench", "ranking", "--table", str(path), "--space", "columns", "--arch-cols", cols, "--target", "acc",
                 "--labels", "20", "--seeds", "1", "--ensemble", "1", "--quiet", "--out", str(out)]) == 0
    assert "gbdt" in json.loads(out.read_text())["methods"]


def test_bench_overhead_writes_construction_first_proposal_memory_and_per_trial_time(tmp_path, capsys):
    out = tmp_path / "o.json"
    assert main(["bench", "overhead", "--decisions", "30", "--options", "128", "--kinds", "categorical,mixed",
                 "--strategies", "nasrank,rea", "--trials", "8", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["command"].startswith("ray-nasrank bench overhead --decisions 30 --options 128")
    assert len(res["runs"]) == 4
    for r in res["runs"]:
        assert r["trials"] == 8 and r["searcher_s_per_trial"] > 0
        assert 0 < r["searcher_cpu_s_per_trial"] and 0 < r["searcher_cpu_s_per_trial_last100"]
        # no enumeration: a 30 x 128 space builds and proposes without touching its 1e63 configs
        assert r["peak_traced_mb"] < 300
    assert "mixed 30x128" in capsys.readouterr().out
    assert main(["bench", "overhead", "--kinds", "graph", "--out", str(out)]) == 2
