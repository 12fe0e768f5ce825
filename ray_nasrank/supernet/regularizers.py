"""Extra supernet losses: landmark regularization and RD-NAS ranking distillation.

Both return a loss term to add to the single-path cross-entropy at each step, weighted by a
schedule over (fractional) epochs:

* :class:`LandmarkRegularizer` (Yu et al., CVPR 2021): landmark cells with known stand-alone
  accuracy; for a pair (better, worse) the supernet's loss on the same batch should order them,
  so the penalty is ``coef(t) * relu(L_better - L_worse)``. ``coef`` is 0 before ``start``, then
  rises along a cosine over ``warmup`` epochs to ``coef``.
* :class:`RankDistiller` (RD-NAS, ICASSP 2023): a zero-cost teacher scores cells; for a pair from
  the group-distance sampler the student score ``-loss`` should follow the teacher's order:
  a margin ranking loss, weighted ``weight * min(1, t / ramp)``.

>>> reg = LandmarkRegularizer([(("nor_conv_3x3",) * 6, 90.0), (("none",) * 6, 10.0)], coef=10,
...                           start=1, warmup=2)
>>> reg.coefficient(0.5), round(reg.coefficient(2.0), 6), reg.coefficient(3.0)
(0.0, 5.0, 10.0)
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ray_nasrank.nn import Supernet
from ray_nasrank.spaces import NB201Space, SearchSpace

from .sampling import DistancePairSampler, GroupDistancePairSampler

__all__ = ["LandmarkRegularizer", "RankDistiller", "ParamCountTeacher", "ProxyTeacher", "cosine_ramp"]

_SPACE = NB201Space()
Model = Callable[[torch.Tensor, tuple], torch.Tensor]


def cosine_ramp(t: float, start: float, warmup: float, peak: float) -> float:
    """0 before ``start``, ``peak`` after ``start + warmup``, a half cosine in between.

    Args:
        t: the time (epochs, fractional).
        start: when the ramp starts.
        warmup: how long it takes to reach ``peak`` (``<= 0``: at once).
        peak: the value after the ramp.

    Returns:
        The value at ``t``.
    """
    if t < start:
        return 0.0
    if warmup <= 0 or t >= start + warmup:
        return float(peak)
    return float(peak) * 0.5 * (1.0 - math.cos(math.pi * (t - start) / warmup))


class LandmarkRegularizer:
    """Hinge on supernet losses of landmark pairs in the wrong order (see module docstring).

    ``landmarks``: ``(arch, stand-alone accuracy)`` pairs (at least two distinct accuracies);
    archs of ``space`` (default NB201; a :class:`~ray_nasrank.nn.ChoiceSupernet`'s ``space`` for a
    user supernet).

    Args:
        landmarks: ``(arch, stand-alone accuracy)`` pairs.
        coef: the hinge's weight after the warm-up.
        start: epoch the hinge starts at.
        warmup: epochs of the cosine ramp up to ``coef``.
        pairs_per_step: landmark pairs per training step.
        rng: a generator or seed for the pair draws.
        space: the space of the landmark archs (``None``: NB201).

    Raises:
        ValueError: fewer than 2 landmarks, a non-finite accuracy, all accuracies equal, a
            negative or non-finite ``coef``/``start``/``warmup``, ``pairs_per_step < 1``, or an
            invalid arch.
    """

    def __init__(self, landmarks: Sequence[tuple[object, float]], coef: float = 10.0, start: float = 0.0,
                 warmup: float = 1.0, pairs_per_step: int = 1, rng: np.random.Generator | int | None = None,
                 space: SearchSpace | None = None) -> None:
        self.archs = [(space or _SPACE).validate(a) for a, _ in landmarks]
        self.accs = np.asarray([float(acc) for _, acc in landmarks])
        if len(self.archs) < 2:
            raise ValueError(f"landmark regularization needs at least 2 landmarks, got {len(self.archs)}")
        if not np.all(np.isfinite(self.accs)):
            raise ValueError("landmark accuracies must be finite")
        if np.ptp(self.accs) == 0:
            raise ValueError("all landmark accuracies are equal: no pair has an order")
        for name, v in (("coef", coef), ("start", start), ("warmup", warmup)):
            if not np.isfinite(v) or v < 0:
                raise ValueError(f"{name} must be a non-negative number, got {v!r}")
        if pairs_per_step < 1:
            raise ValueError(f"pairs_per_step must be >= 1, got {pairs_per_step!r}")
        self.coef, self.start, self.warmup = float(coef), float(start), float(warmup)
        self.pairs_per_step = int(pairs_per_step)
        self.rng = np.random.default_rng(rng)

    def coefficient(self, epoch: float) -> float:
        return cosine_ramp(epoch, self.start, self.warmup, self.coef)

    def sample_pair(self) -> tuple[int, int]:
        """Indices ``(better, worse)`` of two landmarks with different accuracies."""
        while True:
            i, j = self.rng.choice(len(self.archs), size=2, replace=False)
            if self.accs[i] != self.accs[j]:
                return (int(i), int(j)) if self.accs[i] > self.accs[j] else (int(j), int(i))

    def loss(self, model: Model, x: torch.Tensor, y: torch.Tensor, epoch: float) -> torch.Tensor | None:
        """The weighted hinge on one batch, or ``None`` while the coefficient is 0."""
        c = self.coefficient(epoch)
        if c == 0.0:
            return None
        total = x.new_zeros(())
        for _ in range(self.pairs_per_step):
            i, j = self.sample_pair()
            better = F.cross_entropy(model(x, self.archs[i]), y)
            worse = F.cross_entropy(model(x, self.archs[j]), y)
            total = total + F.relu(better - worse)
        return c * total / self.pairs_per_step


class ParamCountTeacher:
    """Zero-cost teacher: the parameter count of an arch's stand-alone subnet (exact, no forward),
    as the supernet counts it (:meth:`~ray_nasrank.nn.Supernet.subnet_parameters`; NB201's sums
    its shared skeleton and the chosen op of every edge).

    Args:
        supernet: the supernet whose subnets are counted.

    Raises:
        TypeError: ``supernet`` is not a :class:`~ray_nasrank.nn.Supernet`.
    """

    def __init__(self, supernet: Supernet) -> None:
        if not isinstance(supernet, Supernet):
            raise TypeError(f"ParamCountTeacher counts the subnets of a ray_nasrank.nn.Supernet, "
                            f"got {type(supernet).__name__}")
        self.supernet = supernet

    def __call__(self, arch) -> float:
        return float(self.supernet.subnet_parameters(arch))


class ProxyTeacher:
    """Zero-cost teacher for any supernet: the proxy ``name`` of each arch's stand-alone model.

    ``proxies`` is a :class:`~ray_nasrank.proxies.ModelProxies` whose ``model_fn`` builds the
    model of a config (e.g. ``ChoiceSupernet.model_fn(reset=True)``: the subnet freshly
    initialised); archs of ``space`` go through ``space.to_config``. Values are cached by the
    proxies; an arch whose proxy fails is an error naming it (a teacher must order every pair).

    Args:
        proxies: a :class:`~ray_nasrank.proxies.ModelProxies`.
        name: the proxy that scores archs (one of ``proxies.names``).
        space: the space of the archs the teacher is asked about.

    Raises:
        ValueError: ``name`` is not among the proxies' names.
    """

    def __init__(self, proxies, name: str, space: SearchSpace) -> None:
        if name not in proxies.names:
            raise ValueError(f"teacher proxy {name!r} is not among the proxies' names {list(proxies.names)}")
        self.proxies, self.name, self.space = proxies, name, space

    def __call__(self, arch) -> float:
        config = self.space.to_config(self.space.validate(arch))
        value = float(self.proxies([config])[self.name][0])
        if not np.isfinite(value):
            raise ValueError(f"teacher proxy {self.name!r} has no value for config {config!r}: "
                             f"{[str(f) for f in self.proxies.failures if f.config == config]}")
        return value


class RankDistiller:
    """Margin ranking loss between subnet pairs, ordered by a zero-cost teacher.

    ``teacher(arch) -> float`` (higher is better; e.g. :class:`ProxyTeacher`); pairs come from
    ``sampler`` (default: the RD-NAS group-distance sampler with ``mu=6.7`` on NB201; for another
    space pass a :class:`~ray_nasrank.supernet.DistancePairSampler`). Both subnets of the pair
    also get their cross-entropy, as in RD-NAS where the pair replaces the single path of the step.

    Args:
        teacher: ``arch -> score``, higher is better.
        weight: the ranking loss's weight after the ramp.
        ramp: epochs of the linear ramp up to ``weight`` (``<= 0``: at once).
        margin: the margin of the ranking loss.
        sampler: draws the pairs (``None``: :class:`GroupDistancePairSampler` on NB201).
        rng: seed of the default sampler.

    Raises:
        TypeError: ``teacher`` is not callable.
        ValueError: a negative or non-finite ``weight``, ``ramp`` or ``margin``.
    """

    def __init__(self, teacher: Callable[[tuple], float], weight: float = 2.0, ramp: float = 1.0,
                 margin: float = 0.1, sampler: GroupDistancePairSampler | DistancePairSampler | None = None,
                 rng: np.random.Generator | int | None = None) -> None:
        if not callable(teacher):
            raise TypeError(f"teacher must be callable arch -> score, got {type(teacher).__name__}")
        for name, v in (("weight", weight), ("ramp", ramp), ("margin", margin)):
            if not np.isfinite(v) or v < 0:
                raise ValueError(f"{name} must be a non-negative number, got {v!r}")
        self.teacher = teacher
        self.weight, self.ramp, self.margin = float(weight), float(ramp), float(margin)
        self.sampler = sampler or GroupDistancePairSampler(rng=rng)
        self._cache: dict[tuple, float] = {}

    def score(self, arch: tuple) -> float:
        if arch not in self._cache:
            s = float(self.teacher(arch))
            if not np.isfinite(s):
                where = _SPACE.to_string(arch) if _SPACE.contains(arch) else repr(arch)
                raise ValueError(f"teacher gave a non-finite score {s!r} for {where}")
            self._cache[arch] = s
        return self._cache[arch]

    def coefficient(self, epoch: float) -> float:
        if self.ramp <= 0:
            return self.weight
        return self.weight * min(1.0, epoch / self.ramp)

    def loss(self, model: Model, x: torch.Tensor, y: torch.Tensor, epoch: float) -> torch.Tensor:
        """Cross-entropy of both subnets of a sampled pair plus the weighted ranking loss."""
        a, b = self.sampler.sample()
        la = F.cross_entropy(model(x, a), y)
        lb = F.cross_entropy(model(x, b), y)
        ta, tb = self.score(a), self.score(b)
        ce = 0.5 * (la + lb)
        if ta == tb:
            return ce
        sign = torch.tensor(1.0 if ta > tb else -1.0, device=x.device)
        # student score = -loss: the teacher's better cell should have the lower loss
        rank = F.margin_ranking_loss(-la.unsqueeze(0), -lb.unsqueeze(0), sign.unsqueeze(0), margin=self.margin)
        return ce + self.coefficient(epoch) * rank
