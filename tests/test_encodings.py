import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ray_nasrank import encodings as E
from ray_nasrank.spaces import OPS, CategoricalSpace, NB201Space

SPACE = NB201Space()
archs_st = st.lists(st.tuples(*[st.sampled_from(OPS)] * 6), min_size=1, max_size=8)


@pytest.mark.parametrize("kind, width", [("onehot", 30), ("opdist", 5), ("opcounts", 5), ("path", 84),
                                         ("adjacency", 64 + 56), ("onehot+opdist", 35)])
def test_shapes(kind, width):
    x = E.encode(SPACE, SPACE.sample_many(7, rng=0), kind)
    assert x.shape == (7, width) and x.dtype == np.float32
    assert E.dim(SPACE, kind) == width


@given(archs_st)
def test_onehot_round_trip_and_determinism(archs):
    x = E.encode(SPACE, archs, "onehot")
    assert np.array_equal(x, E.encode(SPACE, archs, "onehot"))
    assert np.all(x.reshape(len(archs), 6, 5).sum(-1) == 1)
    decoded = [tuple(OPS[j] for j in row.reshape(6, 5).argmax(-1)) for row in x]
    assert decoded == [tuple(a) for a in archs]


@given(archs_st)
def test_opdist_is_a_distribution_and_counts_match(archs):
    d = E.encode(SPACE, archs, "opdist")
    c = E.encode(SPACE, archs, "opcounts")
    assert np.allclose(d.sum(1), 1.0)
    assert np.allclose(c, d * 6)
    for a, row in zip(archs, c):
        assert [a.count(op) for op in OPS] == row.tolist()


def test_path_encoding_counts_paths():
    all_conv = ("nor_conv_3x3",) * 6
    p = E.encode(SPACE, [all_conv], "path")[0]
    assert p.sum() == 4  # 1 + 2 + 1 paths of length 1, 2, 3
    assert E.encode(SPACE, [("none",) * 6], "path").sum() == 0
    only_direct = ("none", "none", "none", "skip_connect", "none", "none")
    assert E.encode(SPACE, [only_direct], "path").sum() == 1


def test_graph_tensors_cut_none_edges():
    arch = ("none", "nor_conv_3x3", "skip_connect", "avg_pool_3x3", "none", "nor_conv_1x1")
    adj, feats = E.graph_tensors(SPACE, [arch])
    assert adj.shape == (1, 8, 8) and feats.shape == (1, 8, 7)
    assert adj[0, 1].sum() == 0 and adj[0, :, 1].sum() == 0  # edge e1_0 is 'none'
    assert adj[0, 0, 2] == 1 and adj[0, 2, 6] == 1 and adj[0, 6, 7] == 1
    assert feats[0].sum() == 8


def test_opcount_vectors_and_sampling():
    vecs = E.opcount_vectors(SPACE)
    assert len(vecs) == 210 and all(sum(v) == 6 for v in vecs)
    rng = np.random.default_rng(0)
    for v in vecs[::17]:
        a = E.sample_with_opcounts(SPACE, v, rng)
        assert [a.count(op) for op in OPS] == list(v)
    with pytest.raises(ValueError, match="do not add up"):
        E.sample_with_opcounts(SPACE, (1, 1, 1, 1, 1), rng)


def test_generic_space_groups_shared_choice_sets():
    space = CategoricalSpace({"a": ["x", "y"], "b": ["x", "y"], "w": [8, 16, 32]})
    d = E.encode(space, [("x", "x", 16), ("x", "y", 8)], "opdist")
    assert d.tolist() == [[1.0, 0.0, 0.0, 1.0, 0.0], [0.5, 0.5, 1.0, 0.0, 0.0]]
    assert len(E.opcount_vectors(space)) == 3 * 3


def test_bad_kinds_and_spaces():
    with pytest.raises(ValueError, match="unknown encoding 'graph'"):
        E.encode(SPACE, [SPACE.arch_at(0)], "graph")
    space = CategoricalSpace({"a": [1, 2]})
    with pytest.raises(ValueError, match="NB201 space only"):
        E.encode(space, [(1,)], "path")
    with pytest.raises(ValueError, match="unknown NB201 op"):
        E.encode(SPACE, [("bogus",) * 6], "onehot")
