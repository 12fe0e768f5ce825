"""The benchmarks as library functions: a config dataclass in, the result out; the CLI's flags
are the config's option fields with the config's defaults."""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json

import numpy as np
import pandas as pd
import pytest

from ray_nasrank._checks import ConfigError
from ray_nasrank._config import option
from ray_nasrank.benchmarks import (
    ProxiesBenchConfig,
    RankingBenchConfig,
    SearchBenchConfig,
    SupernetBenchConfig,
    bench_ranking,
    bench_search,
)
from ray_nasrank.cli import add_options, main, options_from_args
from ray_nasrank.pipeline import PipelineConfig


@pytest.fixture()
def table(tmp_path):
    rows = list(itertools.product([1, 3, 5], [8, 16, 32], ["relu", "gelu"]))
    df = pd.DataFrame(rows, columns=["k", "w", "act"])
    df["acc"] = df.k * 0.3 + np.log2(df.w) + (df.act == "gelu") * 0.7
    df["proxy"] = df["acc"] + np.random.default_rng(0).normal(0, 0.5, len(df))
    path = tmp_path / "toy.csv"
    df.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("cls, command, required", [
    (RankingBenchConfig, ["bench", "ranking"], ["--table", "t.csv", "--target", "acc", "--out", "r.json"]),
    (SearchBenchConfig, ["bench", "search"], ["--table", "t.csv", "--target", "acc", "--out", "r.json"]),
    (ProxiesBenchConfig, ["bench", "proxies"], ["--table", "t.csv", "--out", "r.json"]),
    (SupernetBenchConfig, ["bench", "supernet"], ["--out", "d"]),
])
def test_cli_defaults_are_the_config_defaults(cls, command, required):
    from ray_nasrank.cli import build_parser

    args = build_parser().parse_args([*command, *required])
    cfg = options_from_args(cls, args)
    given = {k.lstrip("-").replace("-", "_"): v for k, v in zip(required[::2], required[1::2])}
    assert dataclasses.asdict(cfg) == dataclasses.asdict(cls(**given))


def test_a_new_option_field_is_a_new_flag_with_its_default():
    @dataclasses.dataclass
    class Toy:
        num_cols: int = option(4, "columns of the toy")
        input_shape: list[int] = option(default_factory=lambda: [3, 8, 8], help="C,H,W")
        names: tuple[str, ...] = option(("a", "b"), "names")
        extra: dict = option(default_factory=dict, help="JSON")
        fast: bool = option(False, "a switch")
        plain: int = 7  # not an option: no flag

    p = argparse.ArgumentParser()
    add_options(p, Toy)
    assert options_from_args(Toy, p.parse_args([])) == Toy()
    args = p.parse_args(["--num-cols", "6", "--input-shape", "1,28,28", "--names", "x,y", "--extra", '{"k": 1}',
                         "--fast"])
    assert options_from_args(Toy, args) == Toy(num_cols=6, input_shape=[1, 28, 28], names=["x", "y"],
                                               extra={"k": 1}, fast=True)
    assert "--plain" not in p.format_help() and "(default: 4)" in p.format_help()


def test_config_errors_name_the_key_in_the_library_and_the_flag_on_the_command_line(table, tmp_path, capsys):
    with pytest.raises(ConfigError, match="^seeds must be >= 1, got 0$"):
        SearchBenchConfig(table=str(table), target="acc", seeds=0)
    with pytest.raises(ConfigError, match="space columns needs arch_cols"):
        RankingBenchConfig(table=str(table), target="acc", space="columns")
    rc = main(["bench", "search", "--table", str(table), "--target", "acc", "--seeds", "0", "--out", "x.json"])
    assert rc == 2 and "--seeds must be >= 1, got 0" in capsys.readouterr().err


def test_library_runs_return_what_the_cli_writes(table, tmp_path):
    common = dict(table=str(table), space="columns", arch_cols=["k", "w", "act"], target="acc", weak=["proxy"])
    res = bench_ranking(RankingBenchConfig(**common, labels=6, seeds=2, ensemble=1, methods=["nasrank", "random"]))
    assert list(res["methods"]) == ["nasrank", "random"] and len(res["methods"]["nasrank"]["per_seed"]) == 2
    assert res["methods"]["nasrank"]["kendall_tau"] > res["methods"]["random"]["kendall_tau"]
    out = tmp_path / "s.json"
    res = bench_search(SearchBenchConfig(**common, budget=10, seeds=2, strategies=["random", "rea"], out=str(out)))
    assert json.loads(out.read_text()) == json.loads(json.dumps(res))
    assert res["strategies"]["random"]["per_seed"][1]["seed"] == 1


def test_pipeline_flags_are_its_option_fields():
    from ray_nasrank.cli import build_parser

    help_text = build_parser()._subparsers._group_actions[0].choices["search"].format_help()
    for f in dataclasses.fields(PipelineConfig):
        assert (f"--{f.name.replace('_', '-')} " in help_text) == ("cli" in f.metadata), f.name
