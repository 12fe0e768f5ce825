"""The :class:`SearchSpace` shared by every space: decisions of any domain, some conditional.

An architecture (``Arch``, a configuration) is a plain tuple holding one value per decision, in
the order of :attr:`SearchSpace.decisions`; an inactive decision holds :data:`INACTIVE`. Tuples are hashable, cheap to pickle and easy to compare, which is
what searchers, caches and Ray's object store want.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from ray_nasrank._state import state_class

from ._domains import INACTIVE, Categorical, Condition, Domain, Float, Integer, Normal  # noqa: F401

Arch = tuple


@state_class
@dataclass(frozen=True, init=False)
class Decision:
    """One decision of a space: where it sits in a config, its domain and when it is active.

    ``path`` is the location of the decision inside a nested Tune config, e.g.
    ``("cell", "e1_0")``; ``name`` is that path joined with ``/`` (the flat key Optuna and
    Tune's ``OptunaSearch`` use). ``domain`` is a :class:`Categorical` (a plain sequence of
    choices is read as one), :class:`Integer`, :class:`Float` or :class:`Normal`;
    ``condition`` makes the decision active only for some values of an earlier decision
    (else it holds :data:`INACTIVE`).

    Args:
        path: the decision's keys in a nested config (a string is a one-key path).
        domain: a domain, or a sequence of choices (read as a :class:`Categorical`).
        condition: when the decision is active (``None``: always).

    Raises:
        ValueError: an empty path, a path part that is empty, not a string or contains ``/``,
            or a ``domain`` that is neither a domain nor valid choices.
        TypeError: ``condition`` is not a :class:`Condition`.

    >>> Decision(("opt", "lr"), Float(1e-4, 0.1, log=True))
    Decision('opt/lr', loguniform(0.0001, 0.1))
    """

    path: tuple[str, ...]
    domain: Domain
    condition: Condition | None = None

    def __init__(self, path: Sequence[str], domain: Domain | Sequence[Any],
                 condition: Condition | None = None) -> None:
        path = tuple(path) if not isinstance(path, str) else (path,)
        if not isinstance(domain, Domain):
            if isinstance(domain, (str, bytes)) or not isinstance(domain, Iterable):
                raise ValueError(f"decision {'/'.join(map(str, path))!r}: expected a domain or a list "
                                 f"of choices, got {domain!r}")
            try:
                domain = Categorical(tuple(domain))
            except ValueError as e:
                raise ValueError(f"decision {'/'.join(map(str, path))!r}: {e}") from None
        if condition is not None and not isinstance(condition, Condition):
            raise TypeError(f"condition must be a Condition, got {condition!r}")
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "domain", domain)
        object.__setattr__(self, "condition", condition)
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

    @property
    def name(self) -> str:
        return "/".join(self.path)

    @property
    def choices(self) -> tuple[Any, ...]:
        """The choices of a categorical decision."""
        if not isinstance(self.domain, Categorical):
            raise AttributeError(f"decision {self.name!r} is {self.domain!r}, not a categorical choice")
        return self.domain.choices

    @property
    def categorical(self) -> bool:
        return isinstance(self.domain, Categorical)

    def check(self, value: Any) -> Any:
        """``value`` in canonical form, or a ``ValueError`` naming this decision."""
        try:
            return self.domain.check(value)
        except ValueError as e:
            raise ValueError(f"{self.name!r}: {e}") from None

    def __repr__(self) -> str:
        cond = "" if self.condition is None else f", if {self.condition!r}"
        return f"Decision({self.name!r}, {self.domain!r}{cond})"


@state_class(skip=("_parent_idx",))
class SearchSpace:
    """A space of decisions: categorical, integer, float or normal, some of them conditional.

    Build one from a list of :class:`Decision` or from a nested dict whose leaves are lists of
    choices or domains. Subclasses (:class:`~ray_nasrank.spaces.NB201Space`) may specialise the
    string form, the isomorphism key, the encodings and the intrinsic weak labels.

    Args:
        spec: a sequence of :class:`Decision`, or a nested dict whose leaves are lists of choices
            or domains (each leaf's key path becomes the decision's path).
        name: the space's short name (default: the class's ``name``).

    Raises:
        TypeError: a sequence item is not a :class:`Decision`.
        ValueError: no decision, duplicate decision names, an invalid leaf, or a condition whose
            parent is not an earlier categorical or integer decision or names values outside its domain.

    >>> space = SearchSpace({"net": {"act": ["relu", "gelu"], "depth": Integer(1, 4)},
    ...                      "lr": Float(1e-4, 0.1, log=True)})
    >>> space.size
    inf
    >>> arch = space.sample(0)
    >>> sorted(space.to_config(arch))
    ['lr', 'net']
    >>> space.from_config(space.to_config(arch)) == arch
    True

    A conditional decision holds :data:`INACTIVE` while its condition is not met; configs that
    differ only in inactive values are the same point:

    >>> cond = SearchSpace([Decision(("opt",), ["sgd", "adam"]),
    ...                     Decision(("momentum",), Float(0.0, 0.99), Condition("opt", ("sgd",)))])
    >>> cond.validate(("adam", 0.5))
    ('adam', inactive)
    """

    #: short name used by the CLI and in reports
    name: str = "space"

    def __init__(self, spec: Mapping[str, Any] | Sequence[Decision], name: str | None = None) -> None:
        if isinstance(spec, Mapping):
            decisions = tuple(_walk_spec(spec, ()))
        else:
            decisions = tuple(spec)
            for d in decisions:
                if not isinstance(d, Decision):
                    raise TypeError(f"expected Decision objects, got {type(d).__name__}: {d!r}")
        if not decisions:
            raise ValueError(f"a {type(self).__name__} needs at least one decision")
        names = [d.name for d in decisions]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"duplicate decision names: {sorted(dup)}")
        self._decisions = decisions
        if name is not None:
            self.name = str(name)
        self._parents()  # check the conditions now

    @property
    def decisions(self) -> tuple[Decision, ...]:
        """The decisions, in the order an ``Arch`` tuple stores them."""
        return self._decisions

    # ------------------------------------------------------------------ structure
    def _parents(self) -> tuple[int, ...]:
        """Index of each decision's condition parent (-1 for none), checked once and cached."""
        cached = self.__dict__.get("_parent_idx")
        if cached is not None:
            return cached
        index = {d.name: i for i, d in enumerate(self.decisions)}
        out = []
        for i, d in enumerate(self.decisions):
            c = d.condition
            if c is None:
                out.append(-1)
                continue
            p = index.get(c.parent)
            if p is None or p >= i:
                raise ValueError(f"decision {d.name!r} is conditioned on {c.parent!r}, which must be an "
                                 "earlier decision of the space")
            pd = self.decisions[p].domain
            if pd.size == math.inf:
                raise ValueError(f"decision {d.name!r} is conditioned on {c.parent!r} ({pd!r}); a condition "
                                 "needs a categorical or integer parent")
            for v in c.values:
                try:
                    pd.check(v)
                except ValueError as e:
                    raise ValueError(f"condition of {d.name!r}: {e}") from None
            out.append(p)
        self.__dict__["_parent_idx"] = tuple(out)
        return self.__dict__["_parent_idx"]

    @property
    def conditional(self) -> bool:
        """Whether some decision is active only for some values of another."""
        return any(p >= 0 for p in self._parents())

    @property
    def numeric(self) -> bool:
        """Whether some decision is an integer, float or normal one."""
        return any(not d.categorical for d in self.decisions)

    def _is_active(self, values: Sequence[Any], i: int) -> bool:
        p = self._parents()[i]
        if p < 0:
            return True
        v = values[p]
        return v is not INACTIVE and v in self.decisions[i].condition.values  # type: ignore[union-attr]

    def active(self, arch: Arch) -> tuple[bool, ...]:
        """Which decisions of ``arch`` are active."""
        arch = self.validate(arch)
        return tuple(v is not INACTIVE for v in arch)

    # ------------------------------------------------------------------ size and sampling
    @property
    def size(self) -> int | float:
        """Number of distinct configurations (``math.inf`` with a continuous decision)."""
        parents = self._parents()
        sizes = [d.domain.size for d in self.decisions]
        if all(p < 0 for p in parents):
            return math.inf if math.inf in sizes else math.prod(int(s) for s in sizes)
        children: dict[int, list[int]] = {}
        for i, p in enumerate(parents):
            if p >= 0:
                children.setdefault(p, []).append(i)

        def count(i: int) -> int | float:
            kids = children.get(i, [])
            if not kids:
                return sizes[i]
            listed = {v for k in kids for v in self.decisions[k].condition.values}  # type: ignore[union-attr]
            total: int | float = sizes[i] - len(listed)
            for v in listed:
                total += math.prod(count(k) for k in kids if v in self.decisions[k].condition.values)  # type: ignore[union-attr]
            return total

        return math.prod(count(i) for i, p in enumerate(parents) if p < 0)

    @property
    def finite(self) -> bool:
        return self.size != math.inf

    @property
    def indexable(self) -> bool:
        """Whether :meth:`arch_at`/:meth:`index_of` exist (finite and without conditions)."""
        return not self.conditional and self.finite

    @property
    def num_decisions(self) -> int:
        return len(self.decisions)

    def sample(self, rng: np.random.Generator | int | None = None) -> Arch:
        """Draw one configuration from the prior (uniform; log-uniform where log; normal)."""
        rng = np.random.default_rng(rng)
        out: list[Any] = []
        for i, d in enumerate(self.decisions):
            out.append(d.domain.sample(rng) if self._is_active(out, i) else INACTIVE)
        return tuple(out)

    def sample_many(self, n: int, rng: np.random.Generator | int | None = None,
                    unique: bool = False) -> list[Arch]:
        """Draw ``n`` configurations; with ``unique=True`` without repeats (``n <= size``)."""
        rng = np.random.default_rng(rng)
        if not unique:
            return [self.sample(rng) for _ in range(n)]
        if n > self.size:
            raise ValueError(f"asked for {n} unique architectures but the space holds {self.size}")
        if self.indexable and self.size <= 200_000:
            idx = rng.choice(self.size, size=n, replace=False)
            return [self.arch_at(int(i)) for i in idx]
        if self.finite and self.size <= 200_000 and n > self.size // 2:
            pool = list(self.enumerate())
            return [pool[int(i)] for i in rng.choice(len(pool), size=n, replace=False)]
        seen: set[Arch] = set()
        out: list[Arch] = []
        while len(out) < n:
            a = self.sample(rng)
            if a not in seen:
                seen.add(a)
                out.append(a)
        return out

    def enumerate(self) -> Iterator[Arch]:
        """Every configuration (last decision varies fastest); only for finite spaces."""
        if not self.finite:
            raise ValueError(f"{self.name}: cannot enumerate a space with continuous decisions")
        values = [[d.domain.value_at(i) for i in range(int(d.domain.size))] if not d.categorical else d.choices
                  for d in self.decisions]
        if not self.conditional:
            return (tuple(a) for a in itertools.product(*values))

        def walk(i: int, prefix: list) -> Iterator[Arch]:
            if i == len(values):
                yield tuple(prefix)
                return
            for v in (values[i] if self._is_active(prefix, i) else (INACTIVE,)):
                prefix.append(v)
                yield from walk(i + 1, prefix)
                prefix.pop()

        return walk(0, [])

    def _check_indexable(self) -> None:
        if not self.indexable:
            raise ValueError(f"{self.name}: a {'conditional' if self.conditional else 'continuous'} space has no "
                             "index order; use sample() or enumerate()")

    def arch_at(self, index: int) -> Arch:
        """The architecture at ``index`` of :meth:`enumerate` (mixed-radix decoding)."""
        self._check_indexable()
        if not 0 <= index < self.size:
            raise IndexError(f"index {index} outside [0, {self.size})")
        out = []
        for d in reversed(self.decisions):
            index, r = divmod(index, int(d.domain.size))
            out.append(d.domain.value_at(r))
        return tuple(reversed(out))

    def index_of(self, arch: Arch) -> int:
        """Inverse of :meth:`arch_at`."""
        idx = self.choice_indices(arch)
        out = 0
        for d, i in zip(self.decisions, idx):
            out = out * int(d.domain.size) + i
        return out

    def choice_indices(self, arch: Arch) -> tuple[int, ...]:
        self._check_indexable()
        arch = self.validate(arch)
        return tuple(d.domain.index(v) for d, v in zip(self.decisions, arch))

    # ------------------------------------------------------------------ validation
    def validate(self, arch: Any) -> Arch:
        """Return ``arch`` in canonical form (inactive values as :data:`INACTIVE`) or raise
        ``ValueError`` naming what is wrong."""
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
        out: list[Any] = []
        for i, (d, v) in enumerate(zip(self.decisions, arch)):
            if not self._is_active(out, i):
                out.append(INACTIVE)
                continue
            if v is INACTIVE:
                raise ValueError(f"{self.name}: {d.name!r} is active ({d.condition!r}) but holds no value")
            try:
                out.append(d.domain.check(v))
            except ValueError as e:
                if d.categorical:
                    raise ValueError(f"{self.name}: unknown value {v!r} for {d.name!r}; choices are "
                                     f"{list(d.choices)}") from None
                raise ValueError(f"{self.name}: {d.name!r} = {v!r}: {e}") from None
        return tuple(out)

    def contains(self, arch: Any) -> bool:
        try:
            self.validate(arch)
        except ValueError:
            return False
        return True

    def _settle(self, values: list, start: int, rng: np.random.Generator | None) -> Arch:
        """Make ``values`` consistent after a change at ``start``: decisions that became inactive
        hold INACTIVE, those that became active get a prior draw (or their default without rng)."""
        for i in range(start + 1, len(values)):
            if not self._is_active(values, i):
                values[i] = INACTIVE
            elif values[i] is INACTIVE:
                dom = self.decisions[i].domain
                values[i] = dom.sample(rng) if rng is not None else dom.default()
        return tuple(values)

    # ------------------------------------------------------------------ local moves
    def neighbours(self, arch: Arch) -> list[Arch]:
        """Configurations one step away: another choice of one categorical decision, or the
        next grid value (a 5 % step of the unit transform when continuous) of one numeric one."""
        arch = self.validate(arch)
        out = []
        for i, d in enumerate(self.decisions):
            v = arch[i]
            if v is INACTIVE:
                continue
            dom = d.domain
            if d.categorical:
                news = [c for c in dom.choices if c != v]  # type: ignore[attr-defined]
            elif dom.size != math.inf:
                j = dom.index(v)
                news = [dom.value_at(k) for k in (j - 1, j + 1) if 0 <= k < dom.size]
            else:
                u = dom.to_unit(v)
                news = list(dict.fromkeys(dom.from_unit(min(max(u + s, 0.0), 1.0)) for s in (-0.05, 0.05)))
                news = [x for x in news if x != v]
            for c in news:
                if self.conditional:
                    out.append(self._settle(list(arch[:i]) + [c] + list(arch[i + 1:]), i, None))
                else:
                    out.append(arch[:i] + (c,) + arch[i + 1:])
        return out

    def mutate(self, arch: Arch, rng: np.random.Generator | int | None = None) -> Arch:
        """Change one uniformly chosen active decision: another choice, or a step in the
        transformed space within bounds and grid (decisions it activates are drawn from the prior)."""
        rng = np.random.default_rng(rng)
        arch = self.validate(arch)
        movable = [i for i, d in enumerate(self.decisions) if arch[i] is not INACTIVE and d.domain.size > 1]
        if not movable:
            return arch
        i = movable[int(rng.integers(len(movable)))]
        new = self.decisions[i].domain.move(arch[i], rng)
        values = list(arch[:i]) + [new] + list(arch[i + 1:])
        return self._settle(values, i, rng) if self.conditional else tuple(values)

    def local_moves(self, arch: Arch, rng: np.random.Generator | int | None = None, n: int = 8) -> list[Arch]:
        """Up to ``n`` distinct configurations near ``arch`` (each one :meth:`mutate` step, a
        second step for every other one so that numeric decisions can move together)."""
        rng = np.random.default_rng(rng)
        arch = self.validate(arch)
        out: dict[Arch, None] = {}
        for t in range(4 * n):
            if len(out) >= n:
                break
            a = self.mutate(arch, rng)
            if t % 2:
                a = self.mutate(a, rng)
            if a != arch:
                out[a] = None
        return list(out)

    # ------------------------------------------------------------------ identity
    def iso_key(self, arch: Arch) -> Hashable:
        """Key equal for architectures that compute the same function (default: the canonical form)."""
        return self.validate(arch)

    def to_string(self, arch: Arch) -> str:
        arch = self.validate(arch)
        return "|".join(f"{d.name}={v!r}" for d, v in zip(self.decisions, arch))

    def from_string(self, text: str) -> Arch:
        if not isinstance(text, str):
            raise ValueError(f"{self.name}: expected an architecture string, got {text!r}")
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
            values.append(_read_value(raw, d.name, self.name))
        return self.validate(tuple(values))

    # ------------------------------------------------------------------ config conversion
    def to_config(self, arch: Arch) -> dict:
        """Nested dict (a Tune config fragment) holding the active decisions of ``arch``."""
        arch = self.validate(arch)
        out: dict = {}
        for d, v in zip(self.decisions, arch):
            if v is INACTIVE:
                continue
            node = out
            for part in d.path[:-1]:
                node = node.setdefault(part, {})
            node[d.path[-1]] = v
        return out

    def from_config(self, config: Mapping) -> Arch:
        """Read the decisions back from a nested config (extra keys are ignored; inactive
        decisions may be absent).

        Flat ``"a/b"`` keys, as Optuna and flattened Tune results use, are accepted too.
        """
        values: list[Any] = []
        for i, d in enumerate(self.decisions):
            if d.name in config:
                values.append(config[d.name])
                continue
            node: Any = config
            for part in d.path:
                if not isinstance(node, Mapping) or part not in node:
                    node = _MISSING
                    break
                node = node[part]
            if node is _MISSING:
                if self._is_active(values, i):
                    raise ValueError(f"{self.name}: config has no value for {d.name!r}")
                node = INACTIVE
            values.append(node)
        return self.validate(tuple(values))

    def to_flat_params(self, arch: Arch) -> dict[str, Any]:
        """``{decision name: value}`` of the active decisions (Optuna's ``trial.params`` form)."""
        arch = self.validate(arch)
        return {d.name: v for d, v in zip(self.decisions, arch) if v is not INACTIVE}

    def to_tune(self) -> dict:
        """A Tune ``param_space`` fragment, one domain per decision (imports Ray)."""
        if self.conditional:
            raise ValueError(f"{self.name}: a conditional space cannot be written as a Tune param_space; "
                             "pass the space itself: NASRankSearcher(space=...)")
        out: dict = {}
        for d in self.decisions:
            node = out
            for part in d.path[:-1]:
                node = node.setdefault(part, {})
            node[d.path[-1]] = d.domain.to_tune()
        return out

    def to_optuna(self) -> dict:
        """Flat ``{name: distribution}`` dict for Optuna (imports Optuna)."""
        return {d.name: d.domain.to_optuna() for d in self.decisions}

    # ------------------------------------------------------------------ features and weak labels
    #: encoding kinds this space offers (see :mod:`ray_nasrank.encodings`)
    encoding_kinds: tuple[str, ...] = ("onehot", "opdist", "opcounts")

    def encode(self, archs: Sequence[Arch] | Arch, kind: str = "onehot") -> np.ndarray:
        """Feature matrix of ``archs``; see :mod:`ray_nasrank.encodings` for the kinds."""
        from ._encodings import encode

        return encode(self, archs, kind)

    def features(self, archs: Sequence[Arch]) -> np.ndarray:
        """Generic ranker features: one-hot categoricals, numeric values in ``[0, 1]`` of their
        natural transform, and an inactive flag per conditional decision."""
        return self.encode(archs, "onehot")

    def _encoder(self, kind: str):
        """The function computing one encoding kind (subclasses add their own kinds)."""
        from . import _encodings

        return {"onehot": _encodings.onehot, "opdist": _encodings.opdist, "opcounts": _encodings.opcounts}.get(kind)

    #: the weak labels :meth:`intrinsic_weak` computes (NASRank pretrains on them by default)
    intrinsic_names: tuple[str, ...] = ()
    #: the encoding kinds the ranker uses by default (``"+"``-joined, see :mod:`ray_nasrank.encodings`)
    ranker_features: str = "onehot+opdist"

    def intrinsic_weak(self, archs: Sequence[Arch], names: Sequence[str], **options: Any) -> dict[str, np.ndarray] | None:
        """Weak labels the space computes by itself, for ``names`` among :attr:`intrinsic_names`
        (``None``: it has none). ``options`` tune the computation (e.g. a network's size)."""
        return None

    def model_fn(self, **options: Any) -> Callable[[dict], Any] | None:
        """The space's own model family ``config -> nn.Module`` (for zero-cost proxies of its
        archs), or ``None`` when the user brings the model (``model_fn=`` of the strategies)."""
        return None

    def config_extras(self, arch: Arch) -> dict:
        """Entries a trial config carries besides :meth:`to_config` (default: none)."""
        return {}

    # ------------------------------------------------------------------ misc
    def __len__(self) -> int:
        if not self.finite:
            raise TypeError(f"{self.name} has infinitely many configurations; use .size")
        return int(self.size)

    def __contains__(self, arch: Any) -> bool:
        return self.contains(arch)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(decisions={self.num_decisions}, size={self.size})"

    def describe(self) -> str:
        """One line per decision: ``name: domain`` (and its condition)."""
        return "\n".join(f"{d.name}: {d.domain!r}" + (f"  if {d.condition!r}" if d.condition else "")
                         for d in self.decisions)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.decisions == other.decisions  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.decisions))

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_parent_idx", None)
        return state


_MISSING = object()


def _read_value(raw: str, decision: str, space: str) -> Any:
    """One value of an architecture string, as the user typed it: a Python literal or ``inactive``."""
    import ast

    if raw == "inactive":
        return INACTIVE
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise ValueError(f"{space}: cannot read value {raw!r} of {decision!r}") from None
    if isinstance(value, (int, float, complex)) and "_" in raw:
        # Python's literals accept digit separators: '0.5_2' would silently read as 0.52
        raise ValueError(f"{space}: cannot read value {raw!r} of {decision!r} (digit separators are not accepted)")
    return value


def _walk_spec(spec: Mapping, prefix: tuple[str, ...]) -> Iterator[Decision]:
    for key, value in spec.items():
        path = prefix + (str(key),)
        if isinstance(value, Mapping):
            yield from _walk_spec(value, path)
        elif isinstance(value, Domain):
            yield Decision(path, value)
        elif isinstance(value, (list, tuple)):
            yield Decision(path, tuple(value))
        else:
            raise ValueError(
                f"{'/'.join(path)!r}: expected a list of choices, a domain or a nested dict, got {value!r}"
            )
