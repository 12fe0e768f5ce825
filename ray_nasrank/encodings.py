"""Architecture encodings: numeric features for predictors and strategies.

Kinds (``encode(space, archs, kind)``):

- ``onehot``: one block per categorical decision, one column per choice; numeric decisions as
  one column in ``[0, 1]`` of their natural transform; an inactive flag per conditional decision.
- ``opdist``: operation distribution, the share of each choice among categorical decisions that
  have the same choice set (for NB201: the ratio of each of the 5 ops over the 6 edges). Seed idea 004.
- ``opcounts``: the same as integer counts (NB201 has 210 distinct count vectors).
- ``path``: NB201 only; how many input-to-output paths carry each sequence of non-``none`` ops
  (4 + 16 + 64 = 84 columns).
- ``adjacency``: graph models; flattened op-on-node adjacency matrix followed by one-hot node
  labels. :func:`graph_tensors` gives the same as separate arrays.

Combine kinds with ``+``, e.g. ``onehot+opdist``. The encoders live with the spaces
(:mod:`ray_nasrank.spaces`; the NB201 ones with the NB201 space); this module is their public face.
"""

from __future__ import annotations

from ray_nasrank.spaces._encodings import (
    KINDS,
    count_opcount_vectors,
    dim,
    encode,
    onehot,
    opcount_vectors,
    opcounts,
    opdist,
    sample_with_opcounts,
)
from ray_nasrank.spaces._nb201 import adjacency_encoding as adjacency
from ray_nasrank.spaces._nb201 import graph_tensors
from ray_nasrank.spaces._nb201 import path_encoding as path

__all__ = [
    "KINDS",
    "encode",
    "dim",
    "onehot",
    "opdist",
    "opcounts",
    "opcount_vectors",
    "count_opcount_vectors",
    "sample_with_opcounts",
    "path",
    "adjacency",
    "graph_tensors",
]
