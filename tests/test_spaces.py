import copy
import math
import pickle
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ray_nasrank.spaces import (
    EDGE_KEYS,
    INACTIVE,
    OPS,
    CategoricalSpace,
    Condition,
    Decision,
    Float,
    Integer,
    NB201Space,
    Normal,
    SearchSpace,
    arch_to_str,
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


# ------------------------------------------------------------------------------ mixed and conditional spaces
MIXED = SearchSpace({"net": {"act": ["relu", "gelu", "silu"], "depth": Integer(1, 4), "width": Integer(8, 256, log=True)},
                     "lr": Float(1e-4, 0.1, log=True), "dropout": Float(0.0, 0.5, step=0.1), "noise": Normal(0.0, 2.0)})
COND = SearchSpace([Decision(("opt",), ["sgd", "adam"]),
                    Decision(("momentum",), Float(0.0, 0.99), Condition("opt", ("sgd",))),
                    Decision(("beta",), Integer(1, 3), Condition("opt", ("adam",))),
                    Decision(("nesterov",), [True, False], Condition("opt", ("sgd",)))])


def test_inactive_sentinel():
    assert repr(INACTIVE) == "inactive"
    assert pickle.loads(pickle.dumps(INACTIVE)) is INACTIVE and copy.deepcopy(INACTIVE) is INACTIVE
    assert hash(INACTIVE) == hash(pickle.loads(pickle.dumps(INACTIVE)))
    assert INACTIVE != None and INACTIVE != 0  # noqa: E711


def test_domains_print_like_tune():
    assert repr(Float(1e-4, 0.1, log=True)) == "loguniform(0.0001, 0.1)"
    assert repr(Integer(1, 4)) == "randint(1, 5)"
    assert repr(Decision(("a",), [1, 2]).domain) == "choice([1, 2])"
    assert "net/width: lograndint(8, 257)" in MIXED.describe()


def test_mixed_space_sample_validate_features_moves():
    assert MIXED.size == math.inf and not MIXED.indexable and MIXED.numeric
    rng = np.random.default_rng(1)
    archs = [MIXED.sample(rng) for _ in range(300)]
    x = MIXED.features(archs)
    assert x.shape == (300, 3 + 5) and x.min() >= 0 and x.max() <= 1
    lrs = np.array([a[3] for a in archs])
    # log-uniform: about half the draws below the geometric middle
    assert 0.4 < np.mean(lrs < math.sqrt(1e-4 * 0.1)) < 0.6
    assert {a[4] for a in archs} <= {0.0, 0.1, 0.2, 0.3, 0.4, 0.5}
    for a in archs[:20]:
        assert MIXED.from_string(MIXED.to_string(a)) == a
        for b in MIXED.local_moves(a, rng, 5):
            assert MIXED.validate(b) == b and b != a
            assert sum(x != y for x, y in zip(a, b)) <= 2
    with pytest.raises(ValueError, match=r"'lr'"):
        MIXED.validate(("relu", 2, 16, 0.5, 0.1, 0.0))
    with pytest.raises(ValueError, match="not on the grid"):
        MIXED.validate(("relu", 2, 16, 0.01, 0.15, 0.0))
    with pytest.raises(ValueError, match="expected an integer"):
        MIXED.validate(("relu", 2.5, 16, 0.01, 0.1, 0.0))


def test_conditional_space_inactive_values_are_one_candidate():
    assert COND.size == math.inf and COND.conditional
    assert COND.validate(("adam", 0.5, 2, True)) == ("adam", INACTIVE, 2, INACTIVE)
    assert COND.validate(("adam", 0.9, 2, False)) == COND.validate(("adam", INACTIVE, 2, INACTIVE))
    with pytest.raises(ValueError, match="'beta' is active"):
        COND.validate(("adam", INACTIVE, INACTIVE, INACTIVE))
    assert COND.to_config(("adam", INACTIVE, 2, INACTIVE)) == {"opt": "adam", "beta": 2}
    assert COND.from_config({"opt": "adam", "beta": 2}) == ("adam", INACTIVE, 2, INACTIVE)
    with pytest.raises(ValueError, match="no value for 'momentum'"):
        COND.from_config({"opt": "sgd", "nesterov": True})
    rng = np.random.default_rng(0)
    for _ in range(100):
        a = COND.sample(rng)
        assert (a[1] is INACTIVE) == (a[0] == "adam") and (a[2] is INACTIVE) == (a[0] == "sgd")
        m = COND.mutate(a, rng)
        assert COND.validate(m) == m
    x = COND.features([("adam", INACTIVE, 2, INACTIVE), ("sgd", 0.5, INACTIVE, True)])
    assert x.shape == (2, 2 + 2 + 2 + 3)  # one-hot opt, momentum+flag, beta+flag, nesterov+flag
    finite = SearchSpace([Decision(("opt",), ["sgd", "adam"]),
                          Decision(("m",), Integer(0, 9), Condition("opt", ("sgd",))),
                          Decision(("b",), Integer(1, 3), Condition("opt", ("adam",)))])
    assert finite.size == 13 == len(set(finite.enumerate()))
    with pytest.raises(ValueError, match="conditioned on 'later'"):
        SearchSpace([Decision(("a",), [1], Condition("later", (1,))), Decision(("later",), [1])])


def test_large_space_has_no_enumeration():
    big = CategoricalSpace({f"d{i}": list(range(128)) for i in range(30)})
    assert big.size == 128 ** 30
    a = big.sample(0)
    assert len(big.local_moves(a, 0, 10)) == 10
    assert E_dim(big) == 30 * 128


def E_dim(space):
    from ray_nasrank import encodings

    return encodings.dim(space, "onehot")


def test_value_strings_are_read_as_typed():
    space = CategoricalSpace({"f": [0.5, "0.5_2"]})
    with pytest.raises(ValueError, match="'0.5_2'"):
        space.from_string("f=0.5_2")
    assert space.from_string("f='0.5_2'") == ("0.5_2",)


def test_spaces_are_named_through_the_family_registry():
    from ray_nasrank.families import FAMILIES, SpaceError, load_family

    assert "nb201" in FAMILIES and load_family("nb201").space == NB201Space()
    with pytest.raises(SpaceError, match="'nb301'.*built-in model family \\['nb201'"):
        load_family("nb301")


# ------------------------------------------------------------------------------ Tune spaces
tune = pytest.importorskip("ray.tune")


def test_space_from_tune_never_guesses_nb201_from_its_shape():
    # the NB201 cell written as Tune domains is a plain categorical space: NB201 is named, not detected
    ps = {"cell": {k: tune.choice(list(OPS)) for k in EDGE_KEYS}, "epochs": 12, "opt": {"lr": 0.1}}
    space, consts = space_from_tune(ps)
    assert type(space) is CategoricalSpace and space.intrinsic_names == ()
    assert consts == {"epochs": 12, "opt": {"lr": 0.1}}
    # ... with the same decisions, so NB201Space().to_tune() is the named space's Tune form
    assert space.decisions == NB201Space().decisions


def test_space_from_tune_generic_nested_and_randint():
    ps = {"net": {"depth": tune.randint(2, 5), "width": tune.choice([16, 32])}, "q": tune.qrandint(0, 10, 5)}
    space, consts = space_from_tune(ps)
    assert [d.name for d in space.decisions] == ["net/depth", "net/width", "q"]
    # Tune's randint excludes its upper bound, qrandint includes it
    assert space.decisions[0].domain == Integer(2, 4)
    assert space.decisions[2].domain == Integer(0, 10, step=5)
    assert repr(space.decisions[0].domain) == "randint(2, 5)"
    assert space.size == 3 * 2 * 3
    assert consts == {}
    tune_ps = space.to_tune()
    again, _ = space_from_tune(tune_ps)
    assert again.decisions == space.decisions


@pytest.mark.parametrize(
    "ps, needle",
    [
        ({"g": tune.grid_search([1, 2])}, "grid_search"),
        ({"s": tune.sample_from(lambda c: 1)}, "'s'.*sample_from"),
        ({"s": ("__fn_ph", "1a2b3c4d")}, "'s'.*tune.sample_from .handed to searchers"),
        ({"cell": [tune.choice(list(OPS))] * 6}, "list holding Tune domains"),
        ({"a/b": tune.choice([1, 2])}, "contains '/'"),
        ({"fixed": 3}, "no Tune domain"),
        ({"c": tune.choice([{"x": tune.uniform(0, 1)}, {"y": 1}])}, "conditional space"),
    ],
)
def test_space_from_tune_rejects_unsupported(ps, needle):
    with pytest.raises(ValueError, match=needle):
        space_from_tune(ps)


def test_space_from_tune_converts_every_domain():
    ps = {"a": tune.choice(["x", "y"]), "b": tune.randint(1, 5), "c": tune.lograndint(1, 100),
          "d": tune.qrandint(0, 10, 2), "e": tune.uniform(0, 1), "f": tune.loguniform(1e-4, 1e-1),
          "g": tune.quniform(0, 1, 0.1), "h": tune.qloguniform(1e-4, 1e-1, 5e-5), "i": tune.randn(0, 1),
          "j": tune.qrandn(0, 2, 0.5)}
    space, _ = space_from_tune(ps)
    assert [repr(d.domain) for d in space.decisions] == [
        "choice(['x', 'y'])", "randint(1, 5)", "lograndint(1, 100)", "qrandint(0, 10, 2)", "uniform(0.0, 1.0)",
        "loguniform(0.0001, 0.1)", "quniform(0.0, 1.0, 0.1)", "qloguniform(0.0001, 0.1, 5e-05)", "randn(0.0, 1.0)",
        "qrandn(0.0, 2.0, 0.5)"]
    assert space.size == math.inf
    rng = np.random.default_rng(0)
    for _ in range(200):
        a = space.sample(rng)
        assert space.validate(a) == a
        cfg = space.to_config(a)
        assert space.from_config(cfg) == a
        assert 1 <= cfg["b"] <= 4 and 1 <= cfg["c"] <= 99 and cfg["d"] % 2 == 0 and 1e-4 <= cfg["f"] <= 0.1
        assert round(cfg["g"] * 10) == cfg["g"] * 10
    again, _ = space_from_tune(space.to_tune())
    assert again.decisions == space.decisions


def test_space_from_tune_names_every_offending_key_at_once():
    ps = {"lr": tune.loguniform(1e-4, 1e-1), "net": {"l1": tune.sample_from(lambda _: 8), "l2": ("__fn_ph", "ab12cd34")},
          "g": tune.grid_search([1, 2])}
    with pytest.raises(ValueError) as e:
        space_from_tune(ps)
    msg = str(e.value)
    assert "3 entries" in msg
    for key in ("'net/l1'", "'net/l2'", "'g'"):
        assert key in msg
    assert "tune.choice" in msg and "'lr'" not in msg


def test_to_optuna_distributions():
    pytest.importorskip("optuna")
    dists = SPACE.to_optuna()
    assert list(dists) == [f"cell/{k}" for k in EDGE_KEYS]
    assert tuple(dists["cell/e1_0"].choices) == OPS
