"""Architecture encodings: numeric features for predictors and strategies.

Kinds (``encode(space, archs, kind)``):

- ``onehot``: one block per decision, one column per choice.
- ``opdist``: operation distribution, the share of each choice among decisions that have the same
  choice set (for NB201: the ratio of each of the 5 ops over the 6 edges). Seed idea 004.
- ``opcounts``: the same as integer counts (NB201 has 210 distinct count vectors).
- ``path``: NB201 only; how many input-to-output paths carry each sequence of non-``none`` ops
  (4 + 16 + 64 = 84 columns).
- ``adjacency``: graph models; flattened op-on-node adjacency matrix followed by one-hot node
  labels. :func:`graph_tensors` gives the same as separate arrays.

Combine kinds with ``+``, e.g. ``onehot+opdist``.
"""

from __future__ import annotations

import itertools
from functools import lru_cache
from typing import Sequence

import numpy as np

from ray_nasrank.spaces import Arch, NB201Space, SearchSpace
from ray_nasrank.spaces._nb201 import EDGES, NUM_NODES, OPS

KINDS = ("onehot", "opdist", "opcounts", "path", "adjacency")


def _as_list(space: SearchSpace, archs: Sequence[Arch] | Arch) -> list[Arch]:
    if isinstance(archs, (str, dict)):
        return [space.validate(archs)]
    archs = list(archs)
    if archs and not isinstance(archs[0], (tuple, list, str, dict)):
        # a single architecture passed as a flat tuple of values
        return [space.validate(tuple(archs))]
    return [space.validate(a) for a in archs]


def encode(space: SearchSpace, archs: Sequence[Arch] | Arch, kind: str = "onehot") -> np.ndarray:
    """Encode ``archs`` as a float32 matrix of shape ``(len(archs), dim(kind))``."""
    archs = _as_list(space, archs)
    parts = kind.split("+")
    for p in parts:
        if p not in KINDS:
            raise ValueError(f"unknown encoding {p!r}; choose from {list(KINDS)} (combine with '+')")
    mats = [_ENCODERS[p](space, archs) for p in parts]
    return np.concatenate(mats, axis=1).astype(np.float32, copy=False)


def dim(space: SearchSpace, kind: str = "onehot") -> int:
    """Number of columns :func:`encode` produces."""
    return encode(space, [space.arch_at(0)], kind).shape[1]


# ---------------------------------------------------------------------------- one-hot
def onehot(space: SearchSpace, archs: Sequence[Arch]) -> np.ndarray:
    idx = _choice_index_matrix(space, archs)
    offsets = np.cumsum([0] + [len(d.choices) for d in space.decisions[:-1]])
    width = sum(len(d.choices) for d in space.decisions)
    out = np.zeros((len(idx), width), dtype=np.float32)
    rows = np.repeat(np.arange(len(idx)), idx.shape[1])
    out[rows, (idx + offsets).ravel()] = 1.0
    return out


def _choice_index_matrix(space: SearchSpace, archs: Sequence[Arch]) -> np.ndarray:
    lookups = [{_key(c): i for i, c in enumerate(d.choices)} for d in space.decisions]
    return np.array([[lk[_key(v)] for lk, v in zip(lookups, a)] for a in archs], dtype=np.int64).reshape(
        len(archs), space.num_decisions
    )


def _key(v):
    try:
        hash(v)
        return v
    except TypeError:
        return repr(v)


# ---------------------------------------------------------------------------- op distribution
def _groups(space: SearchSpace) -> list[tuple[tuple, list[int]]]:
    """Decisions grouped by their choice set (in order of first appearance)."""
    groups: dict[tuple, list[int]] = {}
    for i, d in enumerate(space.decisions):
        groups.setdefault(tuple(map(_key, d.choices)), []).append(i)
    return list(groups.items())


def opcounts(space: SearchSpace, archs: Sequence[Arch]) -> np.ndarray:
    blocks = []
    for choices, members in _groups(space):
        pos = {c: j for j, c in enumerate(choices)}
        block = np.zeros((len(archs), len(choices)), dtype=np.float32)
        for r, a in enumerate(archs):
            for i in members:
                block[r, pos[_key(a[i])]] += 1
        blocks.append(block)
    return np.concatenate(blocks, axis=1)


def opdist(space: SearchSpace, archs: Sequence[Arch]) -> np.ndarray:
    blocks = []
    counts = opcounts(space, archs)
    col = 0
    for choices, members in _groups(space):
        blocks.append(counts[:, col:col + len(choices)] / len(members))
        col += len(choices)
    return np.concatenate(blocks, axis=1)


def opcount_vectors(space: SearchSpace) -> list[tuple[int, ...]]:
    """Every distinct op-count vector of the space (210 for NB201), sorted."""
    groups = _groups(space)
    per_group = []
    for choices, members in groups:
        per_group.append(list(_compositions(len(members), len(choices))))
    return sorted(tuple(itertools.chain(*combo)) for combo in itertools.product(*per_group))


def _compositions(total: int, parts: int):
    if parts == 1:
        yield (total,)
        return
    for first in range(total + 1):
        for rest in _compositions(total - first, parts - 1):
            yield (first,) + rest


def sample_with_opcounts(space: SearchSpace, counts: Sequence[int], rng: np.random.Generator | int | None = None) -> Arch:
    """A uniformly random architecture whose op counts equal ``counts``.

    Places the required multiset of choices on each group's decisions in random order.
    """
    rng = np.random.default_rng(rng)
    counts = list(counts)
    arch: list = [None] * space.num_decisions
    col = 0
    for choices, members in _groups(space):
        c = counts[col:col + len(choices)]
        col += len(choices)
        if sum(c) != len(members) or min(c) < 0:
            raise ValueError(f"op counts {c} do not add up to the {len(members)} decisions of their group")
        bag = [space.decisions[members[0]].choices[j] for j, n in enumerate(c) for _ in range(int(n))]
        rng.shuffle(bag)
        for i, v in zip(members, bag):
            arch[i] = v
    if col != len(counts):
        raise ValueError(f"expected {col} op counts, got {len(counts)}")
    return tuple(arch)


# ---------------------------------------------------------------------------- NB201 paths
_NB201_PATHS: tuple[tuple[int, ...], ...] = ((3,), (0, 4), (1, 5), (0, 2, 5))  # edge indices into EDGES
_REAL_OPS = tuple(o for o in OPS if o != "none")


@lru_cache(maxsize=1)
def _path_index() -> dict[tuple[str, ...], int]:
    out: dict[tuple[str, ...], int] = {}
    for length in (1, 2, 3):
        for seq in itertools.product(_REAL_OPS, repeat=length):
            out[seq] = len(out)
    return out


def _require_nb201(space: SearchSpace, kind: str) -> None:
    if not isinstance(space, NB201Space):
        raise ValueError(f"the {kind!r} encoding is defined for the NB201 space only, not {space!r}")


def path(space: SearchSpace, archs: Sequence[Arch]) -> np.ndarray:
    _require_nb201(space, "path")
    index = _path_index()
    out = np.zeros((len(archs), len(index)), dtype=np.float32)
    for r, a in enumerate(archs):
        for p in _NB201_PATHS:
            seq = tuple(a[k] for k in p)
            if "none" not in seq:
                out[r, index[seq]] += 1
    return out


# ---------------------------------------------------------------------------- graphs
def graph_tensors(space: SearchSpace, archs: Sequence[Arch] | Arch) -> tuple[np.ndarray, np.ndarray]:
    """Adjacency ``(n, V, V)`` and one-hot node labels ``(n, V, len(OPS) + 2)`` for NB201.

    Node labels: the 5 ops, then ``input`` and ``output``. Nodes of ``none`` edges keep their
    label but lose their connections.
    """
    _require_nb201(space, "adjacency")
    archs = _as_list(space, archs)
    labels = list(OPS) + ["input", "output"]
    lab = {name: i for i, name in enumerate(labels)}
    adj0, _ = space.graph(archs[0])  # type: ignore[attr-defined]
    n, v = len(archs), adj0.shape[0]
    adj = np.broadcast_to(adj0, (n, v, v)).copy()
    feats = np.zeros((n, v, len(labels)), dtype=np.float32)
    feats[:, 0, lab["input"]] = 1
    feats[:, -1, lab["output"]] = 1
    for r, a in enumerate(archs):
        for k, op in enumerate(a):
            feats[r, k + 1, lab[op]] = 1
            if op == "none":
                # a 'none' edge carries nothing: cut it out of the data flow
                adj[r, k + 1, :] = 0
                adj[r, :, k + 1] = 0
    return adj, feats


def adjacency(space: SearchSpace, archs: Sequence[Arch]) -> np.ndarray:
    adj, feats = graph_tensors(space, archs)
    return np.concatenate([adj.reshape(len(archs), -1), feats.reshape(len(archs), -1)], axis=1)


_ENCODERS = {"onehot": onehot, "opdist": opdist, "opcounts": opcounts, "path": path, "adjacency": adjacency}

__all__ = [
    "KINDS",
    "encode",
    "dim",
    "onehot",
    "opdist",
    "opcounts",
    "opcount_vectors",
    "sample_with_opcounts",
    "path",
    "adjacency",
    "graph_tensors",
]

assert len(EDGES) == 6 and NUM_NODES == 4  # the path table above is written for this cell
