"""Operation-distribution search (seed idea 004).

Cells with the same op counts (how many edges carry each op; 210 vectors for NB201) tend to
perform alike, so the search first picks a count vector and then a cell with those counts.
:class:`OpDistModel` keeps a Gaussian belief about each vector's mean (standardized) score,
with a prior from weak labels, and picks vectors by Thompson sampling. It is used on its own by
:class:`OpDistStrategy` and as the exploration prior inside :class:`NASRankStrategy`.
"""

from __future__ import annotations

from typing import Callable, Hashable, Sequence

import numpy as np

from ray_nasrank._checks import check_int
from ray_nasrank._state import state_class
from ray_nasrank.encodings import count_opcount_vectors, encode, opcount_vectors, sample_with_opcounts
from ray_nasrank.spaces import Arch, SearchSpace

from ._base import _ENUMERABLE, Strategy
from ._weak import WeakSpec, resolve_weak, weak_rank_score

#: up to this many op-count vectors are listed in full; beyond, the vectors present in the pool are used
_MAX_VECTORS = 100_000


@state_class
class OpDistModel:
    """Thompson sampling over op-count vectors.

    ``pool`` is the finite set of cells to draw from (``None``: sample cells of a vector with
    :func:`sample_with_opcounts`, for spaces too large to enumerate). ``weak`` is a score per
    pool arch (higher is better, roughly standardized) whose per-vector mean, times
    ``prior_weight``, is the prior mean of that vector; ``prior_std`` is the prior's spread and
    ``noise_std`` the spread of single cells around their vector's mean, both in units of the
    observed scores' standard deviation.

    Args:
        space: the search space.
        pool: the cells to draw from (``None``: sample cells of a vector).
        weak: a prior score per pool cell.
        prior_weight: weight of the weak labels in a vector's prior mean.
        prior_std: the prior's spread.
        noise_std: the spread of single cells around their vector's mean.

    >>> from ray_nasrank.spaces import NB201Space
    >>> space = NB201Space()
    >>> m = OpDistModel(space, pool=list(space.enumerate()))
    >>> len(m.vectors)
    210
    """

    def __init__(self, space: SearchSpace, pool: Sequence[Arch] | None = None, weak: np.ndarray | None = None,
                 prior_weight: float = 1.0, prior_std: float = 1.0, noise_std: float = 0.5) -> None:
        for name, v in (("prior_std", prior_std), ("noise_std", noise_std)):
            if not v > 0:
                raise ValueError(f"{name} must be > 0, got {v!r}")
        self.space = space
        self.prior_std = float(prior_std)
        self.noise_std = float(noise_std)
        self.pool = None if pool is None else list(pool)
        if not space.conditional and count_opcount_vectors(space) <= _MAX_VECTORS:
            self.vectors: list[tuple[int, ...]] = opcount_vectors(space, _MAX_VECTORS)
        elif self.pool:
            # too many to list (30 decisions of 128 options have ~1e40), or inactive decisions
            # make the counts irregular: the vectors the pool holds
            counts = encode(space, self.pool, "opcounts").astype(np.int64)
            self.vectors = sorted({tuple(r) for r in counts.tolist()})
        else:
            raise ValueError(f"{space!r} has too many op-count vectors to list; give OpDistModel a pool")
        self._vindex = {v: i for i, v in enumerate(self.vectors)}
        nv = len(self.vectors)
        self.prior_mean = np.zeros(nv)
        self._members: list[list[Arch]] | None = None
        if self.pool is not None:
            vid = self.vector_ids(self.pool)
            self._members = [[] for _ in range(nv)]
            for a, i in zip(self.pool, vid):
                self._members[i].append(a)
            if weak is not None:
                weak = np.asarray(weak, dtype=np.float64)
                if weak.shape != (len(self.pool),):
                    raise ValueError(f"weak has shape {weak.shape}, expected ({len(self.pool)},)")
                sums = np.bincount(vid, weights=weak, minlength=nv)
                counts = np.bincount(vid, minlength=nv)
                means = np.divide(sums, counts, out=np.zeros(nv), where=counts > 0)
                present = counts > 0
                sd = means[present].std()
                z = (means - means[present].mean()) / (sd if sd > 0 else 1.0)
                self.prior_mean = float(prior_weight) * np.where(present, z, 0.0)
        elif weak is not None:
            raise ValueError("weak labels need a finite pool of candidates")
        self._order: list[np.ndarray] | None = None  # per-vector random order of its cells
        self._pos = np.zeros(nv, dtype=np.int64)
        self._exhausted = np.zeros(nv, dtype=bool)
        if self._members is not None:
            self._exhausted |= np.array([len(m) == 0 for m in self._members])
        self._sum = np.zeros(nv)
        self._n = np.zeros(nv)
        self._scores: list[float] = []

    def vector_ids(self, archs: Sequence[Arch]) -> np.ndarray:
        counts = encode(self.space, list(archs), "opcounts").astype(np.int64)
        return np.array([self._vindex[tuple(r)] for r in counts.tolist()], dtype=np.int64)

    def update(self, arch: Arch, score: float) -> None:
        """Add one observed (higher-is-better) score."""
        i = int(self.vector_ids([arch])[0])
        self._sum[i] += score
        self._n[i] += 1
        self._scores.append(float(score))

    def posterior(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std of each vector's standardized score."""
        s = np.asarray(self._scores)
        mu = s.mean() if len(s) else 0.0
        sd = s.std() if len(s) > 1 and s.std() > 0 else 1.0
        zsum = (self._sum - self._n * mu) / sd
        prec = 1.0 / self.prior_std ** 2 + self._n / self.noise_std ** 2
        mean = (self.prior_mean / self.prior_std ** 2 + zsum / self.noise_std ** 2) / prec
        return mean, 1.0 / np.sqrt(prec)

    def draw(self, n: int, rng: np.random.Generator, is_new: Callable[[Arch], bool],
             taken: set[Hashable] | None = None, allowed: Callable[[Arch], bool] | None = None) -> list[Arch]:
        """Up to ``n`` unseen cells, each from a vector picked by a fresh Thompson draw.

        ``is_new`` says for good (a cell seen once stays seen: skipped from then on); ``allowed``
        filters this draw only (e.g. cells now predicted infeasible, which a later model may
        predict feasible again): a vector none of whose new cells is allowed is skipped in this
        draw, not dropped.
        """
        taken = set() if taken is None else taken
        out: list[Arch] = []
        mean, std = self.posterior()
        skipped = self._exhausted.copy()
        while len(out) < n and not skipped.all():
            theta = rng.normal(mean, std)
            theta[skipped] = -np.inf
            v = int(np.argmax(theta))
            cell, any_new = self._next_cell(v, rng, is_new, taken, allowed)
            if cell is None:
                skipped[v] = True
                if not any_new:
                    self._exhausted[v] = True
                continue
            taken.add(self.space.iso_key(cell))
            out.append(cell)
        return out

    def _next_cell(self, v: int, rng: np.random.Generator, is_new: Callable[[Arch], bool],
                   taken: set[Hashable], allowed: Callable[[Arch], bool] | None = None) -> tuple[Arch | None, bool]:
        """The vector's next new cell that is allowed and not taken, and whether any new cell is
        left (one taken by this round counts as seen: it is about to be asked)."""
        def new(a: Arch) -> bool:
            return is_new(a) and self.space.iso_key(a) not in taken

        if self._members is None:
            for _ in range(200):
                a = sample_with_opcounts(self.space, self.vectors[v], rng)
                if new(a) and (allowed is None or allowed(a)):
                    return a, True
            return None, allowed is not None  # a filtered draw says nothing for good
        if self._order is None:
            self._order = [rng.permutation(len(m)) for m in self._members]
        members, order = self._members[v], self._order[v]
        pos = int(self._pos[v])
        found, any_new, i = None, False, pos
        while i < len(order):
            a = members[int(order[i])]
            if not new(a):
                if not any_new and i == pos:
                    pos += 1  # seen archs stay seen: skip them for good
            else:
                any_new = True
                if allowed is None or allowed(a):
                    found = a
                    break
            i += 1
        self._pos[v] = pos
        return found, any_new


@state_class
class OpDistStrategy(Strategy):
    """Operation-distribution search as a strategy of its own.

    Each proposal picks an op-count vector by Thompson sampling (prior from ``weak`` labels of
    the candidates when given) and an unseen cell with exactly those counts. In a space too large
    to list its count vectors (or a conditional one), cells come from a prior sample of
    ``pool_size`` configurations.

    Args:
        space: the search space.
        seed: seed of every random choice (``None``: not reproducible).
        mode: ``max`` when higher told values are better, ``min`` when lower are.
        candidates: a finite pool to propose from (e.g. a table's archs); ``None``: the whole space.
        max_fidelity: the full fidelity of ``tell`` (see :class:`~ray_nasrank.search.Strategy`); this
            strategy learns from full-fidelity results only.
        weak: weak labels of the candidates (see :class:`NASRankStrategy`), the vectors' prior.
        prior_weight: weight of the weak labels in a vector's prior mean.
        prior_std: the prior's spread.
        noise_std: the spread of single cells around their vector's mean.
        pool_size: prior samples standing in for a space too large to list its count vectors.

    >>> from ray_nasrank.spaces import NB201Space
    >>> s = OpDistStrategy(NB201Space(), seed=0)
    >>> batch = s.ask(3)
    >>> for a in batch:
    ...     s.tell(a, float(a.count("nor_conv_3x3")))
    >>> len(s.history)
    3
    """

    name = "opdist"

    def __init__(self, space: SearchSpace, *, seed: int | None = None, mode: str = "max",
                 candidates: Sequence[Arch] | None = None, weak: WeakSpec = None,
                 prior_weight: float = 1.0, prior_std: float = 1.0, noise_std: float = 0.5,
                 pool_size: int = 5000, max_fidelity: float | None = None) -> None:
        super().__init__(space, seed=seed, mode=mode, candidates=candidates, max_fidelity=max_fidelity)
        pool = self._candidates
        if pool is None and space.finite and space.size <= _ENUMERABLE:
            pool = list(space.enumerate())
        elif pool is None and (space.conditional or count_opcount_vectors(space) > _MAX_VECTORS):
            # a prior sample stands in for a space too large (or too irregular) to place op counts in
            pool = space.sample_many(min(check_int("pool_size", pool_size, low=1), space.size), self._rng, unique=True)
        w = weak_rank_score(resolve_weak(weak, pool)) if weak is not None and pool is not None else None
        if weak is not None and pool is None:
            raise ValueError("weak labels need candidates (the space is too large to enumerate)")
        self.model = OpDistModel(space, pool, w, prior_weight=prior_weight, prior_std=prior_std,
                                 noise_std=noise_std)

    def _observe(self, arch: Arch, score: float | None, source: str) -> None:
        if score is not None:
            self.model.update(arch, score)

    def _propose(self, n: int) -> list[Arch]:
        return self.model.draw(n, self._rng, self.is_new)
