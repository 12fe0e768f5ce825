"""The NAS-Bench-201 cell space: 4 nodes, 6 edges, 5 operations, 15,625 cells, and its own encodings.

Besides the generic kinds it encodes ``path`` (how many input-to-output paths carry each
sequence of non-``none`` ops: 4 + 16 + 64 = 84 columns) and ``adjacency`` (flattened op-on-node
adjacency matrix followed by one-hot node labels; :func:`graph_tensors` gives both as arrays).
"""

from __future__ import annotations

import itertools
import re
from functools import lru_cache
from typing import Any, Hashable, Sequence

import numpy as np

from ray_nasrank._state import state_class

from ._base import Arch, Decision, SearchSpace

#: operation names, in the order NB201 and its tables use
OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: ops with weights (RD-NAS's parametric group)
PARAMETRIC_OPS: frozenset[str] = frozenset({"nor_conv_1x1", "nor_conv_3x3"})
#: edges as (to_node, from_node), in the order of the canonical string and of an ``Arch`` tuple
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
#: edge keys used in Tune configs: ``e<to>_<from>``
EDGE_KEYS: tuple[str, ...] = tuple(f"e{t}_{f}" for t, f in EDGES)
NUM_NODES = 4

_PART = re.compile(r"^([A-Za-z0-9_]+)~(\d+)$")


def parse_arch(text: str) -> Arch:
    """Parse the canonical NB201 string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``.

    Args:
        text: the NB201 string.

    Returns:
        The 6-tuple of op names in :data:`EDGES` order.

    Raises:
        ValueError: ``text`` is not a string, is malformed (the message names the node group),
            or names an unknown op.

    >>> parse_arch("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|")[:2]
    ('nor_conv_3x3', 'nor_conv_3x3')
    """
    if not isinstance(text, str):
        raise ValueError(f"NB201 architecture must be a string, got {type(text).__name__}: {text!r}")
    nodes = text.strip().split("+")
    if len(nodes) != NUM_NODES - 1:
        raise ValueError(
            f"malformed NB201 string {text!r}: expected {NUM_NODES - 1} node groups separated by '+', "
            f"got {len(nodes)}"
        )
    ops: list[str] = []
    for to_node, group in enumerate(nodes, start=1):
        if not (group.startswith("|") and group.endswith("|")) or len(group) < 2:
            raise ValueError(f"malformed NB201 string {text!r}: node group {group!r} must look like '|op~0|'")
        parts = group[1:-1].split("|")
        if len(parts) != to_node:
            raise ValueError(
                f"malformed NB201 string {text!r}: node {to_node} needs {to_node} input edge(s), "
                f"got {len(parts)} in {group!r}"
            )
        for from_node, part in enumerate(parts):
            m = _PART.match(part)
            if not m:
                raise ValueError(f"malformed NB201 edge {part!r} in {text!r}; expected 'op~{from_node}'")
            op, src = m.group(1), int(m.group(2))
            if src != from_node:
                raise ValueError(
                    f"malformed NB201 edge {part!r} in {text!r}: input index must be {from_node}, got {src}"
                )
            if op not in OPS:
                raise ValueError(f"unknown NB201 op {op!r} in {text!r}; known ops: {list(OPS)}")
            ops.append(op)
    return tuple(ops)


def arch_to_str(arch: Arch) -> str:
    """Emit the canonical NB201 string of a 6-tuple of ops.

    Args:
        arch: six op names in :data:`EDGES` order.

    Returns:
        The ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` string.

    Raises:
        ValueError: not six ops, or an unknown op.
    """
    arch = tuple(arch)
    _check_ops(arch)
    groups = []
    k = 0
    for to_node in range(1, NUM_NODES):
        parts = []
        for from_node in range(to_node):
            parts.append(f"{arch[k]}~{from_node}")
            k += 1
        groups.append("|" + "|".join(parts) + "|")
    return "+".join(groups)


def _check_ops(arch: tuple) -> None:
    if len(arch) != len(EDGES):
        raise ValueError(f"NB201 architecture needs {len(EDGES)} ops (one per edge), got {len(arch)}: {arch!r}")
    for op in arch:
        if op not in OPS:
            raise ValueError(f"unknown NB201 op {op!r}; known ops: {list(OPS)}")


@lru_cache(maxsize=None)
def _iso_key(arch: Arch) -> str:
    # Each node's value is written as a canonical expression of the cell input "0". A sum is
    # flattened and sorted (addition is associative and commutative), 'skip_connect' passes its
    # input's expression through, and another op wraps it as "(expr)@op". A 'none' edge, or any
    # edge reading a node that is exactly zero, contributes the zero term "#". An op applied to
    # a sum of zeros is kept as it is: ReLU-Conv-BN of zero is BN's learned bias, not zero.
    # This reproduces the 6,466 classes of the NB201 tables.
    exprs: dict[int, str] = {0: "0"}
    for to_node in range(1, NUM_NODES):
        terms = []
        for k, (t, f) in enumerate(EDGES):
            if t != to_node:
                continue
            op, src = arch[k], exprs[f]
            if op == "none" or src == "#":
                terms.append("#")
            elif op == "skip_connect":
                terms.append(src)
            else:
                terms.append(f"({src})@{op}")
        exprs[to_node] = "+".join(sorted(terms))
    return exprs[NUM_NODES - 1]


@state_class(skip=("_parent_idx",))
class NB201Space(SearchSpace):
    """NAS-Bench-201 cell space.

    An ``Arch`` is a 6-tuple of op names, one per edge in :data:`EDGES` order. In a Tune config
    the cell is a dict of named edges under ``key``: ``{"cell": {"e1_0": op, ..., "e3_2": op}}``.

    Args:
        key: the config key the cell's edges sit under.

    >>> space = NB201Space()
    >>> space.size
    15625
    >>> arch = space.sample(0)
    >>> space.from_string(space.to_string(arch)) == arch
    True
    """

    name = "nb201"
    ops = OPS
    edges = EDGES

    def __init__(self, key: str = "cell") -> None:
        self.key = key
        self._decisions = tuple(Decision((key, e), OPS) for e in EDGE_KEYS)

    @property
    def decisions(self) -> tuple[Decision, ...]:
        return self._decisions

    def validate(self, arch: Any) -> Arch:
        if isinstance(arch, str):
            return parse_arch(arch)
        if isinstance(arch, dict):
            return self.from_config(arch)
        try:
            arch = tuple(arch)
        except TypeError:
            raise ValueError(f"nb201: cannot read an architecture from {arch!r}") from None
        _check_ops(arch)
        return arch

    def to_string(self, arch: Arch) -> str:
        return arch_to_str(arch)

    def from_string(self, text: str) -> Arch:
        return parse_arch(text)

    def iso_key(self, arch: Arch) -> Hashable:
        return _iso_key(self.validate(arch))

    def is_connected(self, arch: Arch) -> bool:
        """Whether any input-to-output path exists (else the cell outputs zero)."""
        arch = self.validate(arch)
        reach = {0}
        for k, (t, f) in enumerate(EDGES):
            if arch[k] != "none" and f in reach:
                reach.add(t)
        return NUM_NODES - 1 in reach

    def graph(self, arch: Arch) -> tuple[np.ndarray, list[str]]:
        """Op-on-node DAG: nodes are ``input``, the 6 edge ops, ``output``.

        Returns an (8, 8) adjacency matrix (``A[i, j] = 1`` for an edge i -> j) and the node
        labels. Edge-op k feeds every edge-op leaving its target node, or the output.
        """
        arch = self.validate(arch)
        n = len(EDGES) + 2
        adj = np.zeros((n, n), dtype=np.float32)
        for k, (t, f) in enumerate(EDGES):
            if f == 0:
                adj[0, k + 1] = 1
            for k2, (t2, f2) in enumerate(EDGES):
                if f2 == t:
                    adj[k + 1, k2 + 1] = 1
            if t == NUM_NODES - 1:
                adj[k + 1, n - 1] = 1
        return adj, ["input", *arch, "output"]

    def from_config(self, config) -> Arch:
        # accept the nested cell, the flat "cell/e1_0" keys, or a precomputed arch string
        if isinstance(config, dict) and "arch" in config and isinstance(config["arch"], str) \
                and self.key not in config and not any(d.name in config for d in self.decisions):
            return parse_arch(config["arch"])
        return super().from_config(config)

    encoding_kinds = ("onehot", "opdist", "opcounts", "path", "adjacency")
    ranker_features = "onehot+opdist+path"
    intrinsic_names = ("params", "flops", "synflow")

    def intrinsic_weak(self, archs: Sequence[Arch], names: Sequence[str], **options: Any) -> dict[str, np.ndarray]:
        """Params and FLOPs of the full-size network (exact, from five networks) and SynFlow of
        each cell in one small shared supernet: :func:`ray_nasrank.proxies.nb201_intrinsic`."""
        from ray_nasrank.proxies import nb201_intrinsic

        return nb201_intrinsic(self, archs, names, **options)

    def model_fn(self, channels: int = 16, cells_per_stage: int = 5, in_channels: int = 3,
                 num_classes: int = 10, **_: Any) -> Any:
        """``config -> NB201Network`` of that cell (the network NB201's tables were trained on by default)."""
        import functools

        return functools.partial(_nb201_network, self, dict(channels=channels, cells_per_stage=cells_per_stage,
                                                            in_channels=in_channels, num_classes=num_classes))

    def config_extras(self, arch: Arch) -> dict:
        """The canonical NB201 string as ``"arch"`` (what NB201 tables and trainables key on)."""
        return {"arch": self.to_string(arch)}

    def _encoder(self, kind: str):
        return {"path": path_encoding, "adjacency": adjacency_encoding}.get(kind) or super()._encoder(kind)

    def __repr__(self) -> str:
        return f"NB201Space(key={self.key!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NB201Space) and other.key == self.key

    def __hash__(self) -> int:
        return hash(("nb201", self.key))


def _nb201_network(space: NB201Space, net: dict, config: Any) -> Any:
    from ray_nasrank.nn import NB201Network

    return NB201Network(space.validate(config), **net)


# ---------------------------------------------------------------------------- NB201 encodings
_NB201_PATHS: tuple[tuple[int, ...], ...] = ((3,), (0, 4), (1, 5), (0, 2, 5))  # edge indices into EDGES
_REAL_OPS = tuple(o for o in OPS if o != "none")
assert len(EDGES) == 6 and NUM_NODES == 4  # the path table above is written for this cell


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


def path_encoding(space: SearchSpace, archs: Sequence[Arch]) -> np.ndarray:
    """Counts of input-to-output paths per sequence of non-``none`` ops (84 columns).

    Args:
        space: an NB201 space.
        archs: validated NB201 cells.

    Returns:
        The float32 count matrix ``(len(archs), 84)``.

    Raises:
        ValueError: ``space`` is not an NB201 space.
    """
    _require_nb201(space, "path")
    index = _path_index()
    out = np.zeros((len(archs), len(index)), dtype=np.float32)
    for r, a in enumerate(archs):
        for p in _NB201_PATHS:
            seq = tuple(a[k] for k in p)
            if "none" not in seq:
                out[r, index[seq]] += 1
    return out


def graph_tensors(space: SearchSpace, archs: Sequence[Arch] | Arch) -> tuple[np.ndarray, np.ndarray]:
    """Adjacency ``(n, V, V)`` and one-hot node labels ``(n, V, len(OPS) + 2)`` for NB201.

    Node labels: the 5 ops, then ``input`` and ``output``. Nodes of ``none`` edges keep their
    label but lose their connections.

    Args:
        space: an NB201 space.
        archs: one cell or a sequence of cells.

    Returns:
        ``(adjacency, node labels)``.

    Raises:
        ValueError: ``space`` is not an NB201 space, or an invalid cell.
    """
    from ._encodings import as_arch_list

    _require_nb201(space, "adjacency")
    archs = as_arch_list(space, archs)
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


def adjacency_encoding(space: SearchSpace, archs: Sequence[Arch]) -> np.ndarray:
    """Flattened adjacency matrix followed by one-hot node labels.

    Args:
        space: an NB201 space.
        archs: validated NB201 cells.

    Returns:
        The matrix, one row per cell (see :func:`graph_tensors`).

    Raises:
        ValueError: ``space`` is not an NB201 space.
    """
    adj, feats = graph_tensors(space, archs)
    return np.concatenate([adj.reshape(len(archs), -1), feats.reshape(len(archs), -1)], axis=1)
