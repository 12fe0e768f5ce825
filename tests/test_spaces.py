import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ray_nasrank.spaces import (
    EDGE_KEYS,
    OPS,
    CategoricalSpace,
    Decision,
    NB201Space,
    arch_to_str,
    get_space,
    parse_arch,
    space_from_tune,
)

SPACE = NB201Space()
archs_st = st.tuples(*[st.sampled_from(OPS)] * 6)
BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def test_space_import_does_not_import_ray_or_torch():
    code = "import sys, ray_nasrank.spaces, ray_nasrank.encodings, ray_nasrank.metrics, ray_nasrank.benchmarks; " \
           "print('ray' in sys.modules, 'optuna' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_nb201_size_and_enumeration_order():
    all_archs = list(SPACE.enumerate())
    assert len(all_archs) == SPACE.size == 15625
    assert len(set(all_archs)) == 15625
    assert all_archs[0] == ("none",) * 6
    assert all_archs[1] == ("none",) * 5 + ("skip_connect",)
    for i in (0, 1, 777, 15624):
        assert SPACE.index_of(SPACE.arch_at(i)) == i


def test_parse_known_string():
    arch = parse_arch(BEST)
    assert arch == ("nor_conv_3x3", "nor_conv_3x3", "nor_conv_3x3", "skip_connect", "nor_conv_3x3", "nor_conv_3x3")
    assert arch_to_str(arch) == BEST


@given(archs_st)
def test_string_round_trip(arch):
    assert SPACE.from_string(SPACE.to_string(arch)) == arch
    assert SPACE.from_config(SPACE.to_config(arch)) == arch
    assert SPACE.from_config(SPACE.to_flat_params(arch)) == arch


@pytest.mark.parametrize(
    "bad, needle",
    [
        ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|", "3 node groups"),
        ("|conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|", "conv_5x5"),
        ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "input index"),
        ("|none~0|+|none~0|+|none~0|none~1|none~2|", "2 input edge"),
        ("none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "must look like"),
        ("|none0|+|none~0|none~1|+|none~0|none~1|none~2|", "none0"),
        ("", "node groups"),
    ],
)
def test_malformed_strings_name_the_problem(bad, needle):
    with pytest.raises(ValueError, match=needle):
        parse_arch(bad)


def test_validate_rejects_wrong_edge_count_and_unknown_op():
    with pytest.raises(ValueError, match="6 ops"):
        SPACE.validate(("none",) * 5)
    with pytest.raises(ValueError, match="'sep_conv'"):
        SPACE.validate(("none",) * 5 + ("sep_conv",))
    with pytest.raises(ValueError, match="must be a string"):
        parse_arch(42)
    assert not SPACE.contains(("none",) * 7)
    assert SPACE.contains(BEST)


@settings(max_examples=300)
@given(st.text(max_size=60))
def test_fuzzed_strings_only_raise_value_error(text):
    try:
        arch = parse_arch(text)
    except ValueError as e:
        assert str(e)
    else:
        assert arch_to_str(arch) == text.strip()


def test_iso_key_basic_equivalences():
    # node 1 copies the input, so conv-from-input and pool-from-node-1 commute at node 3
    a = ("skip_connect", "none", "none", "nor_conv_3x3", "avg_pool_3x3", "none")
    b = ("skip_connect", "none", "none", "avg_pool_3x3", "nor_conv_3x3", "none")
    assert SPACE.iso_key(a) == SPACE.iso_key(b)
    # edges that only feed a zero node do not matter
    c = ("none", "none", "nor_conv_3x3", "skip_connect", "none", "none")
    d = ("none", "none", "avg_pool_3x3", "skip_connect", "none", "none")
    assert SPACE.iso_key(c) == SPACE.iso_key(d)
    assert SPACE.iso_key(a) != SPACE.iso_key(c)


def test_iso_key_matches_nb201_table(nb201_bench):
    import pandas as pd

    df = pd.read_parquet(nb201_bench_path(nb201_bench))
    mine = [SPACE.iso_key(a) for a in df["arch"]]
    assert len(set(mine)) == df["iso"].nunique() == 6466
    assert mine == df["iso"].tolist()
    assert sum(not SPACE.is_connected(a) for a in df["arch"]) == 341


def nb201_bench_path(_bench):
    from ray_nasrank.benchmarks import find_shared_data

    return find_shared_data()


def test_sampling_is_seeded_and_unique():
    a = SPACE.sample_many(50, rng=3, unique=True)
    assert a == SPACE.sample_many(50, rng=3, unique=True)
    assert len(set(a)) == 50
    with pytest.raises(ValueError, match="unique"):
        CategoricalSpace({"a": [1, 2]}).sample_many(3, unique=True)


def test_neighbours_and_mutate():
    arch = SPACE.arch_at(1234)
    nbrs = SPACE.neighbours(arch)
    assert len(nbrs) == 6 * 4 and arch not in nbrs
    for n in nbrs:
        assert sum(x != y for x, y in zip(n, arch)) == 1
    rng = np.random.default_rng(0)
    for _ in range(20):
        assert SPACE.mutate(arch, rng) in nbrs


def test_categorical_space_plain_spec():
    space = CategoricalSpace({"block": {"k": [3, 5, 7]}, "w": [16, 32]})
    assert space.size == 6
    assert [d.name for d in space.decisions] == ["block/k", "w"]
    arch = (5, 32)
    assert space.to_config(arch) == {"block": {"k": 5}, "w": 32}
    assert space.from_string(space.to_string(arch)) == arch
    with pytest.raises(ValueError, match="unknown value 9"):
        space.validate((9, 32))
    with pytest.raises(ValueError, match="1 decisions, expected 2"):
        space.validate((3,))
    with pytest.raises(ValueError, match="contains '/'"):
        Decision(("a/b",), (1, 2))
    with pytest.raises(ValueError, match="duplicate choices"):
        Decision(("a",), (1, 1))


def test_get_space():
    assert get_space("nb201") == NB201Space()
    with pytest.raises(ValueError, match="unknown space 'nb301'"):
        get_space("nb301")


# ------------------------------------------------------------------------------ Tune spaces
tune = pytest.importorskip("ray.tune")


def test_space_from_tune_detects_nb201_and_constants():
    ps = {"cell": {k: tune.choice(list(OPS)) for k in EDGE_KEYS}, "epochs": 12, "opt": {"lr": 0.1}}
    space, consts = space_from_tune(ps)
    assert isinstance(space, NB201Space) and space.key == "cell"
    assert consts == {"epochs": 12, "opt": {"lr": 0.1}}


def test_space_from_tune_generic_nested_and_randint():
    ps = {"net": {"depth": tune.randint(2, 5), "width": tune.choice([16, 32])}, "q": tune.qrandint(0, 10, 5)}
    space, consts = space_from_tune(ps)
    assert isinstance(space, CategoricalSpace)
    assert [d.name for d in space.decisions] == ["net/depth", "net/width", "q"]
    assert space.decisions[0].choices == (2, 3, 4)
    assert space.decisions[2].choices == (0, 5, 10)
    assert consts == {}
    tune_ps = space.to_tune()
    again, _ = space_from_tune(tune_ps)
    assert again.decisions == space.decisions


@pytest.mark.parametrize(
    "ps, needle",
    [
        ({"lr": tune.uniform(0, 1)}, "'lr'.*Float"),
        ({"a": {"b": tune.loguniform(1e-4, 1)}}, "'a/b'"),
        ({"g": tune.grid_search([1, 2])}, "grid_search"),
        ({"s": tune.sample_from(lambda c: 1)}, "'s'"),
        ({"cell": [tune.choice(list(OPS))] * 6}, "list holding Tune domains"),
        ({"a/b": tune.choice([1, 2])}, "contains '/'"),
        ({"fixed": 3}, "no tune.choice"),
        ({"n": tune.lograndint(1, 100)}, "log-scaled"),
    ],
)
def test_space_from_tune_rejects_unsupported(ps, needle):
    with pytest.raises(ValueError, match=needle):
        space_from_tune(ps)


def test_to_optuna_distributions():
    pytest.importorskip("optuna")
    dists = SPACE.to_optuna()
    assert list(dists) == [f"cell/{k}" for k in EDGE_KEYS]
    assert tuple(dists["cell/e1_0"].choices) == OPS
