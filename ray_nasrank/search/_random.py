"""Random search: uniformly random unseen archs (one per isomorphism class at most)."""

from __future__ import annotations

from ray_nasrank._state import state_class
from ray_nasrank.spaces import Arch

from ._base import Strategy


@state_class
class RandomStrategy(Strategy):
    """Uniform random search without repeats.

    Walks a seeded permutation of the pool (or of the space, when it has at most 2**20 archs)
    and skips archs isomorphic to one already seen, so a seeded run is reproducible and a
    resumed run continues the same walk.

    Args:
        space: the search space.
        seed: seed of every random choice (``None``: not reproducible).
        mode: ``max`` when higher told values are better, ``min`` when lower are.
        candidates: a finite pool to propose from (e.g. a table's archs); ``None``: the whole space.
        max_fidelity: the full fidelity of ``tell`` (see :class:`~ray_nasrank.search.Strategy`); this
            strategy learns from full-fidelity results only.

    >>> from ray_nasrank.spaces import NB201Space
    >>> s = RandomStrategy(NB201Space(), seed=1)
    >>> a, b = s.ask(2)
    >>> NB201Space().iso_key(a) != NB201Space().iso_key(b)
    True
    """

    name = "random"
    multi_objective = True

    def _propose(self, n: int) -> list[Arch]:
        return self._random_unseen(n)
