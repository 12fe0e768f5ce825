"""Generic categorical spaces, built by hand or from a Ray Tune ``param_space``."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ._base import Decision, SearchSpace
from ._nb201 import EDGE_KEYS, OPS, NB201Space


class CategoricalSpace(SearchSpace):
    """A product of categorical decisions at arbitrary nested paths.

    >>> space = CategoricalSpace({"block": {"kernel": [3, 5], "width": [16, 32, 64]}})
    >>> space.size
    6
    >>> space.to_config((5, 32))
    {'block': {'kernel': 5, 'width': 32}}
    """

    name = "columns"

    def __init__(self, spec: Mapping[str, Any] | Sequence[Decision]) -> None:
        if isinstance(spec, Mapping):
            decisions = tuple(_walk_plain(spec, ()))
        else:
            decisions = tuple(spec)
        if not decisions:
            raise ValueError("a CategoricalSpace needs at least one decision")
        names = [d.name for d in decisions]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"duplicate decision names: {sorted(dup)}")
        self._decisions = decisions

    @property
    def decisions(self) -> tuple[Decision, ...]:
        return self._decisions

    @classmethod
    def from_columns(cls, columns: Mapping[str, Sequence[Any]]) -> "CategoricalSpace":
        """One decision per table column, choices sorted for a stable order."""
        decisions = []
        for col, values in columns.items():
            uniq = sorted(set(values), key=lambda v: (str(type(v)), v))
            decisions.append(Decision((str(col),), tuple(uniq)))
        return cls(decisions)

    def __repr__(self) -> str:
        return f"CategoricalSpace({[d.name for d in self.decisions]}, size={self.size})"


def _walk_plain(spec: Mapping, prefix: tuple[str, ...]):
    for key, value in spec.items():
        path = prefix + (str(key),)
        if isinstance(value, Mapping):
            yield from _walk_plain(value, path)
        elif isinstance(value, (list, tuple)):
            yield Decision(path, tuple(value))
        else:
            raise ValueError(
                f"{'/'.join(path)!r}: expected a list of choices or a nested dict, got {value!r}"
            )


def space_from_tune(param_space: Mapping[str, Any]) -> tuple[SearchSpace, dict]:
    """Split a Tune ``param_space`` into a search space and the constant part of the config.

    Supported domains: ``tune.choice`` and ``tune.randint``/``tune.qrandint`` (expanded into
    their finite choices), nested in dicts at any depth. A dict whose only entries are the six
    NB201 edges (``e1_0`` ... ``e3_2``), each ``tune.choice`` over the NB201 ops, becomes an
    :class:`NB201Space` when it is the whole search space, so the NB201 encodings and the
    isomorphism key apply. Any other domain (``uniform``, ``grid_search``, ``sample_from``, ...)
    raises ``ValueError`` naming its key: a searcher that left it unfilled would hand the raw
    sampler object to the trainable.
    """
    if not isinstance(param_space, Mapping):
        raise ValueError(f"param_space must be a dict, got {type(param_space).__name__}")
    decisions: list[Decision] = []
    constants: dict = {}
    _walk_tune(param_space, (), decisions, constants)
    if not decisions:
        raise ValueError("param_space has no tune.choice/tune.randint entry to search over")
    nb201_key = _nb201_key(decisions)
    if nb201_key is not None:
        return NB201Space(nb201_key), constants
    return CategoricalSpace(decisions), constants


def _nb201_key(decisions: list[Decision]) -> str | None:
    if len(decisions) != len(EDGE_KEYS):
        return None
    prefixes = {d.path[:-1] for d in decisions}
    if len(prefixes) != 1:
        return None
    (prefix,) = prefixes
    if len(prefix) != 1:
        return None
    if sorted(d.path[-1] for d in decisions) != sorted(EDGE_KEYS):
        return None
    if any(set(d.choices) != set(OPS) for d in decisions):
        return None
    return prefix[0]


def _walk_tune(spec: Mapping, prefix: tuple[str, ...], decisions: list, constants: dict) -> None:
    for key, value in spec.items():
        if not isinstance(key, str):
            raise ValueError(f"param_space keys must be strings, got {key!r} under {'/'.join(prefix) or '<root>'}")
        path = prefix + (key,)
        where = "/".join(path)
        if "/" in key:
            raise ValueError(f"param_space key {where!r} contains '/', which Tune uses as a separator")
        if isinstance(value, Mapping):
            if _is_grid(value):
                raise ValueError(
                    f"param_space[{where!r}] is tune.grid_search, which ray_nasrank does not support: "
                    "use tune.choice over the same values"
                )
            sub: dict = {}
            _walk_tune(value, path, decisions, sub)
            if sub:
                constants[key] = sub
            continue
        choices = _domain_choices(value, where)
        if choices is None:
            if isinstance(value, (list, tuple)) and _contains_domain(value):
                raise ValueError(
                    f"param_space[{where!r}] is a list holding Tune domains; encode it as a dict "
                    "of named entries (e.g. {'e1_0': tune.choice(OPS), ...})"
                )
            constants[key] = value
        else:
            decisions.append(Decision(path, tuple(choices)))


def _is_grid(value: Mapping) -> bool:
    return set(value.keys()) == {"grid_search"}


def _is_domain(value: Any) -> bool:
    return type(value).__module__.startswith("ray.tune.search.sample")


def _contains_domain(value: Any) -> bool:
    if _is_domain(value):
        return True
    if isinstance(value, Mapping):
        return any(_contains_domain(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_contains_domain(v) for v in value)
    return False


def _domain_choices(value: Any, where: str) -> list | None:
    if not _is_domain(value):
        if callable(value) and not isinstance(value, type):
            raise ValueError(
                f"param_space[{where!r}] is a callable ({value!r}); ray_nasrank only searches "
                "tune.choice/tune.randint entries"
            )
        return None
    from ray.tune.search import sample

    if isinstance(value, sample.Categorical):
        if isinstance(value.sampler, sample.Grid):
            raise ValueError(f"param_space[{where!r}] is tune.grid_search; use tune.choice instead")
        cats = list(value.categories)
        if any(_contains_domain(c) for c in cats):
            raise ValueError(f"param_space[{where!r}]: tune.choice of Tune domains (conditional spaces) is not supported")
        return cats
    if isinstance(value, sample.Integer):
        sampler = value.get_sampler()
        q = getattr(sampler, "q", 1) if isinstance(sampler, sample.Quantized) else 1
        inner = sampler.sampler if isinstance(sampler, sample.Quantized) else sampler
        if not isinstance(inner, sample.Uniform):
            raise ValueError(
                f"param_space[{where!r}] is a log-scaled integer domain; use tune.choice over "
                "explicit values"
            )
        lo, hi = int(value.lower), int(value.upper)
        if isinstance(sampler, sample.Quantized):
            # Tune's qrandint includes its upper bound
            values = list(range(lo, hi + 1, int(q)))
        else:
            values = list(range(lo, hi))
        if not values:
            raise ValueError(f"param_space[{where!r}] is an empty integer range [{lo}, {hi})")
        if len(values) > 10_000:
            raise ValueError(f"param_space[{where!r}] has {len(values)} integer values; at most 10,000 are supported")
        return values
    kind = type(value).__name__
    raise ValueError(
        f"param_space[{where!r}] is a Tune {kind} domain ({value!r}); ray_nasrank searches only "
        "categorical spaces: use tune.choice or tune.randint"
    )
