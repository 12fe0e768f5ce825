"""Zero-cost proxies: finite, deterministic under a seed, sensible, and agreeing with NASLib."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ray_nasrank.data import load_dataset
from ray_nasrank.proxies import (
    DEFAULT_PROXIES,
    PROXIES,
    compute_proxies,
    compute_proxies_many,
    random_batch,
    resolve_names,
)

TINY = dict(channels=4, cells_per_stage=1, input_shape=(1, 8, 8), num_classes=10)
CONV = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
MIXED = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|"
LIGHT = "|skip_connect~0|+|none~0|avg_pool_3x3~1|+|nor_conv_1x1~0|none~1|skip_connect~2|"


@pytest.fixture(scope="module")
def digits_batch():
    s = load_dataset("digits", seed=0)
    return s.train.x[:32], s.train.y[:32]


def test_all_proxies_finite_and_deterministic(digits_batch):
    a = compute_proxies(MIXED, names=list(PROXIES), batch=digits_batch, seed=3, **TINY)
    b = compute_proxies(MIXED, names=list(PROXIES), batch=digits_batch, seed=3, **TINY)
    assert list(a) == list(PROXIES)
    assert all(math.isfinite(v) for v in a.values()), a
    assert a == b
    c = compute_proxies(MIXED, names=list(PROXIES), batch=digits_batch, seed=4, **TINY)
    # weights change with the seed; size measures do not
    assert c["params"] == a["params"] and c["flops"] == a["flops"]
    assert c["snip"] != a["snip"] and c["naswot"] != a["naswot"]


def test_order_of_names_does_not_change_values(digits_batch):
    fwd = compute_proxies(MIXED, names=("snip", "synflow", "grad_norm"), batch=digits_batch, **TINY)
    rev = compute_proxies(MIXED, names=("grad_norm", "synflow", "snip"), batch=digits_batch, **TINY)
    assert fwd == rev


def test_global_rng_untouched_and_random_batch_seeded():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    compute_proxies(LIGHT, names=("snip",), batch_size=8, **TINY)
    assert torch.equal(torch.rand(3), expected)
    x1, y1 = random_batch(8, (1, 8, 8), 10, seed=5)
    x2, y2 = random_batch(8, (1, 8, 8), 10, seed=5)
    assert torch.equal(x1, x2) and torch.equal(y1, y2) and x1.shape == (8, 1, 8, 8)


def test_size_measures_order_archs():
    conv = compute_proxies(CONV, names=("params", "flops", "synflow"), batch_size=4, **TINY)
    light = compute_proxies(LIGHT, names=("params", "flops", "synflow"), batch_size=4, **TINY)
    assert conv["params"] > light["params"] and conv["flops"] > light["flops"]
    assert conv["synflow"] > light["synflow"]
    from ray_nasrank.nn import NB201Network, count_parameters

    net = NB201Network(CONV, channels=4, cells_per_stage=1, in_channels=1, num_classes=10)
    assert conv["params"] == pytest.approx(count_parameters(net) / 1e6)


def test_flops_counts_conv_macs():
    # stem conv alone: 1 input channel -> C channels, 3x3, on 8x8 -> 9 * C * 64 MACs; a 'none'-only
    # cell adds none, so the all-none network's MACs are the skeleton's
    none = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    one_conv = "|none~0|+|none~0|none~1|+|nor_conv_1x1~0|none~1|none~2|"
    a = compute_proxies(none, names=("flops",), batch_size=4, **TINY)["flops"]
    b = compute_proxies(one_conv, names=("flops",), batch_size=4, **TINY)["flops"]
    # one 1x1 conv per stage: C*C*64 + 2C*2C*16 + 4C*4C*4 MACs with C=4
    assert (b - a) * 1e6 == pytest.approx(4 * 4 * 64 + 8 * 8 * 16 + 16 * 16 * 4)


def test_disconnected_cell_synflow_is_minus_inf():
    dead = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    assert compute_proxies(dead, names=("synflow",), batch_size=4, **TINY)["synflow"] == float("-inf")


def test_any_module_and_aliases(digits_batch):
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(4 * 6 * 6, 10))
    s = compute_proxies(net, names=("params", "nwot", "jacob_cov", "snip"), batch=digits_batch)
    assert set(s) == {"params", "naswot", "jacov", "snip"}
    assert s["params"] * 1e6 == sum(p.numel() for p in net.parameters())
    assert all(math.isfinite(v) for v in s.values())


def test_compute_many_dataframe():
    df = compute_proxies_many([MIXED, LIGHT], names=("params", "grad_norm"), progress=False,
                              with_timings=True, batch_size=8, **TINY)
    assert list(df.columns) == ["arch", "params", "grad_norm", "seconds_params", "seconds_grad_norm"]
    assert df["arch"].tolist() == [MIXED, LIGHT]
    assert np.isfinite(df[["params", "grad_norm"]].to_numpy()).all()


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(names=("zen",)), ValueError, "unknown proxy 'zen'"),
    (dict(names=()), ValueError, "no proxy"),
    (dict(names=(3,)), TypeError, "strings"),
    (dict(input_shape=(8, 8)), ValueError, "input_shape"),
    (dict(batch_size=1), ValueError, "batch_size"),
    (dict(num_classes=1), ValueError, "num_classes"),
    (dict(batch="x"), TypeError, "pair"),
    (dict(batch=(torch.zeros(4, 1, 8, 8), torch.zeros(4))), ValueError, "class indices"),
    (dict(batch=(torch.zeros(4, 1, 9, 9), torch.zeros(4, dtype=torch.long))), ValueError, "input_shape"),
])
def test_bad_input(kwargs, err, match):
    args = dict(TINY, names=("params",), batch_size=4)
    args.update(kwargs)
    with pytest.raises(err, match=match):
        compute_proxies(MIXED, **args)


def test_bad_arch():
    with pytest.raises(ValueError):
        compute_proxies("|conv~0|", names=("params",), batch_size=4, **TINY)
    assert resolve_names("nwot") == ("naswot",)
    assert set(DEFAULT_PROXIES) <= set(PROXIES)


@pytest.mark.data
def test_params_flops_agree_with_naslib_table(nb201_zc_path):
    import pandas as pd

    from ray_nasrank.metrics import spearman

    table = pd.read_parquet(nb201_zc_path).iloc[:20]
    df = compute_proxies_many(table["arch"], names=("params", "flops"), progress=False,
                              channels=4, cells_per_stage=1, input_shape=(3, 8, 8), batch_size=2)
    # the size measures depend only on which ops the cell uses, so a narrow net ranks like C=16
    assert spearman(table["params"], df["params"]) > 0.95
    assert spearman(table["flops"], df["flops"]) > 0.95


@pytest.mark.data
def test_bench_proxies_cli(nb201_zc_path, tmp_path):
    import json

    import pandas as pd

    from ray_nasrank.cli import main

    small = tmp_path / "zc.parquet"
    pd.read_parquet(nb201_zc_path).iloc[:6].to_parquet(small)
    out = tmp_path / "res" / "agreement.json"
    rc = main(["bench", "proxies", "--table", str(small), "--proxies", "params,nwot,plain",
               "--channels", "4", "--cells-per-stage", "1", "--batch-size", "4", "--limit", "5",
               "--out", str(out)])
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["num_archs"] == 5 and set(res["proxies"]) == {"params", "naswot", "plain"}
    assert res["proxies"]["naswot"]["table_column"] == "nwot"
    assert res["proxies"]["params"]["vs_table"]["spearman"] > 0.9
    scores = pd.read_csv(out.with_name("agreement_scores.csv"))
    assert len(scores) == 5 and "seconds_naswot" in scores.columns
    assert main(["bench", "proxies", "--table", str(small), "--limit", "2", "--out", str(out)]) == 2
    assert main(["bench", "proxies", "--table", str(small), "--proxies", "zen", "--out", str(out)]) == 2


@pytest.mark.data
def test_bench_proxies_cli_shared_synflow_agrees_with_the_table(nb201_zc_path, tmp_path):
    import json

    import pandas as pd

    from ray_nasrank.cli import main

    small = tmp_path / "zc.parquet"
    pd.read_parquet(nb201_zc_path).iloc[:60].to_parquet(small)
    out = tmp_path / "shared.json"
    assert main(["bench", "proxies", "--table", str(small), "--proxies", "params", "--shared-synflow",
                 "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    e = res["proxies"]["shared_synflow"]
    assert e["table_column"] == "synflow" and not e["data_dependent"]
    # one small shared supernet still ranks like NASLib's full-size per-cell SynFlow
    assert e["vs_table"]["spearman"] > 0.95
    assert res["shared_synflow_net"]["cells_per_stage"] == 1
    assert "shared_synflow" in pd.read_csv(out.with_name("shared_scores.csv")).columns
