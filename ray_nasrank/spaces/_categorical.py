"""Generic categorical spaces, and any space read from a Ray Tune ``param_space``."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ray_nasrank._state import state_class

from ._base import Decision, SearchSpace
from ._domains import Categorical, Float, Integer, Normal


@state_class(skip=("_parent_idx",))
class CategoricalSpace(SearchSpace):
    """A product of categorical decisions at arbitrary nested paths.

    Args:
        spec: as for :class:`SearchSpace`; every decision must be categorical.

    Raises:
        ValueError: a numeric decision (use :class:`SearchSpace`), or as for :class:`SearchSpace`.
        TypeError: as for :class:`SearchSpace`.

    >>> space = CategoricalSpace({"block": {"kernel": [3, 5], "width": [16, 32, 64]}})
    >>> space.size
    6
    >>> space.to_config((5, 32))
    {'block': {'kernel': 5, 'width': 32}}
    """

    name = "columns"

    def __init__(self, spec: Mapping[str, Any] | Sequence[Decision]) -> None:
        super().__init__(spec)
        numeric = [d.name for d in self.decisions if not d.categorical]
        if numeric:
            raise ValueError(f"CategoricalSpace holds categorical decisions only, not {numeric}; use SearchSpace")

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


_FN_TOKEN = "__fn_ph"


def space_from_tune(param_space: Mapping[str, Any]) -> tuple[SearchSpace, dict]:
    """Split a Tune ``param_space`` into a search space and the constant part of the config.

    Every Tune domain is converted here, nested in dicts at any depth: ``choice``, ``randint``,
    ``lograndint``, ``qrandint``, ``qlograndint`` (integers; Tune's ``randint`` excludes its upper
    bound, its q-forms include it), ``uniform``, ``loguniform``, ``quniform``, ``qloguniform``,
    ``randn`` and ``qrandn``. A space of ``tune.choice`` entries only is a
    :class:`CategoricalSpace`, any other a :class:`SearchSpace`. No space is recognised by its
    shape: to search NB201 as NB201 (its encodings and intrinsic labels), pass ``NB201Space()``
    to the searcher or sampler (``NB201Space().to_tune()`` writes it for Tune). What a searcher
    cannot fill (``tune.sample_from`` and the ``('__fn_ph', ...)`` placeholders Tune puts in its
    place, ``grid_search``, domains inside lists) raises one ``ValueError`` naming every
    offending key and the fix: left unfilled, Tune would sample it outside the search.

    Args:
        param_space: a Tune ``param_space`` (nested dicts of Tune domains and constants).

    Returns:
        ``(space, constants)``: the search space over the Tune domains, and the nested dict of
        every other entry (passed to trials as is).

    Raises:
        ValueError: ``param_space`` is not a dict, has no Tune domain, or holds entries a
            searcher cannot fill (the message names each key and the fix).

    >>> from ray import tune
    >>> space, constants = space_from_tune({"lr": tune.loguniform(1e-4, 1e-1), "act": tune.choice(["relu", "gelu"]), "epochs": 3})
    >>> [repr(d.domain) for d in space.decisions], constants
    (['loguniform(0.0001, 0.1)', "choice(['relu', 'gelu'])"], {'epochs': 3})
    """
    if not isinstance(param_space, Mapping):
        raise ValueError(f"param_space must be a dict, got {type(param_space).__name__}")
    decisions: list[Decision] = []
    constants: dict = {}
    problems: list[str] = []
    _walk_tune(param_space, (), decisions, constants, problems)
    if problems:
        raise ValueError(f"param_space has {len(problems)} entr{'y' if len(problems) == 1 else 'ies'} "
                         "ray_nasrank cannot search:\n  " + "\n  ".join(problems))
    if not decisions:
        raise ValueError("param_space has no Tune domain (tune.choice, tune.uniform, ...) to search over")
    if all(d.categorical for d in decisions):
        return CategoricalSpace(decisions), constants
    return SearchSpace(decisions), constants


def _walk_tune(spec: Mapping, prefix: tuple[str, ...], decisions: list, constants: dict, problems: list) -> None:
    for key, value in spec.items():
        if not isinstance(key, str):
            problems.append(f"{key!r} under {'/'.join(prefix) or '<root>'}: keys must be strings")
            continue
        path = prefix + (key,)
        where = "/".join(path)
        if "/" in key:
            problems.append(f"{where!r}: contains '/', which Tune uses as a separator; rename the key")
            continue
        if isinstance(value, Mapping):
            if set(value.keys()) == {"grid_search"}:
                problems.append(f"{where!r}: tune.grid_search cannot be searched; use tune.choice over the same values")
                continue
            sub: dict = {}
            _walk_tune(value, path, decisions, sub, problems)
            if sub:
                constants[key] = sub
            continue
        try:
            domain = _domain(value)
        except ValueError as e:
            problems.append(f"{where!r}: {e}")
            continue
        if domain is None:
            if _contains_unfillable(value):
                problems.append(f"{where!r}: a list holding Tune domains or sample_from entries; encode it as a "
                                "dict of named entries (e.g. {'e1_0': tune.choice(OPS), ...})")
            else:
                constants[key] = value
        else:
            decisions.append(Decision(path, domain))


def _is_domain(value: Any) -> bool:
    return type(value).__module__.startswith("ray.tune.search.sample")


def holds_tune_domain(param_space: Mapping[str, Any]) -> bool:
    """Whether ``param_space`` (nested dicts at any depth) holds a Tune domain, i.e. is a Tune
    ``param_space`` for :func:`space_from_tune` rather than a dict of choice lists.

    Args:
        param_space: a dict of choice lists, constants or Tune domains, nested at any depth.

    Returns:
        True when any value (at any depth) is a Tune domain.

    >>> from ray import tune
    >>> holds_tune_domain({"net": {"lr": tune.loguniform(1e-4, 1e-1)}}), holds_tune_domain({"w": [8, 16]})
    (True, False)
    """
    return any(holds_tune_domain(v) if isinstance(v, Mapping) else _is_domain(v) for v in param_space.values())


def _is_fn_placeholder(value: Any) -> bool:
    return isinstance(value, (tuple, list)) and len(value) == 2 and value[0] == _FN_TOKEN


def _contains_unfillable(value: Any) -> bool:
    if _is_domain(value) or _is_fn_placeholder(value):
        return True
    if isinstance(value, Mapping):
        return any(_contains_unfillable(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_contains_unfillable(v) for v in value)
    return False


_SAMPLE_FROM_FIX = ("tune.sample_from is sampled by Tune outside any searcher; write it as a domain "
                    "(tune.choice([...]), tune.randint(lo, hi), tune.loguniform(lo, hi), ...)")


def _domain(value: Any):
    """The ray_nasrank domain of one Tune value, ``None`` for a constant, ``ValueError`` if unsearchable."""
    if _is_fn_placeholder(value):
        return _raise(f"tune.sample_from (handed to searchers as {value!r}) " + _SAMPLE_FROM_FIX[len("tune.sample_from "):])
    if not _is_domain(value):
        if callable(value) and not isinstance(value, type):
            return _raise(f"a callable ({value!r}) cannot be searched; use a Tune domain such as tune.choice")
        return None
    from ray.tune.search import sample

    if isinstance(value, sample.Function):
        return _raise(_SAMPLE_FROM_FIX)
    sampler = value.get_sampler()
    q = sampler.q if isinstance(sampler, sample.Quantized) else None
    inner = sampler.sampler if isinstance(sampler, sample.Quantized) else sampler
    if isinstance(value, sample.Categorical):
        if isinstance(sampler, sample.Grid):
            return _raise("tune.grid_search cannot be searched; use tune.choice over the same values")
        cats = list(value.categories)
        if any(_contains_unfillable(c) for c in cats):
            return _raise("tune.choice over Tune domains (a conditional space) is not supported in a param_space; "
                          "build a SearchSpace with Decision(..., condition=Condition(...)) and pass it as space=")
        return Categorical(tuple(cats))
    if isinstance(value, sample.Integer):
        log = isinstance(inner, sample.LogUniform)
        if not (log or isinstance(inner, sample.Uniform)):
            return _raise(f"integer domain with a {type(inner).__name__} sampler is not supported")
        # Tune's randint/lograndint exclude the upper bound; qrandint/qlograndint include it
        high = int(value.upper) if q is not None else int(value.upper) - 1
        return Integer(int(value.lower), high, step=int(q) if q is not None else 1, log=log)
    if isinstance(value, sample.Float):
        if isinstance(inner, sample.Normal):
            return Normal(inner.mean, inner.sd, step=q)
        log = isinstance(inner, sample.LogUniform)
        if not (log or isinstance(inner, sample.Uniform)):
            return _raise(f"float domain with a {type(inner).__name__} sampler is not supported")
        return Float(value.lower, value.upper, step=q, log=log)
    return _raise(f"Tune {type(value).__name__} domain {value!r} is not supported")


def _raise(message: str):
    raise ValueError(message)
