import os

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ray_nasrank._io import atomic_write_json, check_writable_dir
from ray_nasrank.benchmarks import TabularBenchmark, read_table
from ray_nasrank.spaces import CategoricalSpace, NB201Space


def small_frame():
    return pd.DataFrame({
        "k": [3, 5, 3, 5], "w": [8, 8, 16, 16],
        "acc": [0.5, 0.6, 0.7, 0.9], "lat": [1.0, 2.0, 3.0, 4.0], "proxy": [0.1, np.nan, 0.3, 0.4],
    })


def test_columns_table_oracle_counts_queries():
    b = TabularBenchmark.from_frame(small_frame(), space="columns", arch_cols=["k", "w"], target="acc",
                                    weak=["proxy"], keep=["lat"])
    assert isinstance(b.space, CategoricalSpace) and b.space.size == 4
    assert b.evaluate((5, 16)) == 0.9 and b.evaluate((3, 8)) == 0.5 and b.queries == 2
    assert b.lookup((3, 16)) == 0.7 and b.queries == 2
    assert b.optimum == 0.9
    assert np.isnan(b.weak_label("proxy", [(5, 8)])[0])
    with pytest.raises(ValueError, match="unknown value 7 for 'k'"):
        b.evaluate((7, 8))
    partial = TabularBenchmark.from_frame(small_frame().iloc[:3], space="columns", arch_cols=["k", "w"], target="acc")
    with pytest.raises(KeyError, match="not in the table"):
        partial.evaluate((5, 16))
    with pytest.raises(KeyError, match="no weak label 'flops'"):
        b.weak_label("flops")
    assert list(b.frame().columns) == ["arch", "acc", "proxy", "lat"]


def test_min_mode_table():
    b = TabularBenchmark.from_frame(small_frame(), space="columns", arch_cols=["k", "w"], target="lat", mode="min")
    assert b.optimum == 1.0 and b.better(1.0, 2.0)


@pytest.mark.parametrize(
    "change, kwargs, needle",
    [
        (lambda d: d.drop(columns=["acc"]), {}, r"no column\(s\) \['acc'\]"),
        (lambda d: d.assign(acc=[0.1, np.nan, 0.2, 0.3]), {}, "NaN/inf value.*row 1"),
        (lambda d: d.assign(acc=["a", "b", "c", "d"]), {}, "non-numeric value 'a'"),
        (lambda d: d, {"arch_cols": None}, "needs arch_cols"),
        (lambda d: pd.concat([d, d.iloc[:1]]), {}, "more than once"),
    ],
)
def test_bad_tables(change, kwargs, needle):
    args = {"space": "columns", "arch_cols": ["k", "w"], "target": "acc"} | kwargs
    with pytest.raises(ValueError, match=needle):
        TabularBenchmark.from_frame(change(small_frame()), **args)


def test_bad_nb201_arch_row_is_named():
    df = pd.DataFrame({"arch": ["|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "|bad~0|"], "y": [1.0, 2.0]})
    with pytest.raises(ValueError, match="row 1 of column 'arch'"):
        TabularBenchmark.from_frame(df, space="nb201", target="y")


def test_read_table_formats(tmp_path):
    df = small_frame()
    df.to_csv(tmp_path / "t.csv", index=False)
    df.to_parquet(tmp_path / "t.parquet")
    assert read_table(tmp_path / "t.csv").shape == read_table(tmp_path / "t.parquet").shape
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_table(tmp_path / "nope.csv")
    (tmp_path / "t.xlsx").write_text("x")
    with pytest.raises(ValueError, match="unsupported format"):
        read_table(tmp_path / "t.xlsx")


def test_nb201_table(nb201_bench):
    b = nb201_bench
    assert len(b) == 15625 and isinstance(b.space, NB201Space)
    assert b.optimum == pytest.approx(94.37, abs=0.01)
    assert int(np.sum(b.targets >= b.optimum - 1e-9)) == 2


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 3),
                          st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.none())),
                min_size=1, max_size=12))
def test_fuzzed_tables_load_or_raise_value_error(rows):
    df = pd.DataFrame(rows, columns=["op", "n", "y"])
    try:
        b = TabularBenchmark.from_frame(df, space="columns", arch_cols=["op", "n"], target="y")
    except ValueError as e:
        assert str(e)
    else:
        assert np.all(np.isfinite(b.targets)) and len(b) == len(df)


def test_atomic_json_and_writable_dir(tmp_path):
    p = atomic_write_json(tmp_path / "sub" / "x.json", {"a": np.float32(1.5), "b": np.arange(2)})
    assert p.read_text().startswith("{") and not [f for f in os.listdir(p.parent) if f.endswith(".tmp")]
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as a user that ignores permissions")
        with pytest.raises(PermissionError, match="not writable"):
            check_writable_dir(ro)
    finally:
        ro.chmod(0o700)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(NotADirectoryError, match="not a directory"):
        check_writable_dir(tmp_path / "afile")
    with pytest.raises(OSError, match="MiB free"):
        check_writable_dir(tmp_path, min_free_bytes=2**62)
