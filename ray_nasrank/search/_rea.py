"""Regularized evolution (REA, Real et al. 2019) as an ask/tell strategy."""

from __future__ import annotations

from typing import Sequence

from ray_nasrank._checks import check_int
from ray_nasrank._state import state_class
from ray_nasrank.spaces import Arch, SearchSpace

from ._base import Strategy


@state_class
class REAStrategy(Strategy):
    """Aging evolution: tournament selection over the last ``population`` results, mutation via
    ``space.mutate``, the oldest member dies.

    Until ``population`` results (told or pending) exist it proposes random archs. A mutation
    that lands on a seen iso class (or outside ``candidates``) is retried up to
    ``mutation_tries`` times, mutating further from the child, before a random unseen arch is
    used instead.

    Args:
        space: the search space.
        seed: seed of every random choice (``None``: not reproducible).
        mode: ``max`` when higher told values are better, ``min`` when lower are.
        candidates: a finite pool to propose from (e.g. a table's archs); ``None``: the whole space.
        max_fidelity: the full fidelity of ``tell`` (see :class:`~ray_nasrank.search.Strategy`); this
            strategy learns from full-fidelity results only.
        population: how many recent results the tournament draws from.
        sample_size: tournament size (at most ``population``).
        mutation_tries: mutations tried before falling back to a random unseen arch.

    Raises:
        ValueError: a count below 1, or ``sample_size`` above ``population``.

    >>> from ray_nasrank.spaces import NB201Space
    >>> s = REAStrategy(NB201Space(), seed=0, population=4, sample_size=2)
    >>> for _ in range(6):
    ...     [a] = s.ask()
    ...     s.tell(a, float(a.count("nor_conv_3x3")))
    >>> len(s.history)
    6
    """

    name = "rea"

    def __init__(self, space: SearchSpace, *, seed: int | None = None, mode: str = "max",
                 candidates: Sequence[Arch] | None = None, population: int = 20, sample_size: int = 5,
                 mutation_tries: int = 50, max_fidelity: float | None = None) -> None:
        super().__init__(space, seed=seed, mode=mode, candidates=candidates, max_fidelity=max_fidelity)
        self.population = check_int("population", population, low=1)
        self.sample_size = check_int("sample_size", sample_size, low=1)
        if self.sample_size > self.population:
            raise ValueError(f"sample_size {sample_size} exceeds population {population}")
        self.mutation_tries = check_int("mutation_tries", mutation_tries, low=1)
        self._members: list[tuple[Arch, float]] = []  # oldest first
        self._pool_set = None if self._candidates is None else set(self._candidates)

    def _observe(self, arch: Arch, score: float | None, source: str) -> None:
        if score is None:
            return
        self._members.append((arch, score))
        if len(self._members) > self.population:
            self._members.pop(0)

    def _propose(self, n: int) -> list[Arch]:
        out: list[Arch] = []
        keys = set()
        n_random = max(0, min(n, self.population - len(self._members) - len(self._pending)))
        if not self._members:
            n_random = n
        out += self._random_unseen(n_random)
        keys.update(self.space.iso_key(a) for a in out)
        for _ in range(n - len(out)):
            child = self._mutant(keys)
            if child is None:
                break
            keys.add(self.space.iso_key(child))
            out.append(child)
        return out

    def _mutant(self, taken: set) -> Arch | None:
        idx = self._rng.choice(len(self._members), size=min(self.sample_size, len(self._members)), replace=False)
        parent = max((self._members[int(i)] for i in idx), key=lambda m: m[1])[0]
        child = parent
        for _ in range(self.mutation_tries):
            child = self.space.mutate(child, self._rng)
            key = self.space.iso_key(child)
            if key in self._seen or key in taken:
                continue
            if self._pool_set is not None and child not in self._pool_set:
                child = parent  # left the pool: start again from the parent
                continue
            return child
        fallback = self._random_unseen(1, exclude=taken)
        return fallback[0] if fallback else None
