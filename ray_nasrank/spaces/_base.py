"""The :class:`SearchSpace` abstraction shared by every space.

An architecture (``Arch``) is a plain tuple holding one value per decision, in the order of
:attr:`SearchSpace.decisions`. Tuples are hashable, cheap to pickle and easy to compare, which is
what searchers, caches and Ray's object store want.
"""

from __future__ import annotations

import abc
import itertools
import math
from dataclasses import dataclass
from typing import Any, Hashable, Iterator, Mapping, Sequence

import numpy as np

Arch = tuple


@dataclass(frozen=True)
class Decision:
    """One categorical choice of a space.

    ``path`` is the location of the decision inside a nested Tune config, e.g.
    ``("cell", "e1_0")``; ``name`` is that path joined with ``/`` (the flat key Optuna and
    Tune's ``OptunaSearch`` use).
    """

    path: tuple[str, ...]
    choices: tuple[Any, ...]

    @property
    def name(self) -> str:
        return "/".join(self.path)

    def __post_init__(self) -> None:
        if not self.path:
            raise ValueError("a decision needs a non-empty path")
        for part in self.path:
            if not isinstance(part, str) or not part:
                raise ValueError(f"decision path parts must be non-empty strings, got {self.path!r}")
            if "/" in part:
                raise ValueError(
                    f"key {part!r} contains '/', which Tune and Optuna use as a path separator; "
                    "rename it"
                )
        if len(self.choices) == 0:
            raise ValueError(f"decision {self.name!r} has no choices")
        if len(set(map(_hashable, self.choices))) != len(self.choices):
            raise ValueError(f"decision {self.name!r} has duplicate choices: {self.choices!r}")


def _hashable(value: Any) -> Hashable:
    try:
        hash(value)
        return value
    except TypeError:
        return repr(value)


class SearchSpace(abc.ABC):
    """A finite space of categorical decisions.

    Subclasses provide :attr:`decisions`; everything else has a generic implementation that
    subclasses may specialise (string form, isomorphism key, graph view).
    """

    #: short name used by the CLI and in reports
    name: str = "space"

    @property
    @abc.abstractmethod
    def decisions(self) -> tuple[Decision, ...]:
        """The decisions, in the order an ``Arch`` tuple stores them."""

    # ------------------------------------------------------------------ size and sampling
    @property
    def size(self) -> int:
        return math.prod(len(d.choices) for d in self.decisions)

    @property
    def num_decisions(self) -> int:
        return len(self.decisions)

    def sample(self, rng: np.random.Generator | int | None = None) -> Arch:
        """Draw one architecture uniformly at random."""
        rng = np.random.default_rng(rng)
        return tuple(d.choices[int(rng.integers(len(d.choices)))] for d in self.decisions)

    def sample_many(self, n: int, rng: np.random.Generator | int | None = None,
                    unique: bool = False) -> list[Arch]:
        """Draw ``n`` architectures; with ``unique=True`` without repeats (``n <= size``)."""
        rng = np.random.default_rng(rng)
        if not unique:
            return [self.sample(rng) for _ in range(n)]
        if n > self.size:
            raise ValueError(f"asked for {n} unique architectures but the space holds {self.size}")
        if self.size <= 200_000:
            idx = rng.choice(self.size, size=n, replace=False)
            return [self.arch_at(int(i)) for i in idx]
        seen: set[Arch] = set()
        out: list[Arch] = []
        while len(out) < n:
            a = self.sample(rng)
            if a not in seen:
                seen.add(a)
                out.append(a)
        return out

    def enumerate(self) -> Iterator[Arch]:
        """Every architecture, in index order (last decision varies fastest)."""
        return (tuple(a) for a in itertools.product(*(d.choices for d in self.decisions)))

    def arch_at(self, index: int) -> Arch:
        """The architecture at ``index`` of :meth:`enumerate` (mixed-radix decoding)."""
        if not 0 <= index < self.size:
            raise IndexError(f"index {index} outside [0, {self.size})")
        out = []
        for d in reversed(self.decisions):
            index, r = divmod(index, len(d.choices))
            out.append(d.choices[r])
        return tuple(reversed(out))

    def index_of(self, arch: Arch) -> int:
        """Inverse of :meth:`arch_at`."""
        idx = self.choice_indices(arch)
        out = 0
        for d, i in zip(self.decisions, idx):
            out = out * len(d.choices) + i
        return out

    def choice_indices(self, arch: Arch) -> tuple[int, ...]:
        arch = self.validate(arch)
        return tuple(d.choices.index(v) for d, v in zip(self.decisions, arch))

    # ------------------------------------------------------------------ validation
    def validate(self, arch: Any) -> Arch:
        """Return ``arch`` as a tuple or raise ``ValueError`` naming what is wrong."""
        if isinstance(arch, str):
            return self.from_string(arch)
        if isinstance(arch, Mapping):
            return self.from_config(arch)
        try:
            arch = tuple(arch)
        except TypeError:
            raise ValueError(f"{self.name}: cannot read an architecture from {arch!r}") from None
        if len(arch) != self.num_decisions:
            raise ValueError(
                f"{self.name}: architecture {arch!r} has {len(arch)} decisions, "
                f"expected {self.num_decisions}"
            )
        for d, v in zip(self.decisions, arch):
            if v not in d.choices:
                raise ValueError(
                    f"{self.name}: unknown value {v!r} for {d.name!r}; choices are {list(d.choices)}"
                )
        return arch

    def contains(self, arch: Any) -> bool:
        try:
            self.validate(arch)
        except ValueError:
            return False
        return True

    # ------------------------------------------------------------------ local moves
    def neighbours(self, arch: Arch) -> list[Arch]:
        """All architectures that differ from ``arch`` in exactly one decision."""
        arch = self.validate(arch)
        out = []
        for i, d in enumerate(self.decisions):
            for c in d.choices:
                if c != arch[i]:
                    out.append(arch[:i] + (c,) + arch[i + 1:])
        return out

    def mutate(self, arch: Arch, rng: np.random.Generator | int | None = None) -> Arch:
        """Change one uniformly chosen decision to another value."""
        rng = np.random.default_rng(rng)
        arch = self.validate(arch)
        movable = [i for i, d in enumerate(self.decisions) if len(d.choices) > 1]
        if not movable:
            return arch
        i = movable[int(rng.integers(len(movable)))]
        others = [c for c in self.decisions[i].choices if c != arch[i]]
        return arch[:i] + (others[int(rng.integers(len(others)))],) + arch[i + 1:]

    # ------------------------------------------------------------------ identity
    def iso_key(self, arch: Arch) -> Hashable:
        """Key equal for architectures that compute the same function (default: identity)."""
        return self.validate(arch)

    def to_string(self, arch: Arch) -> str:
        arch = self.validate(arch)
        return "|".join(f"{d.name}={v!r}" for d, v in zip(self.decisions, arch))

    def from_string(self, text: str) -> Arch:
        if not isinstance(text, str):
            raise ValueError(f"{self.name}: expected an architecture string, got {text!r}")
        import ast

        parts = text.split("|") if text else []
        if len(parts) != self.num_decisions:
            raise ValueError(
                f"{self.name}: malformed architecture string {text!r}: expected "
                f"{self.num_decisions} 'name=value' parts separated by '|'"
            )
        values = []
        for d, part in zip(self.decisions, parts):
            key, sep, raw = part.partition("=")
            if not sep or key != d.name:
                raise ValueError(f"{self.name}: malformed part {part!r} in {text!r}; expected '{d.name}=...'")
            try:
                values.append(ast.literal_eval(raw))
            except (ValueError, SyntaxError):
                raise ValueError(f"{self.name}: cannot read value {raw!r} of {d.name!r}") from None
        return self.validate(tuple(values))

    # ------------------------------------------------------------------ config conversion
    def to_config(self, arch: Arch) -> dict:
        """Nested dict (a Tune config fragment) holding the decisions of ``arch``."""
        arch = self.validate(arch)
        out: dict = {}
        for d, v in zip(self.decisions, arch):
            node = out
            for part in d.path[:-1]:
                node = node.setdefault(part, {})
            node[d.path[-1]] = v
        return out

    def from_config(self, config: Mapping) -> Arch:
        """Read the decisions back from a nested config (extra keys are ignored).

        Flat ``"a/b"`` keys, as Optuna and flattened Tune results use, are accepted too.
        """
        values = []
        for d in self.decisions:
            if d.name in config:
                values.append(config[d.name])
                continue
            node: Any = config
            for part in d.path:
                if not isinstance(node, Mapping) or part not in node:
                    raise ValueError(f"{self.name}: config has no value for {d.name!r}")
                node = node[part]
            values.append(node)
        return self.validate(tuple(values))

    def to_flat_params(self, arch: Arch) -> dict[str, Any]:
        arch = self.validate(arch)
        return {d.name: v for d, v in zip(self.decisions, arch)}

    def to_tune(self) -> dict:
        """A Tune ``param_space`` fragment with one ``tune.choice`` per decision (imports Ray)."""
        from ray import tune

        out: dict = {}
        for d in self.decisions:
            node = out
            for part in d.path[:-1]:
                node = node.setdefault(part, {})
            node[d.path[-1]] = tune.choice(list(d.choices))
        return out

    def to_optuna(self) -> dict:
        """Flat ``{name: CategoricalDistribution}`` dict for Optuna (imports Optuna)."""
        from optuna.distributions import CategoricalDistribution

        return {d.name: CategoricalDistribution(list(d.choices)) for d in self.decisions}

    # ------------------------------------------------------------------ encodings
    def encode(self, archs: Sequence[Arch] | Arch, kind: str = "onehot") -> np.ndarray:
        """Feature matrix of ``archs``; see :mod:`ray_nasrank.encodings` for the kinds."""
        from ray_nasrank import encodings

        return encodings.encode(self, archs, kind)

    # ------------------------------------------------------------------ misc
    def __len__(self) -> int:
        return self.size

    def __contains__(self, arch: Any) -> bool:
        return self.contains(arch)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(decisions={self.num_decisions}, size={self.size})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.decisions == other.decisions  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.decisions))
