"""Generic encodings of configurations: numeric features for predictors and strategies.

- ``onehot``: per categorical decision one column per choice; per numeric decision one column,
  its value in ``[0, 1]`` of the natural transform (log where log); per conditional decision an
  inactive flag (an inactive decision's own columns are 0).
- ``opdist``: operation distribution, the share of each choice among the categorical decisions
  with the same choice set (NB201: the ratio of each of the 5 ops over the 6 edges).
- ``opcounts``: the same as counts.

Spaces add kinds of their own (:class:`~ray_nasrank.spaces.NB201Space`: ``path``, ``adjacency``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from ._domains import INACTIVE, _hashable

if TYPE_CHECKING:
    from ._base import Arch, SearchSpace

#: every kind some built-in space offers
KINDS = ("onehot", "opdist", "opcounts", "path", "adjacency")


def as_arch_list(space: "SearchSpace", archs) -> list:
    """``archs`` validated, accepting one architecture (tuple, string or config) or a sequence."""
    if isinstance(archs, (str, dict)):
        return [space.validate(archs)]
    archs = list(archs)
    if archs and not isinstance(archs[0], (tuple, list, str, dict)):
        # a single architecture passed as a flat tuple of values
        return [space.validate(tuple(archs))]
    return [space.validate(a) for a in archs]


def encode(space: "SearchSpace", archs, kind: str = "onehot") -> np.ndarray:
    """Encode ``archs`` as a float32 matrix of shape ``(len(archs), dim(kind))``.

    Args:
        space: the space the architectures belong to.
        archs: one architecture (tuple, string or config) or a sequence of them.
        kind: an encoding of ``KINDS`` or several joined by ``+`` (e.g. ``onehot+opdist``).

    Returns:
        The float32 matrix, one row per architecture, the kinds' columns side by side.

    Raises:
        ValueError: an unknown kind, a kind the space does not offer (``path``, ``adjacency``:
            NB201 only), or an invalid architecture.
    """
    archs = as_arch_list(space, archs)
    parts = kind.split("+") if isinstance(kind, str) else [kind]
    fns = []
    for p in parts:
        if p not in KINDS:
            raise ValueError(f"unknown encoding {p!r}; choose from {list(KINDS)} (combine with '+')")
        fn = space._encoder(p)
        if fn is None:
            only = " (defined for the NB201 space only)" if p in ("path", "adjacency") else ""
            raise ValueError(f"the {p!r} encoding is not defined for {space!r}{only}; it offers "
                             f"{list(space.encoding_kinds)}")
        fns.append(fn)
    mats = [fn(space, archs) for fn in fns]
    return np.concatenate(mats, axis=1).astype(np.float32, copy=False)


def dim(space: "SearchSpace", kind: str = "onehot") -> int:
    """Number of columns :func:`encode` produces (independent of the configuration).

    Args:
        space: the space the architectures belong to.
        kind: as for :func:`encode`.

    Returns:
        The number of columns.

    Raises:
        ValueError: as for :func:`encode`.
    """
    return encode(space, [space.sample(np.random.default_rng(0))], kind).shape[1]


def onehot(space: "SearchSpace", archs: Sequence["Arch"]) -> np.ndarray:
    """One-hot block per categorical decision, one ``[0, 1]`` column per numeric decision (its
    natural transform), and an inactive flag per conditional decision.

    Args:
        space: the space the architectures belong to.
        archs: validated architectures.

    Returns:
        The matrix, one row per architecture.
    """
    blocks = []
    conditional = [p >= 0 for p in space._parents()]
    if not space.numeric and not any(conditional):
        return _onehot_categorical(space, archs)
    n = len(archs)
    for i, d in enumerate(space.decisions):
        col = [a[i] for a in archs]
        if d.categorical:
            lookup = {_hashable(c): j for j, c in enumerate(d.choices)}
            block = np.zeros((n, len(d.choices)), dtype=np.float32)
            for r, v in enumerate(col):
                if v is not INACTIVE:
                    block[r, lookup[_hashable(v)]] = 1.0
        else:
            dom = d.domain
            block = np.array([[0.0 if v is INACTIVE else dom.to_unit(v)] for v in col], dtype=np.float32).reshape(n, 1)
        blocks.append(block)
        if conditional[i]:
            blocks.append(np.array([[v is INACTIVE] for v in col], dtype=np.float32).reshape(n, 1))
    return np.concatenate(blocks, axis=1)


def _onehot_categorical(space: "SearchSpace", archs: Sequence["Arch"]) -> np.ndarray:
    lookups = [{_hashable(c): i for i, c in enumerate(d.choices)} for d in space.decisions]
    idx = np.array([[lk[_hashable(v)] for lk, v in zip(lookups, a)] for a in archs], dtype=np.int64).reshape(
        len(archs), space.num_decisions)
    offsets = np.cumsum([0] + [len(d.choices) for d in space.decisions[:-1]])
    width = sum(len(d.choices) for d in space.decisions)
    out = np.zeros((len(idx), width), dtype=np.float32)
    rows = np.repeat(np.arange(len(idx)), idx.shape[1])
    out[rows, (idx + offsets).ravel()] = 1.0
    return out


def choice_groups(space: "SearchSpace") -> list[tuple[tuple, list[int]]]:
    """Categorical decisions grouped by their choice set (in order of first appearance)."""
    groups: dict[tuple, list[int]] = {}
    for i, d in enumerate(space.decisions):
        if d.categorical:
            groups.setdefault(tuple(map(_hashable, d.choices)), []).append(i)
    return list(groups.items())


def opcounts(space: "SearchSpace", archs: Sequence["Arch"]) -> np.ndarray:
    """How often each choice is taken among the active categorical decisions that share a choice set.

    Args:
        space: the space the architectures belong to.
        archs: validated architectures.

    Returns:
        The float32 count matrix, one block of columns per choice set (see :func:`choice_groups`).
    """
    blocks = [np.zeros((len(archs), 0), dtype=np.float32)]
    for choices, members in choice_groups(space):
        pos = {c: j for j, c in enumerate(choices)}
        block = np.zeros((len(archs), len(choices)), dtype=np.float32)
        for r, a in enumerate(archs):
            for i in members:
                if a[i] is not INACTIVE:
                    block[r, pos[_hashable(a[i])]] += 1
        blocks.append(block)
    return np.concatenate(blocks, axis=1)


def opdist(space: "SearchSpace", archs: Sequence["Arch"]) -> np.ndarray:
    """The operation distribution: :func:`opcounts` divided by the number of decisions of each
    choice set (for NB201: the share of each of the 5 ops over the 6 edges).

    Args:
        space: the space the architectures belong to.
        archs: validated architectures.

    Returns:
        The float32 matrix, one row per architecture.
    """
    blocks = [np.zeros((len(archs), 0), dtype=np.float32)]
    counts = opcounts(space, archs)
    col = 0
    for choices, members in choice_groups(space):
        blocks.append(counts[:, col:col + len(choices)] / len(members))
        col += len(choices)
    return np.concatenate(blocks, axis=1)


def count_opcount_vectors(space: "SearchSpace") -> int:
    """How many distinct op-count vectors the space has, without listing them.

    Args:
        space: the space the architectures belong to.

    Returns:
        The number of distinct :func:`opcounts` rows the space can produce.
    """
    from math import comb, prod

    return prod(comb(len(m) + len(c) - 1, len(c) - 1) for c, m in choice_groups(space))


def opcount_vectors(space: "SearchSpace", limit: int = 100_000) -> list[tuple[int, ...]]:
    """Every distinct op-count vector of the space (210 for NB201), sorted.

    Raises ``ValueError`` when there are more than ``limit`` (their number grows fast with the
    decisions and choices: 30 decisions of 128 options have about 10**40).

    Args:
        space: the space the architectures belong to.
        limit: the most vectors to list.

    Returns:
        The vectors as integer tuples, sorted.

    Raises:
        ValueError: the space has more than ``limit`` of them.
    """
    import itertools

    total = count_opcount_vectors(space)
    if total > limit:
        raise ValueError(f"{space!r} has {total:.3g} op-count vectors, more than the limit {limit}")
    per_group = [list(_compositions(len(m), len(c))) for c, m in choice_groups(space)]
    return sorted(tuple(itertools.chain(*combo)) for combo in itertools.product(*per_group))


def _compositions(total: int, parts: int):
    if parts == 1:
        yield (total,)
        return
    for first in range(total + 1):
        for rest in _compositions(total - first, parts - 1):
            yield (first,) + rest


def sample_with_opcounts(space: "SearchSpace", counts: Sequence[int], rng=None) -> "Arch":
    """A uniformly random architecture whose op counts equal ``counts`` (unconditional spaces;
    numeric decisions are drawn from their prior).

    Places the required multiset of choices on each group's decisions in random order.

    Args:
        space: the space the architectures belong to.
        counts: one op-count vector (as :func:`opcounts` lays them out).
        rng: a generator or seed.

    Returns:
        The architecture.

    Raises:
        ValueError: ``counts`` has the wrong length, or a group's counts do not add up to its
            number of decisions.
    """
    rng = np.random.default_rng(rng)
    counts = list(counts)
    arch: list = [None] * space.num_decisions
    col = 0
    for choices, members in choice_groups(space):
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
    for i, d in enumerate(space.decisions):
        if arch[i] is None:
            arch[i] = d.domain.sample(rng)
    return tuple(arch)
