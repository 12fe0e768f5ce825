"""Arch samplers for supernet training: uniform single paths and RD-NAS group-distance pairs
(NB201), or pairs a number of decisions apart (any space).

RD-NAS splits the NB201 ops into a parametric group (``nor_conv_1x1``, ``nor_conv_3x3``) and a
non-parametric one (``none``, ``skip_connect``, ``avg_pool_3x3``). Two cells differ on an edge by
``cross`` (default 2) when the ops fall in different groups and by ``within`` (0.5) when they
differ inside a group; a pair is kept only when the summed distance exceeds ``mu`` (6.7), so the
distillation sees pairs whose ranking is informative.

>>> group_distance(("none",) * 6, ("nor_conv_3x3",) * 6)
12.0
>>> sampler = GroupDistancePairSampler(mu=6.7, rng=0)
>>> a, b = sampler.sample()
>>> group_distance(a, b) > 6.7
True
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ray_nasrank.spaces import OPS, PARAMETRIC_OPS, NB201Space, SearchSpace

__all__ = ["group_distance", "GroupDistancePairSampler", "UniformSampler", "FairSampler", "DistancePairSampler"]

_SPACE = NB201Space()


def group_distance(a, b, cross: float = 2.0, within: float = 0.5) -> float:
    """RD-NAS group distance between two NB201 cells (see module docstring).

    Args:
        a: one cell (6-tuple, NB201 string or config).
        b: the other cell.
        cross: distance of an edge whose two ops are in different groups (parametric or not).
        within: distance of an edge whose two different ops are in the same group.

    Returns:
        The sum over edges.

    Raises:
        ValueError: an invalid cell.
    """
    a, b = _SPACE.validate(a), _SPACE.validate(b)
    d = 0.0
    for x, y in zip(a, b):
        if x == y:
            continue
        d += cross if (x in PARAMETRIC_OPS) != (y in PARAMETRIC_OPS) else within
    return d


class UniformSampler:
    """Single-path uniform sampling (SPOS): every decision drawn independently and uniformly.

    ``space``: the supernet's space (default NB201: every edge's op); ``archs`` restricts
    sampling to a given list (e.g. the cells of one few-shot sub-supernet).

    Args:
        rng: a generator or seed for the draws (``None``: fresh entropy).
        archs: draw only among these archs (``None``: the whole space).
        space: the supernet's space (``None``: NB201).

    Raises:
        ValueError: an empty or invalid ``archs`` list.
    """

    def __init__(self, rng: np.random.Generator | int | None = None, archs: Sequence | None = None,
                 space: SearchSpace | None = None) -> None:
        self.rng = np.random.default_rng(rng)
        self.space = space
        check = (space or _SPACE).validate
        self.archs = None if archs is None else [check(a) for a in archs]
        if self.archs is not None and not self.archs:
            raise ValueError("UniformSampler got an empty arch list")

    def sample(self) -> tuple:
        if self.archs is not None:
            return self.archs[int(self.rng.integers(len(self.archs)))]
        if self.space is not None:
            return self.space.sample(self.rng)
        return tuple(OPS[i] for i in self.rng.integers(len(OPS), size=6))


class FairSampler:
    """Strict fairness (FairNAS, Chu et al., ICCV 2021): each step trains one path per op, built
    so that every op of every edge is used exactly once per step (an independent random
    permutation of the ops on each edge), and the step's gradient is their mean. Uniform SPOS
    only balances the ops in expectation; here every op's weights get the same number of updates.

    :meth:`sample_paths` gives the paths of one step (as many as there are ops);
    :func:`~ray_nasrank.supernet.train_supernet` averages their losses. A step costs that many
    forward and backward passes.

    Args:
        rng: a generator or seed for the permutations (``None``: fresh entropy).

    >>> paths = FairSampler(rng=0).sample_paths()
    >>> len(paths)
    5
    >>> all(sorted(p[e] for p in paths) == sorted(OPS) for e in range(6))
    True
    """

    def __init__(self, rng: np.random.Generator | int | None = None) -> None:
        self.rng = np.random.default_rng(rng)

    def sample_paths(self) -> list[tuple[str, ...]]:
        perms = [self.rng.permutation(len(OPS)) for _ in range(6)]
        return [tuple(OPS[perm[i]] for perm in perms) for i in range(len(OPS))]

    def sample(self) -> tuple[str, ...]:
        """One path (the first of a fresh fair set; uniform over the cells)."""
        return self.sample_paths()[0]


class DistancePairSampler:
    """Pairs of archs of any space that differ in more than ``min_differences`` decisions
    (rejection sampling over uniform draws): RD-NAS's idea that distillation learns from pairs
    far enough apart, where no op grouping is known.

    Args:
        space: the space to draw archs from.
        min_differences: pairs differ in more than this many decisions (``0 .. decisions - 1``).
        rng: a generator or seed for the draws (``None``: fresh entropy).
        max_tries: draws per :meth:`sample` before it gives up with ``RuntimeError``.

    Raises:
        ValueError: ``min_differences`` out of range.

    >>> from ray_nasrank.spaces import CategoricalSpace
    >>> space = CategoricalSpace({"a": [1, 2, 3], "b": ["x", "y"], "c": [0, 1]})
    >>> a, b = DistancePairSampler(space, min_differences=1, rng=0).sample()
    >>> sum(u != v for u, v in zip(a, b)) > 1
    True
    """

    def __init__(self, space: SearchSpace, min_differences: int = 0, rng: np.random.Generator | int | None = None,
                 max_tries: int = 10_000) -> None:
        n = space.num_decisions
        if isinstance(min_differences, bool) or not isinstance(min_differences, int) or not 0 <= min_differences < n:
            raise ValueError(f"min_differences must be an integer in 0..{n - 1} (the space has {n} decisions), "
                             f"got {min_differences!r}")
        self.space, self.min_differences, self.max_tries = space, min_differences, int(max_tries)
        self.rng = np.random.default_rng(rng)
        self.tries = 0

    def sample(self) -> tuple[tuple, tuple]:
        for _ in range(self.max_tries):
            self.tries += 1
            a, b = self.space.sample(self.rng), self.space.sample(self.rng)
            if sum(u != v for u, v in zip(a, b)) > self.min_differences:
                return a, b
        raise RuntimeError(f"no pair differing in more than {self.min_differences} decisions in {self.max_tries} draws")


class GroupDistancePairSampler:
    """Pairs of cells whose RD-NAS group distance exceeds ``mu`` (rejection sampling).

    ``max_tries`` bounds the rejection loop; a ``mu`` no pair can exceed raises ``ValueError``.

    Args:
        mu: pairs have a group distance above this.
        cross: see :func:`group_distance`.
        within: see :func:`group_distance`.
        rng: a generator or seed for the draws (``None``: fresh entropy).
        max_tries: draws per :meth:`sample` before it gives up with ``RuntimeError``.

    Raises:
        ValueError: a negative distance, or a ``mu`` no pair can exceed.
    """

    def __init__(self, mu: float = 6.7, cross: float = 2.0, within: float = 0.5,
                 rng: np.random.Generator | int | None = None, max_tries: int = 10_000) -> None:
        if cross < 0 or within < 0:
            raise ValueError(f"distances must be non-negative, got cross={cross!r}, within={within!r}")
        max_d = 6 * max(cross, within)
        if not mu < max_d:
            raise ValueError(f"mu={mu!r} cannot be exceeded: the largest group distance is {max_d}")
        self.mu, self.cross, self.within = float(mu), float(cross), float(within)
        self.uniform = UniformSampler(rng)
        self.max_tries = int(max_tries)
        self.tries = 0  # total draws, to report the acceptance rate

    def sample(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        for _ in range(self.max_tries):
            self.tries += 1
            a, b = self.uniform.sample(), self.uniform.sample()
            if group_distance(a, b, self.cross, self.within) > self.mu:
                return a, b
        raise RuntimeError(f"no pair above mu={self.mu} in {self.max_tries} draws")
