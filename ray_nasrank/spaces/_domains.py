"""Domains of one decision: categorical, integer, float and normal, plus the ``INACTIVE`` sentinel.

A domain knows how to sample a value, check one, map a numeric value to ``[0, 1]`` in its natural
transform (log where log, the normal CDF for a normal) and back, take a local step, and print
itself the way Ray Tune spells it, so messages read ``loguniform(0.0001, 0.1)``.

>>> Float(1e-4, 0.1, log=True)
loguniform(0.0001, 0.1)
>>> Integer(1, 4)
randint(1, 5)
>>> Integer(0, 10, step=2)
qrandint(0, 10, 2)
>>> Categorical(("relu", "gelu"))
choice(['relu', 'gelu'])
"""

from __future__ import annotations

import abc
import math
import numbers
from dataclasses import dataclass
from typing import Any, Hashable

import numpy as np
from scipy.special import ndtr, ndtri

from ray_nasrank._state import state_class


class _Inactive:
    """The value an inactive (conditional) decision holds: one instance, hashable, picklable."""

    _instance: "_Inactive | None" = None

    def __new__(cls) -> "_Inactive":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "inactive"

    def __reduce__(self) -> str:
        # pickled by reference, so unpickling (and deepcopy) gives back the one instance
        return "INACTIVE"

    def __hash__(self) -> int:
        return 0x1AC7

    def __eq__(self, other: object) -> bool:
        return other is self

    def __lt__(self, other: object) -> bool:  # sorts before any value (stable table order)
        return other is not self

    def __gt__(self, other: object) -> bool:
        return False


#: the value of a decision whose condition is not met
INACTIVE = _Inactive()


def _hashable(value: Any) -> Hashable:
    try:
        hash(value)
        return value
    except TypeError:
        return repr(value)


def _is_real(value: Any) -> bool:
    return isinstance(value, (numbers.Real, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _fmt(x: float) -> str:
    return repr(int(x)) if isinstance(x, (int, np.integer)) else repr(float(x))


class Domain(abc.ABC):
    """Base of the four domains; ``size`` is ``math.inf`` for a continuous one."""

    numeric: bool = True

    @property
    @abc.abstractmethod
    def size(self) -> int | float:
        """How many values the domain holds (``math.inf`` when continuous)."""

    @abc.abstractmethod
    def sample(self, rng: np.random.Generator) -> Any:
        """One value drawn from the domain's prior."""

    @abc.abstractmethod
    def check(self, value: Any) -> Any:
        """``value`` in canonical form (int/float/choice), or ``ValueError`` saying why not."""

    @abc.abstractmethod
    def default(self) -> Any:
        """A fixed valid value (used when a move activates a decision and no rng draw is wanted)."""

    def to_unit(self, value: Any) -> float:
        """The value in ``[0, 1]``, linear in the natural transform (numeric domains)."""
        raise TypeError(f"{self} has no numeric transform: it is categorical")

    def from_unit(self, u: float) -> Any:
        """Inverse of :meth:`to_unit` (numeric domains)."""
        raise TypeError(f"{self} has no numeric transform: it is categorical")

    def value_at(self, i: int) -> Any:
        """The ``i``-th value of a finite domain, in increasing order."""
        raise TypeError(f"{self} is continuous: its values cannot be indexed")

    def index(self, value: Any) -> int:
        """Inverse of :meth:`value_at` (finite domains)."""
        raise TypeError(f"{self} is continuous: its values cannot be indexed")

    def move(self, value: Any, rng: np.random.Generator, scale: float = 0.15) -> Any:
        """A nearby different value: a Gaussian step of ``scale`` in the unit transform, kept in
        bounds and on the grid; at least one grid step for a finite domain."""
        u = self.to_unit(value)
        for _ in range(8):
            new = self.check_snapped(self.from_unit(float(np.clip(u + rng.normal(0.0, scale), 0.0, 1.0))))
            if new != value:
                return new
        if self.size != math.inf and self.size > 1:
            i = self.index(value)
            j = i + (1 if i == 0 else -1 if i == self.size - 1 else int(rng.choice((-1, 1))))
            return self.value_at(j)
        return value

    def check_snapped(self, value: Any) -> Any:
        return self.check(value)

    @abc.abstractmethod
    def to_optuna(self) -> Any:
        """The matching ``optuna.distributions`` object (imports Optuna)."""

    @abc.abstractmethod
    def to_tune(self) -> Any:
        """The matching Tune domain (imports Ray)."""


@state_class
@dataclass(frozen=True)
class Categorical(Domain):
    """Unordered choices (any hashable or repr-able values).

    Args:
        choices: the values, at least one, no duplicates.

    Raises:
        ValueError: no choice, or duplicate choices.
    """

    choices: tuple

    numeric = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "choices", tuple(self.choices))
        if len(self.choices) == 0:
            raise ValueError("a categorical domain needs at least one choice")
        if len(set(map(_hashable, self.choices))) != len(self.choices):
            raise ValueError(f"duplicate choices: {self.choices!r}")

    @property
    def size(self) -> int:
        return len(self.choices)

    def sample(self, rng: np.random.Generator) -> Any:
        return self.choices[int(rng.integers(len(self.choices)))]

    def check(self, value: Any) -> Any:
        if value not in self.choices:
            raise ValueError(f"unknown value {value!r}; choices are {list(self.choices)}")
        return value

    def default(self) -> Any:
        return self.choices[0]

    def value_at(self, i: int) -> Any:
        return self.choices[i]

    def index(self, value: Any) -> int:
        return self.choices.index(value)

    def move(self, value: Any, rng: np.random.Generator, scale: float = 0.15) -> Any:
        others = [c for c in self.choices if c != value]
        return others[int(rng.integers(len(others)))] if others else value

    def __repr__(self) -> str:
        return f"choice({list(self.choices)!r})"

    def to_optuna(self) -> Any:
        from optuna.distributions import CategoricalDistribution

        return CategoricalDistribution(list(self.choices))

    def to_tune(self) -> Any:
        from ray import tune

        return tune.choice(list(self.choices))


@state_class
@dataclass(frozen=True)
class Integer(Domain):
    """Integers ``low <= v <= high`` (both inclusive, as Optuna's ``suggest_int``) on the grid
    ``low + k * step``; ``log`` samples and moves on the log scale.

    Args:
        low: the smallest value.
        high: the largest value (rounded down onto the grid).
        step: the grid step (>= 1).
        log: sample and move on the log scale (needs ``low >= 1``).

    Raises:
        ValueError: a bound or step that is not an integer, ``step < 1``, ``high < low``, or
            ``log`` with ``low < 1``.
    """

    low: int
    high: int
    step: int = 1
    log: bool = False

    def __post_init__(self) -> None:
        for name in ("low", "high", "step"):
            v = getattr(self, name)
            if not _is_real(v) or float(v) != int(v):
                raise ValueError(f"integer domain {name} must be an int, got {v!r}")
            object.__setattr__(self, name, int(v))
        if self.step < 1:
            raise ValueError(f"integer domain step must be >= 1, got {self.step}")
        if self.high < self.low:
            raise ValueError(f"integer domain is empty: low {self.low} > high {self.high}")
        if self.log and self.low < 1:
            raise ValueError(f"a log-scaled integer domain needs low >= 1, got {self.low}")
        object.__setattr__(self, "high", self.low + (self.high - self.low) // self.step * self.step)

    @property
    def size(self) -> int:
        return (self.high - self.low) // self.step + 1

    def _t(self, x: float) -> float:
        return math.log(x) if self.log else float(x)

    def sample(self, rng: np.random.Generator) -> int:
        if not self.log:
            return self.low + int(rng.integers(self.size)) * self.step
        # log-uniform over [low - 1/2, high + 1/2], rounded to the grid
        lo, hi = math.log(max(self.low - 0.5, 0.5)), math.log(self.high + 0.5)
        return self.check_snapped(math.exp(rng.uniform(lo, hi)))

    def check(self, value: Any) -> int:
        if not _is_real(value) or not math.isfinite(float(value)) or float(value) != int(value):
            raise ValueError(f"expected an integer, got {value!r}")
        v = int(value)
        if not self.low <= v <= self.high or (v - self.low) % self.step:
            raise ValueError(f"{v} is outside {self!r}")
        return v

    def check_snapped(self, value: Any) -> int:
        k = round((float(value) - self.low) / self.step)
        return self.low + min(max(k, 0), self.size - 1) * self.step

    def default(self) -> int:
        return self.low

    def to_unit(self, value: Any) -> float:
        lo, hi = self._t(self.low), self._t(self.high)
        return 0.0 if hi == lo else (self._t(value) - lo) / (hi - lo)

    def from_unit(self, u: float) -> int:
        lo, hi = self._t(self.low), self._t(self.high)
        x = lo + u * (hi - lo)
        return self.check_snapped(math.exp(x) if self.log else x)

    def value_at(self, i: int) -> int:
        return self.low + i * self.step

    def index(self, value: Any) -> int:
        return (int(value) - self.low) // self.step

    def __repr__(self) -> str:
        if self.step == 1:
            return f"{'lograndint' if self.log else 'randint'}({self.low}, {self.high + 1})"
        return f"{'qlograndint' if self.log else 'qrandint'}({self.low}, {self.high}, {self.step})"

    def to_optuna(self) -> Any:
        from optuna.distributions import IntDistribution

        return IntDistribution(self.low, self.high, log=self.log, step=self.step)

    def to_tune(self) -> Any:
        from ray import tune

        if self.step == 1:
            return (tune.lograndint if self.log else tune.randint)(self.low, self.high + 1)
        return (tune.qlograndint if self.log else tune.qrandint)(self.low, self.high, self.step)


@state_class
@dataclass(frozen=True)
class Float(Domain):
    """Reals ``low <= v <= high``; ``step`` puts them on the grid ``low + k * step``; ``log``
    samples and moves on the log scale.

    Args:
        low: the smallest value.
        high: the largest value.
        step: the grid step (``None``: continuous).
        log: sample and move on the log scale (needs ``low > 0``).

    Raises:
        ValueError: a bound that is not a finite number, ``high < low``, ``log`` with ``low <= 0``,
            or a step that is not > 0.
    """

    low: float
    high: float
    step: float | None = None
    log: bool = False

    def __post_init__(self) -> None:
        for name in ("low", "high"):
            v = getattr(self, name)
            if not _is_real(v) or not math.isfinite(float(v)):
                raise ValueError(f"float domain {name} must be a finite number, got {v!r}")
            object.__setattr__(self, name, float(v))
        if self.high < self.low:
            raise ValueError(f"float domain is empty: low {self.low} > high {self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log-scaled float domain needs low > 0, got {self.low}")
        if self.step is not None:
            if not _is_real(self.step) or not float(self.step) > 0:
                raise ValueError(f"float domain step must be > 0, got {self.step!r}")
            object.__setattr__(self, "step", float(self.step))

    @property
    def size(self) -> int | float:
        if self.step is None:
            return 1 if self.high == self.low else math.inf
        return int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1

    def _t(self, x: float) -> float:
        return math.log(x) if self.log else float(x)

    def sample(self, rng: np.random.Generator) -> float:
        if self.step is not None and not self.log:
            return self.value_at(int(rng.integers(self.size)))
        lo, hi = self._t(self.low), self._t(self.high)
        x = rng.uniform(lo, hi)
        return self.check_snapped(math.exp(x) if self.log else x)

    def check(self, value: Any) -> float:
        if not _is_real(value) or not math.isfinite(float(value)):
            raise ValueError(f"expected a finite number, got {value!r}")
        v = float(value)
        if not self.low <= v <= self.high:
            raise ValueError(f"{v!r} is outside {self!r}")
        if self.step is not None:
            k = (v - self.low) / self.step
            if abs(k - round(k)) > 1e-6:
                raise ValueError(f"{v!r} is not on the grid of {self!r} (low + k * {self.step!r})")
            return self.value_at(int(round(k)))
        return v

    def check_snapped(self, value: Any) -> float:
        v = min(max(float(value), self.low), self.high)
        if self.step is None:
            return v
        k = round((v - self.low) / self.step)
        return self.value_at(min(max(k, 0), self.size - 1))

    def default(self) -> float:
        return self.low

    def to_unit(self, value: Any) -> float:
        lo, hi = self._t(self.low), self._t(self.high)
        return 0.0 if hi == lo else (self._t(value) - lo) / (hi - lo)

    def from_unit(self, u: float) -> float:
        lo, hi = self._t(self.low), self._t(self.high)
        x = lo + u * (hi - lo)
        return self.check_snapped(math.exp(x) if self.log else x)

    def value_at(self, i: int) -> float:
        # rounded so that 0.1 * 3 reads back as 0.3 and table values match exactly
        return float(round(self.low + i * self.step, 12))  # type: ignore[operator]

    def index(self, value: Any) -> int:
        return int(round((float(value) - self.low) / self.step))  # type: ignore[operator]

    def __repr__(self) -> str:
        base = "loguniform" if self.log else "uniform"
        if self.step is None:
            return f"{base}({_fmt(self.low)}, {_fmt(self.high)})"
        return f"q{base}({_fmt(self.low)}, {_fmt(self.high)}, {_fmt(self.step)})"

    def to_optuna(self) -> Any:
        from optuna.distributions import FloatDistribution

        if self.log and self.step is not None:
            raise ValueError(f"Optuna has no log-scaled float with a step ({self!r})")
        return FloatDistribution(self.low, self.high, log=self.log, step=self.step)

    def to_tune(self) -> Any:
        from ray import tune

        if self.step is None:
            return (tune.loguniform if self.log else tune.uniform)(self.low, self.high)
        return (tune.qloguniform if self.log else tune.quniform)(self.low, self.high, self.step)


@state_class
@dataclass(frozen=True)
class Normal(Domain):
    """Reals drawn from ``N(mean, sd)`` (Tune's ``randn``); ``step`` rounds to multiples of it.
    The unit transform is the normal CDF, so features stay in ``[0, 1]``.

    Args:
        mean: the mean.
        sd: the standard deviation (> 0).
        step: round values to multiples of this (``None``: continuous).

    Raises:
        ValueError: ``mean`` or ``sd`` not a finite number, ``sd <= 0``, or a step that is not > 0.
    """

    mean: float = 0.0
    sd: float = 1.0
    step: float | None = None

    def __post_init__(self) -> None:
        for name in ("mean", "sd"):
            v = getattr(self, name)
            if not _is_real(v) or not math.isfinite(float(v)):
                raise ValueError(f"normal domain {name} must be a finite number, got {v!r}")
            object.__setattr__(self, name, float(v))
        if not self.sd > 0:
            raise ValueError(f"normal domain sd must be > 0, got {self.sd}")
        if self.step is not None:
            if not _is_real(self.step) or not float(self.step) > 0:
                raise ValueError(f"normal domain step must be > 0, got {self.step!r}")
            object.__setattr__(self, "step", float(self.step))

    @property
    def size(self) -> float:
        return math.inf

    def sample(self, rng: np.random.Generator) -> float:
        return self.check_snapped(rng.normal(self.mean, self.sd))

    def check(self, value: Any) -> float:
        if not _is_real(value) or not math.isfinite(float(value)):
            raise ValueError(f"expected a finite number, got {value!r}")
        v = float(value)
        if self.step is not None:
            k = v / self.step
            if abs(k - round(k)) > 1e-6:
                raise ValueError(f"{v!r} is not a multiple of {self.step!r} ({self!r})")
            return float(round(round(k) * self.step, 12))
        return v

    def check_snapped(self, value: Any) -> float:
        v = float(value)
        return v if self.step is None else float(round(round(v / self.step) * self.step, 12))

    def default(self) -> float:
        return self.check_snapped(self.mean)

    def to_unit(self, value: Any) -> float:
        return float(ndtr((float(value) - self.mean) / self.sd))

    def from_unit(self, u: float) -> float:
        u = min(max(u, 1e-9), 1 - 1e-9)
        return self.check_snapped(self.mean + self.sd * float(ndtri(u)))

    def __repr__(self) -> str:
        if self.step is None:
            return f"randn({_fmt(self.mean)}, {_fmt(self.sd)})"
        return f"qrandn({_fmt(self.mean)}, {_fmt(self.sd)}, {_fmt(self.step)})"

    def to_optuna(self) -> Any:
        raise ValueError(f"Optuna has no normal distribution ({self!r}); use a float range")

    def to_tune(self) -> Any:
        from ray import tune

        return tune.randn(self.mean, self.sd) if self.step is None else tune.qrandn(self.mean, self.sd, self.step)


@state_class
@dataclass(frozen=True)
class Condition:
    """A decision is active only while the decision named ``parent`` holds one of ``values``
    (and the parent itself is active).

    Args:
        parent: the name (``/``-joined path) of an earlier decision.
        values: the parent's values that activate the decision (a single value is one value).

    Raises:
        ValueError: ``parent`` is empty or not a string, or no value is given.
    """

    parent: str
    values: tuple

    def __post_init__(self) -> None:
        if not isinstance(self.parent, str) or not self.parent:
            raise ValueError(f"a condition needs the parent decision's name, got {self.parent!r}")
        values = tuple(self.values) if isinstance(self.values, (list, tuple, set, frozenset)) else (self.values,)
        if not values:
            raise ValueError(f"condition on {self.parent!r} lists no values")
        object.__setattr__(self, "values", values)

    def __repr__(self) -> str:
        return f"{self.parent} in {list(self.values)!r}"


__all__ = ["INACTIVE", "Domain", "Categorical", "Integer", "Float", "Normal", "Condition"]
