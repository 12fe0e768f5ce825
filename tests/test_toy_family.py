"""A built-in model family added in this one file, run through ``bench ranking``, ``bench search``
and the main job (``ray-nasrank search``).

Adding a built-in family to the package is a module with a function returning a
:class:`~ray_nasrank.families.ModelFamily` plus its line in ``FAMILIES``; here the registry line
is a ``monkeypatch`` of the same dict. Nothing else knows about the toy: every consumer uses what
the family provides (its network, its intrinsic label ``convs``, the zero-cost proxy ``params``).
Its space is a plain :class:`~ray_nasrank.spaces.CategoricalSpace` (a space class of its own
could not be written to the ranker's state file, which holds the package's classes only).
"""

from __future__ import annotations

import itertools
import json
from functools import partial

import numpy as np
import pandas as pd
import pytest
from torch import nn

from ray_nasrank.cli import main
from ray_nasrank.families import FAMILIES, ModelFamily, load_family
from ray_nasrank.spaces import CategoricalSpace

OPS = ("conv", "pool", "skip")


def conv_count(archs, names):
    """The toy's intrinsic label: how many of its three layers are convolutions."""
    return {"convs": [sum(op == "conv" for op in a) for a in archs]}


def toy_net(config: dict, *, in_channels: int, num_classes: int, channels: int) -> nn.Module:
    layers = [nn.Conv2d(in_channels, channels, 3, padding=1), nn.ReLU()]
    for i in range(3):
        op = config[f"layer{i}"]
        if op == "conv":
            layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU()]
        elif op == "pool":
            layers.append(nn.AvgPool2d(3, stride=1, padding=1))
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes))


def toy_family(in_channels: int = 1, num_classes: int = 10, channels: int = 4) -> ModelFamily:
    """Three layers, each a conv, a pooling or nothing: a cell of 27 configs."""
    return ModelFamily(space=CategoricalSpace({f"layer{i}": list(OPS) for i in range(3)}), spec="toy",
                       model_fn=partial(toy_net, in_channels=in_channels, num_classes=num_classes,
                                        channels=channels),
                       proxies=("params",), intrinsic_names=("convs",), intrinsic=conv_count)


@pytest.fixture(autouse=True)
def registered(monkeypatch):
    monkeypatch.setitem(FAMILIES, "toy", toy_family)  # the registry line of a built-in family


@pytest.fixture()
def table(tmp_path):
    """Every toy config with a made-up accuracy that the conv count explains in part."""
    space = load_family("toy").space
    archs = list(itertools.product(OPS, repeat=3))
    rng = np.random.default_rng(0)
    acc = [60 + 8 * a.count("conv") + 3 * (a[2] == "pool") + rng.normal(0, 1) for a in archs]
    path = tmp_path / "toy.csv"
    pd.DataFrame({"arch": [space.to_string(a) for a in archs], "acc": np.round(acc, 3)}).to_csv(path, index=False)
    return path


def test_the_toy_family_is_named_like_any_built_in():
    fam = load_family("toy", in_channels=3, num_classes=5, channels=8)  # channels reaches it, as for nb201
    assert fam.space.size == 27 and fam.intrinsic_names == ("convs",) and not fam.has_supernet
    net = fam.build(fam.config(("conv", "pool", "skip")))
    assert net[0].in_channels == 3 and net[-1].out_features == 5 and net[0].out_channels == 8
    archs = [("conv", "conv", "skip"), ("pool", "skip", "skip")]
    assert fam.intrinsic_weak(archs)["convs"].tolist() == [2.0, 0.0]
    with pytest.raises(ValueError, match="computes the intrinsic labels \\['convs'\\], not \\['flops'\\]"):
        fam.intrinsic_weak(archs, ["flops"])
    with pytest.raises(ValueError, match="name them in intrinsic_names"):
        ModelFamily(space=fam.space, model_fn=fam.model_fn, spec="x", intrinsic=conv_count)


def test_bench_ranking_reads_the_family_and_computes_its_intrinsic_label(table, tmp_path):
    out = tmp_path / "ranking.json"
    rc = main(["bench", "ranking", "--table", str(table), "--space", "toy", "--target", "acc",
               "--intrinsic", "convs", "--labels", "8", "--seeds", "2", "--methods", "nasrank,weak,random",
               "--ensemble", "1", "--quiet", "--out", str(out)])
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["config"]["space"] == "toy" and "--intrinsic convs" in res["config"]["command"]
    assert set(res["methods"]) == {"nasrank", "weak", "random"}
    # the conv count explains most of the toy accuracy: as a weak label it ranks far above chance
    assert res["methods"]["weak"]["kendall_tau"] > 0.5 > abs(res["methods"]["random"]["kendall_tau"])


def test_bench_search_searches_the_family_space(table, tmp_path):
    out = tmp_path / "search.json"
    rc = main(["bench", "search", "--table", str(table), "--space", "toy", "--target", "acc", "--budget", "10",
               "--seeds", "2", "--strategies", "nasrank,random", "--quiet", "--out", str(out),
               "--strategy-args", json.dumps({"nasrank": {"batch_size": 4, "predictor": {
                   "ensemble": 1, "hidden": 16, "pretrain_epochs": 2, "fit_epochs": 10, "patience": 5}}})])
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["optimum"] == pd.read_csv(table)["acc"].max() and list(res["strategies"]) == ["nasrank", "random"]
    values = set(pd.read_csv(table)["acc"])
    for s in res["strategies"].values():
        assert s["best_at"]["10"] <= res["optimum"] and len(s["per_seed"]) == 2
        for run in s["per_seed"]:  # ten distinct table rows queried, each by its toy arch string
            assert len(run["values"]) == 10 and set(run["values"]) <= values


@pytest.mark.ray
def test_the_main_job_searches_the_family(ray_session, tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["search", "--out", str(out), "--space", "toy", "--dataset", "digits", "--budget", "3",
               "--rounds", "2", "--baseline", "none", "--pool-size", "10", "--train-size", "200",
               "--valid-size", "100", "--test-size", "100", "--batch-size", "64", "--finalist-epochs", "1",
               "--ranker-epochs", "3", "--image-size", "0", "--final-epochs", "1", "--final-train-size", "200",
               "--final-valid-size", "100", "--final-test-size", "100", "--channels", "4", "--min-steps", "0",
               "--no-progress"])  # the search fidelity is the full one: one Tune run, no retraining
    assert rc == 0, capsys.readouterr().err
    space = load_family("toy").space
    weak = pd.read_parquet(out / "weak_labels.parquet")
    # no supernet: the weak labels are the family's proxy; its intrinsic label joins at pretraining
    assert not (out / "supernet.pt").exists() and list(weak.filter(like="weak_").columns) == ["weak_params"]
    res = pd.read_parquet(out / "results.parquet")
    assert len(res) == 3 and res["error"].isna().all() and res["valid_acc"].between(0, 100).all()
    convs = [float(sum(op == "conv" for op in space.from_string(a))) for a in res["arch"]]
    assert res["weak_convs"].tolist() == convs  # the intrinsic label, in the report's table too
    best = json.loads((out / "best.json").read_text())
    assert best["space"] == "toy" and best["arch"] in set(res["arch"]) and 0 <= best["test_acc"] <= 100
    # a cell of ops: the report draws the op per layer
    assert (out / "report" / "op_distribution.png").is_file()
