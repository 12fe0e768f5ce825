"""Several objectives and constraints: told values, Pareto fronts and hypervolume (no Ray, no Optuna).

Conventions (Optuna's): a strategy optimises one or more objectives, each with its own mode
(``max``/``min``); constraint values are feasible when ``<= 0``. Internally every objective is
turned into a *score* where higher is better, so fronts and hypervolumes below are all written
for maximisation, with a reference point below every point that counts.

>>> import numpy as np
>>> front = np.array([[3.0, 1.0], [1.0, 3.0], [2.0, 2.0], [1.0, 1.0]])
>>> non_dominated(front).tolist()
[True, True, True, False]
>>> hypervolume(front, ref=[0.0, 0.0])
6.0
>>> hypervolume_improvement(np.array([[2.5, 2.5], [0.5, 0.5]]), front, ref=[0.0, 0.0]).tolist()
[1.25, 0.0]
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Mapping, Sequence, Union

import numpy as np

from ray_nasrank._checks import check_mode
from ray_nasrank._state import state_class

#: what a quantity known without training may be: a name the space computes by itself
#: (``"params"``, ``"flops"`` on NB201), values aligned to the strategy's ``candidates``, or a
#: callable ``archs -> values`` (one value per arch)
Known = Union[str, np.ndarray, Sequence[float], Callable[[list], Any]]


def check_modes(mode: Any) -> tuple[str, ...]:
    """One mode per objective: ``"max"``/``"min"`` or a non-empty sequence of them.

    Args:
        mode: a mode, or a list of modes (several objectives).

    Returns:
        The modes as a tuple.

    Raises:
        ConfigError: an empty list or a value other than ``max``/``min``.

    >>> check_modes("max"), check_modes(["max", "min"])
    (('max',), ('max', 'min'))
    """
    from ray_nasrank._checks import ConfigError

    if isinstance(mode, str):
        return (check_mode(mode),)
    if not isinstance(mode, (list, tuple)) or not mode:
        raise ConfigError(f"mode must be 'max', 'min' or a non-empty list of them (one per objective), got {mode!r}")
    return tuple(check_mode(m) for m in mode)


def _number(value: Any, what: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{what} must be a real number, got {value!r}")
    return float(value)


def as_values(value: Any, n: int) -> tuple[float, ...] | None:
    """A told multi-objective value as ``n`` finite floats, or ``None`` for a failed trial.

    A trial fails as a whole when any objective is ``None``, NaN or infinite (Optuna fails it too).

    Args:
        value: a sequence of ``n`` numbers (or ``None``).
        n: the number of objectives.

    Returns:
        The values, or ``None``.

    Raises:
        TypeError: not a sequence, or an entry that is not a real number.
        ValueError: a sequence of another length.

    >>> as_values([91.5, 3.0], 2), as_values([91.5, float("nan")], 2)
    ((91.5, 3.0), None)
    """
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
        raise TypeError(f"value must be a sequence of {n} numbers (one per objective), got {value!r}")
    vals = list(value)
    if len(vals) != n:
        raise ValueError(f"value has {len(vals)} entries but the strategy has {n} objectives: {value!r}")
    out = []
    for i, v in enumerate(vals):
        if v is None:
            return None
        f = _number(v, f"objective {i} of value {value!r}")
        if not math.isfinite(f):
            return None
        out.append(f)
    return tuple(out)


def as_constraints(constraints: Any, n: int | None) -> tuple[float, ...] | None:
    """Told constraint values as floats (``<= 0`` feasible), checked against their known count.

    Args:
        constraints: ``None`` (none told for this trial) or a sequence of numbers.
        n: how many constraint values every trial tells (``None``: not known yet).

    Returns:
        The values, or ``None``.

    Raises:
        TypeError: not a sequence, or an entry that is not a real number.
        ValueError: NaN, or a length other than ``n``.

    >>> as_constraints([0.5, -1], 2)
    (0.5, -1.0)
    """
    if constraints is None:
        return None
    if isinstance(constraints, (str, bytes)) or not isinstance(constraints, (Sequence, np.ndarray)):
        raise TypeError(f"constraints must be a sequence of numbers (<= 0 feasible), got {constraints!r}")
    vals = [_number(c, f"constraint {i} of {list(constraints)!r}") for i, c in enumerate(constraints)]
    if any(math.isnan(v) for v in vals):
        raise ValueError(f"constraints must not be NaN, got {list(constraints)!r}")
    if n is not None and len(vals) != n:
        raise ValueError(f"constraints has {len(vals)} values but earlier trials told {n}: {list(constraints)!r}")
    return tuple(vals)


def non_dominated(points: np.ndarray) -> np.ndarray:
    """Which rows are not dominated by another row (maximisation; equal rows all count).

    Args:
        points: ``(n, d)`` scores, higher is better.

    Returns:
        A boolean mask of the first Pareto front.
    """
    p = np.asarray(points, dtype=np.float64)
    n = len(p)
    if n == 0:
        return np.zeros(0, dtype=bool)
    if p.shape[1] == 2:
        # sweep: sorted by the first score descending (then the second), a row is dominated
        # exactly when an earlier row has a second score at least as high and is not equal to it
        order = np.lexsort((-p[:, 1], -p[:, 0]))
        mask = np.zeros(n, dtype=bool)
        best_y, best_x = -np.inf, None
        for i in order:
            x, y = p[i]
            if y > best_y or (y == best_y and x == best_x):
                mask[i] = True
                if y > best_y:
                    best_y, best_x = y, x
        return mask
    mask = np.ones(n, dtype=bool)
    for start in range(0, n, 512):  # chunks keep the pairwise table small
        block = p[start:start + 512]
        ge = np.all(p[None, :, :] >= block[:, None, :], axis=2)
        gt = np.any(p[None, :, :] > block[:, None, :], axis=2)
        mask[start:start + 512] = ~np.any(ge & gt, axis=1)
    return mask


def pareto_ranks(points: np.ndarray) -> np.ndarray:
    """Non-dominated sorting: 0 for the first front, 1 for the front once it is removed, ...

    Args:
        points: one row per point, one column per objective, higher is better.

    Returns:
        Each point's front number (0 = non-dominated).

    >>> pareto_ranks(np.array([[1.0, 1.0], [2.0, 2.0], [0.0, 3.0]])).tolist()
    [1, 0, 0]
    """
    p = np.asarray(points, dtype=np.float64)
    ranks = np.full(len(p), -1, dtype=np.int64)
    left = np.arange(len(p))
    r = 0
    while left.size:
        nd = non_dominated(p[left])
        ranks[left[nd]] = r
        left = left[~nd]
        r += 1
    return ranks


def hypervolume(points: np.ndarray, ref: Sequence[float]) -> float:
    """The volume dominated by ``points`` and above ``ref`` (maximisation).

    Exact: a sweep in two dimensions, slicing along the last score above that (fine for the
    fronts of a search, tens to hundreds of points).

    Args:
        points: ``(n, d)`` scores, higher is better.
        ref: the reference point, ``d`` values; points not above it in every score add nothing.

    Returns:
        The hypervolume.
    """
    ref = np.asarray(ref, dtype=np.float64)
    p = np.asarray(points, dtype=np.float64).reshape(-1, ref.size)
    p = p[np.all(p > ref, axis=1)]
    if len(p) == 0:
        return 0.0
    if ref.size == 1:
        return float(p.max() - ref[0])
    p = p[non_dominated(p)]
    if ref.size == 2:
        order = np.argsort(-p[:, 0], kind="stable")  # first score down, so the second goes up
        x, y = p[order, 0], p[order, 1]
        prev = np.concatenate([[ref[1]], y[:-1]])
        return float(np.sum((x - ref[0]) * np.maximum(y - prev, 0.0)))
    order = np.argsort(-p[:, -1], kind="stable")
    hv = 0.0
    for i in range(len(order)):
        top = p[order[i], -1]
        bottom = p[order[i + 1], -1] if i + 1 < len(order) else ref[-1]
        if top > bottom:
            hv += (top - bottom) * hypervolume(p[order[: i + 1], :-1], ref[:-1])
    return hv


def hypervolume_improvement(cands: np.ndarray, front: np.ndarray, ref: Sequence[float]) -> np.ndarray:
    """How much each candidate alone would add to the hypervolume of ``front``.

    Vectorised over the candidates in one and two dimensions; above that each candidate not
    dominated by ``front`` is computed exactly (a dominated one adds nothing).

    Args:
        cands: ``(n, d)`` candidate scores (higher is better).
        front: ``(m, d)`` scores already obtained.
        ref: the reference point.

    Returns:
        ``n`` improvements, ``>= 0``.
    """
    ref = np.asarray(ref, dtype=np.float64)
    c = np.maximum(np.asarray(cands, dtype=np.float64).reshape(-1, ref.size), ref)
    f = np.asarray(front, dtype=np.float64).reshape(-1, ref.size)
    f = f[np.all(f > ref, axis=1)]
    if len(f):
        f = f[non_dominated(f)]
    if ref.size == 1:
        best = f[:, 0].max() if len(f) else ref[0]
        return np.maximum(c[:, 0] - best, 0.0)
    if ref.size == 2:
        box = (c[:, 0] - ref[0]) * (c[:, 1] - ref[1])
        if not len(f):
            return box
        order = np.argsort(-f[:, 0], kind="stable")
        fx, fy = f[order, 0], f[order, 1]
        cx = np.minimum(c[:, [0]], fx[None, :]) - ref[0]     # non-increasing along the front
        cy = np.minimum(c[:, [1]], fy[None, :]) - ref[1]     # non-decreasing along the front
        prev = np.concatenate([np.zeros((len(c), 1)), cy[:, :-1]], axis=1)
        covered = np.sum(cx * (cy - prev), axis=1)
        return np.maximum(box - covered, 0.0)
    out = np.zeros(len(c))
    if not len(f):
        return np.prod(c - ref, axis=1)
    dominated = np.zeros(len(c), dtype=bool)
    for row in f:
        dominated |= np.all(row >= c, axis=1)
    base = hypervolume(f, ref)
    for i in np.flatnonzero(~dominated):
        out[i] = max(hypervolume(np.vstack([f, c[i]]), ref) - base, 0.0)
    return out


@state_class
class LinearConstraint:
    """A constraint's value predicted from a config's features: ridge regression with its
    leave-one-out error as the spread, so ``probability_feasible`` is honest with few labels.

    Why not the ranker: a learning-to-rank loss orders the best configs and says little about
    where a boundary lies, while a constraint (latency, memory, size) is mostly additive in a
    config's choices, which a linear model of the one-hot features recovers from a few labels.

    The spread grows away from the told configs (a ridge regression's predictive variance):
    fitted on costly configs alone, it says little about cheap ones, so their probability of
    being feasible stays open instead of following the line wherever it points.

    Args:
        weights: one weight per feature column.
        intercept: the prediction at all-zero features.
        sd: the spread of a prediction at the told configs (leave-one-out error of the fit).
        center, scale: the standardisation of the features the fit used.
        cov: the fit's ``(Z'Z + alpha I)^-1`` on standardised features, which widens the spread
            of a config far from the told ones (``None``: the same spread everywhere).
        n: how many values were told.

    >>> import numpy as np
    >>> x = np.eye(4)[[0, 1, 2, 3, 0, 1]]
    >>> m = LinearConstraint.fit(x, np.array([1.0, -1.0, 2.0, -2.0, 1.1, -0.9]))
    >>> (m.probability_feasible(np.eye(4)) > 0.5).tolist()
    [False, True, False, True]
    """

    def __init__(self, weights: np.ndarray, intercept: float, sd: float, center: np.ndarray | None = None,
                 scale: np.ndarray | None = None, cov: np.ndarray | None = None, n: int = 1) -> None:
        self.weights, self.intercept, self.sd = weights, float(intercept), float(sd)
        self.center, self.scale, self.cov, self.n = center, scale, cov, int(n)

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, alpha: float = 1.0) -> "LinearConstraint":
        """Ridge on standardised features (``alpha`` relative to one label's weight)."""
        return cls._fit(x, y, alpha)[0]

    @classmethod
    def fit_nested(cls, x: np.ndarray, y: np.ndarray, sizes: Sequence[int], alpha: float = 1.0) -> "LinearConstraint":
        """The fit on the leading ``s`` columns of ``x``, for the ``s`` of ``sizes`` whose
        leave-one-out error is lowest (the fewest columns on a tie).

        Why: a few told values cannot pin down a weight per choice, but a cost known without
        training (parameters, FLOPs) put first is one direction a handful of values can fit; more
        columns win once the values say they predict better.

        >>> import numpy as np
        >>> cost = np.arange(8.0)[:, None]
        >>> noise = np.random.default_rng(0).normal(size=(8, 6))
        >>> m = LinearConstraint.fit_nested(np.hstack([cost, noise]), 2 * cost[:, 0] - 7, sizes=[1, 7])
        >>> m.weights.size
        1
        """
        best, best_err = None, np.inf
        for s in sorted({int(s) for s in sizes if 0 < int(s) <= np.shape(x)[1]}):
            model, err = cls._fit(np.asarray(x)[:, :s], y, alpha)
            if err < best_err * (1 - 1e-9):
                best, best_err = model, err
        return best if best is not None else cls.fit(x, y, alpha)

    @classmethod
    def _fit(cls, x: np.ndarray, y: np.ndarray, alpha: float) -> tuple["LinearConstraint", float]:
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        mx, my = x.mean(axis=0), y.mean()
        sx = x.std(axis=0)
        sx = np.where(sx > 0, sx, 1.0)
        z = (x - mx) / sx
        inv = np.linalg.inv(z.T @ z + alpha * np.eye(x.shape[1]))
        wz = inv @ z.T @ (y - my)
        hat = np.einsum("ij,jk,ik->i", z, inv, z) + 1.0 / len(y)
        loo = (y - my - z @ wz) / np.maximum(1.0 - hat, 1e-6)
        err = float(np.sqrt(np.mean(loo ** 2)))
        sd = max(err, 0.05 * float(np.std(y)), 1e-9)
        w = wz / sx
        return cls(w, my - mx @ w, sd, center=mx, scale=sx, cov=inv, n=len(y)), err

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The predicted value of each row (a model fitted on leading columns reads those)."""
        return np.asarray(x, dtype=np.float64)[:, : self.weights.size] @ self.weights + self.intercept

    def spread(self, x: np.ndarray) -> np.ndarray:
        """The spread of each row's prediction: ``sd * sqrt(1 + h)``, ``h`` its leverage
        (``z' cov z + 1/n``), larger far from the told configs."""
        x = np.asarray(x, dtype=np.float64)[:, : self.weights.size]
        if self.cov is None:
            return np.full(len(x), self.sd)
        z = (x - self.center) / self.scale
        h = np.einsum("ij,jk,ik->i", z, self.cov, z) + 1.0 / self.n
        return self.sd * np.sqrt(1.0 + h)

    def probability_feasible(self, x: np.ndarray) -> np.ndarray:
        """The probability that the value is ``<= 0`` under a normal error of :meth:`spread`."""
        from scipy.special import ndtr

        return ndtr(-self.predict(x) / self.spread(x))

    def log_probability_feasible(self, x: np.ndarray) -> np.ndarray:
        """The log of :meth:`probability_feasible`, finite where the probability underflows."""
        from scipy.special import log_ndtr

        return log_ndtr(-self.predict(x) / self.spread(x))


def known_values(space: Any, spec: Known, archs: Sequence, pool_index: Mapping | None = None,
                 what: str = "known quantity") -> np.ndarray:
    """Values of a quantity known without training, for ``archs``.

    Args:
        space: the search space (resolves names through ``space.intrinsic_names``).
        spec: a name the space computes itself (``"params"``, ``"flops"``), an array aligned to
            the candidates of ``pool_index``, or a callable ``archs -> values``.
        archs: the archs to evaluate.
        pool_index: arch -> row of the candidates an array refers to.
        what: how errors name the quantity.

    Returns:
        One float per arch.

    Raises:
        ValueError: an unknown name (the error lists the space's names), an array without a
            pool or for an arch outside it, a value that is NaN, or a callable returning the
            wrong number of values.
    """
    archs = list(archs)
    if spec is None:
        raise ValueError(f"{what} was a function, which a saved state does not hold; give it again with "
                         "strategy.attach_known(...)")
    if isinstance(spec, str):
        names = tuple(getattr(space, "intrinsic_names", ()))
        if spec not in names:
            raise ValueError(f"{what} {spec!r} is not computed by {space!r}; it offers {list(names)} "
                             "(or give values aligned to the candidates, or a callable archs -> values)")
        from ._weak import intrinsic_weak

        vals = np.asarray(intrinsic_weak(space, archs, (spec,))[spec], dtype=np.float64)
    elif callable(spec):
        vals = np.asarray(spec(archs), dtype=np.float64).reshape(-1)
        if vals.size != len(archs):
            raise ValueError(f"{what}: the callable returned {vals.size} values for {len(archs)} archs")
    else:
        arr = np.asarray(spec, dtype=np.float64).reshape(-1)
        if pool_index is None:
            raise ValueError(f"{what} given as values needs a finite candidates pool they are aligned to")
        if arr.size != len(pool_index):
            raise ValueError(f"{what} has {arr.size} values for {len(pool_index)} candidates")
        rows = []
        for a in archs:
            j = pool_index.get(a)
            if j is None:
                raise ValueError(f"{what} is given for the candidates only, not for {a!r}")
            rows.append(j)
        vals = arr[np.asarray(rows, dtype=np.int64)]
    if np.isnan(vals).any():
        raise ValueError(f"{what} is NaN for {np.isnan(vals).sum()} of {len(vals)} archs")
    return vals


__all__ = ["Known", "check_modes", "as_values", "as_constraints", "non_dominated", "pareto_ranks",
           "hypervolume", "hypervolume_improvement", "known_values", "LinearConstraint"]
