"""Cached architecture features, shared by every predictor of the same space.

Encoding an architecture is pure Python and slow next to a forward pass, and a search scores
the same 15,625 NB201 cells many times, so each ``(space, kinds, graph)`` gets one process-wide
:class:`FeatureStore` that encodes an architecture once and afterwards answers with row indices.

>>> from ray_nasrank.spaces import NB201Space
>>> store = feature_store(NB201Space(), "onehot+opdist")
>>> rows = store.rows([NB201Space().arch_at(0), NB201Space().arch_at(1)])
>>> store.flat[rows].shape
(2, 35)
"""

from __future__ import annotations

import threading
from typing import Any, Sequence

import numpy as np

from ray_nasrank import encodings
from ray_nasrank.spaces import SearchSpace


class FeatureStore:
    """Flat features (and NB201 graph tensors when ``graph``) for every architecture seen so far."""

    def __init__(self, space: SearchSpace, kinds: str, graph: bool = False) -> None:
        if graph and not callable(getattr(space, "graph", None)):
            raise ValueError(f"graph encoders need a space whose archs are graphs (a graph(arch) method, as "
                             f"the NB201 cell space has), not {space!r}; use encoder='mlp'")
        encodings.dim(space, kinds)  # validates the kinds early, with the encodings' own message
        self.space = space
        self.kinds = kinds
        self.graph = graph
        self._index: dict[tuple, int] = {}
        self._flat: list[np.ndarray] = []
        self._adj: list[np.ndarray] = []
        self._nodes: list[np.ndarray] = []
        self._cat: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def rows(self, archs: Sequence[Any]) -> np.ndarray:
        """Row indices of ``archs`` (validated and encoded on first sight)."""
        out = np.empty(len(archs), dtype=np.int64)
        missing: dict[tuple, list[int]] = {}
        index = self._index
        for i, a in enumerate(archs):
            r = index.get(a) if isinstance(a, tuple) else None
            if r is None:
                key = self.space.validate(a)
                r = index.get(key)
                if r is None:
                    missing.setdefault(key, []).append(i)
                    continue
            out[i] = r
        if missing:
            with self._lock:
                self._add(list(missing))
                for key, positions in missing.items():
                    out[positions] = self._index[key]
        return out

    def _add(self, archs: list[tuple]) -> None:
        new = [a for a in archs if a not in self._index]
        if not new:
            return
        start = len(self._index)
        self._flat.append(encodings.encode(self.space, new, self.kinds))
        if self.graph:
            adj, nodes = encodings.graph_tensors(self.space, new)
            self._adj.append(adj.astype(np.float32))
            self._nodes.append(nodes.astype(np.float32))
        for i, a in enumerate(new):
            self._index[a] = start + i
        self._cat.clear()

    def _concat(self, name: str, parts: list[np.ndarray]) -> np.ndarray:
        if not parts:  # nothing encoded yet: an empty matrix of the right width
            return np.zeros((0, self.flat_dim), dtype=np.float32) if name == "flat" else np.zeros((0,), np.float32)
        if name not in self._cat:
            self._cat[name] = np.concatenate(parts, axis=0)
        return self._cat[name]

    @property
    def flat(self) -> np.ndarray:
        return self._concat("flat", self._flat)

    @property
    def adj(self) -> np.ndarray:
        return self._concat("adj", self._adj)

    @property
    def nodes(self) -> np.ndarray:
        return self._concat("nodes", self._nodes)

    @property
    def flat_dim(self) -> int:
        return encodings.dim(self.space, self.kinds)

    def __len__(self) -> int:
        return len(self._index)


_STORES: dict[tuple, FeatureStore] = {}
_STORES_LOCK = threading.Lock()


def feature_store(space: SearchSpace, kinds: str, graph: bool = False) -> FeatureStore:
    """The shared :class:`FeatureStore` of ``(space, kinds, graph)``."""
    key = (space, kinds, graph)
    with _STORES_LOCK:
        store = _STORES.get(key)
        if store is None:
            store = _STORES[key] = FeatureStore(space, kinds, graph)
    return store


__all__ = ["FeatureStore", "feature_store"]
