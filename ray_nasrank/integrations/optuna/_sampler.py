"""NASRankSampler: an Optuna sampler whose parameters come from a ray_nasrank search strategy.

With no arguments it works in a plain define-by-run objective: like
``TPESampler(multivariate=True, group=True)`` it infers its *relative* search space from the
study's completed trials (``suggest_categorical``, ``suggest_int`` and ``suggest_float``, log and
step included), reads a parameter that appears only in some trials as conditional on an earlier
parameter whose values decide it (an inactive parameter is a state of its own, and configs that
differ only in inactive parameters are the same candidate), and asks the strategy for the next
unseen configuration of that space. Parameters it cannot model (first trial, a parameter no
earlier one decides) go to an independent sampler, TPE by default. Given a ``space`` it uses that
space instead (``study.ask(space.to_optuna())``). So ``study.optimize()``,
``study.ask()/study.tell()`` and Ray Tune's ``OptunaSearch(sampler=...)`` all work unchanged.

>>> import optuna
>>> optuna.logging.set_verbosity(optuna.logging.WARNING)
>>> def objective(trial):
...     kind = trial.suggest_categorical("kind", ["linear", "tree"])
...     if kind == "tree":
...         return trial.suggest_int("depth", 1, 8) / 8
...     return trial.suggest_float("c", 1e-3, 1.0, log=True)
>>> study = optuna.create_study(direction="maximize", sampler=NASRankSampler(strategy="random", seed=0))
>>> study.optimize(objective, n_trials=10)
>>> print(study.sampler.space.describe())
kind: choice(['linear', 'tree'])
depth: randint(1, 9)  if kind in ['tree']
c: loguniform(0.001, 1.0)  if kind in ['linear']
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
import warnings
from typing import Any, Callable, Mapping, Sequence

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.samplers import BaseSampler, TPESampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from ray_nasrank.search import Strategy, WeakLabels, make_strategy, strategy_accepts
from ray_nasrank.search._tpe import optuna_distribution
from ray_nasrank.search._weak import WeakSpec
from ray_nasrank.spaces import (
    Arch,
    Categorical,
    CategoricalSpace,
    Condition,
    Decision,
    Domain,
    Float,
    Integer,
    SearchSpace,
)

logger = logging.getLogger(__name__)

#: the system attribute under which Optuna stores a ``constraints_func``'s values
_CONSTRAINTS_KEY = "constraints"

_FINISHED = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)


def _value_of(state: TrialState, values: Sequence[float] | None, number: int | None = None
              ) -> float | list[float] | None:
    """The value the strategy learns from a finished trial: ``None`` (failed) unless it completed
    with finite values; a list with several objectives. A COMPLETE trial with a value that is not
    finite (Optuna accepts ``inf``) is recorded as failed with a warning naming it, as the Tune
    searcher does."""
    if state != TrialState.COMPLETE or not values:
        return None
    vals = [float(v) for v in values]
    if not all(math.isfinite(v) for v in vals):
        warnings.warn(f"trial {number} returned {vals if len(vals) > 1 else vals[0]!r}, not a finite number; its "
                      "architecture is recorded as failed", stacklevel=3)
        return None
    return vals[0] if len(vals) == 1 else vals


def _trial_constraints(trial: FrozenTrial) -> dict[str, float]:
    """A trial's constraint values by key, as Optuna 5's ``FrozenTrial.constraints`` reads them
    (``trial.set_constraint`` keys, and the list a ``constraints_func`` stored under keys "0", "1"...),
    also under Optuna 4 (the list only)."""
    attrs = trial.system_attrs
    out: dict[str, float] = {}
    old = attrs.get(_CONSTRAINTS_KEY)
    if old is not None:
        out.update({str(i): c for i, c in enumerate(old)})
    prefix = f"{_CONSTRAINTS_KEY}:"
    out.update({k[len(prefix):]: v for k, v in attrs.items() if k.startswith(prefix)})
    return out


class _ParamsFunction:
    """A user's ``params -> value`` function as the core's ``archs -> values`` (picklable when it is)."""

    def __init__(self, space: SearchSpace, fn: Any) -> None:
        self.space, self.fn = space, fn

    def __call__(self, archs: Sequence[Arch]) -> list[float]:
        return [float(self.fn(self.space.to_flat_params(a))) for a in archs]


def _curve(trial: FrozenTrial) -> list[tuple[float, float]]:
    """The trial's intermediate values as ``(fidelity, value)``, fidelity = steps done (step + 1,
    Optuna's steps count from 0); a non-finite value is dropped with one warning naming the trial."""
    items = sorted(trial.intermediate_values.items())
    bad = [step for step, v in items if not math.isfinite(v)]
    if bad:
        warnings.warn(f"trial {trial.number} reported a non-finite intermediate value at step(s) {bad}; "
                      "those values are dropped", stacklevel=4)
    return [(float(step) + 1.0, float(v)) for step, v in items if math.isfinite(v)]


def _whole_study(study: Study) -> Study:
    """The study itself: ``HyperbandPruner`` hands samplers one bracket's view of it
    (``optuna.pruners._filter_study``); the strategy learns from every bracket's trials, ranked
    per fidelity, so it reads the whole study."""
    return getattr(study, "_study", study) if hasattr(study, "_bracket_id") else study


def domain_of(dist: BaseDistribution) -> Domain:
    """The ray_nasrank domain of an Optuna distribution.

    Args:
        dist: a categorical, int or float Optuna distribution.

    Returns:
        The matching :class:`~ray_nasrank.spaces.Categorical`, :class:`~ray_nasrank.spaces.Integer`
        or :class:`~ray_nasrank.spaces.Float` (same bounds, step and log scale).

    Raises:
        TypeError: any other distribution.
    """
    if isinstance(dist, CategoricalDistribution):
        return Categorical(tuple(dist.choices))
    if isinstance(dist, IntDistribution):
        return Integer(dist.low, dist.high, step=dist.step, log=dist.log)
    if isinstance(dist, FloatDistribution):
        return Float(dist.low, dist.high, step=dist.step, log=dist.log)
    raise TypeError(f"no ray_nasrank domain for {dist!r}")


def _path(name: str) -> tuple[str, ...]:
    # Tune's OptunaSearch flattens nested keys to "a/b": the decision's path, whose name is "a/b" again
    parts = tuple(name.split("/"))
    if not all(parts):
        raise ValueError(f"parameter name {name!r} has an empty part between '/'; rename it")
    return parts


def infer_space(trials: Sequence[FrozenTrial]) -> SearchSpace | None:
    """The space the completed ``trials`` of a define-by-run objective describe, or ``None``.

    Parameters appear in order of first suggestion. One that is absent from some trials is
    conditional on the nearest earlier categorical or integer parameter present whenever it is
    (and in more trials: a sibling of its branch does not decide it), suggested before it in every
    trial that has both (the objective's code decides a branch before entering it) and whose values tell
    exactly when it appears (the one needing the fewest values, then the one with fewest states); a parameter no earlier one explains is left
    out (the independent sampler handles it). Two trials declaring one parameter with different
    distributions raise ``ValueError`` naming the parameter and both distributions.

    Args:
        trials: completed trials of one study.

    Returns:
        The inferred :class:`~ray_nasrank.spaces.SearchSpace` (one decision per kept parameter,
        path split at ``/``), or ``None`` without trials or when no parameter is kept.

    Raises:
        ValueError: a parameter declared with two distributions, or a name with an empty part
            between ``/``.
    """
    trials = sorted(trials, key=lambda t: t.number)
    if not trials:
        return None
    order: dict[str, tuple[int, int]] = {}
    dists: dict[str, tuple[BaseDistribution, int]] = {}
    for t in trials:
        for pos, (name, dist) in enumerate(t.distributions.items()):
            order.setdefault(name, (t.number, pos))
            seen = dists.setdefault(name, (dist, t.number))
            if seen[0] != dist:
                raise ValueError(
                    f"parameter {name!r} is declared as {seen[0]} in trial {seen[1]} and as {dist} in trial "
                    f"{t.number}; NASRankSampler needs one distribution per name: give the two a different name")
    names = sorted(order, key=order.__getitem__)
    # where each parameter was suggested within each trial: code decides a branch before entering it
    where = [{n: j for j, n in enumerate(t.distributions)} for t in trials]
    present = {n: [n in w for w in where] for n in names}
    decisions: list[Decision] = []
    kept: set[str] = set()
    for i, name in enumerate(names):
        domain = domain_of(dists[name][0])
        if all(present[name]):
            decisions.append(Decision(_path(name), domain))
            kept.add(name)
            continue
        cond, best = None, (0, 0)
        for parent in reversed(names[:i]):
            pdom = domain_of(dists[parent][0])
            if parent not in kept or pdom.size == float("inf"):
                continue
            if not all(present[parent][k] for k, here in enumerate(present[name]) if here):
                continue
            if present[parent] == present[name]:
                continue  # a sibling of the same branch, not what decides it
            if any(where[k][parent] > where[k][name] for k, here in enumerate(present[name]) if here):
                continue  # suggested after it in some trial: it cannot have decided the branch
            values = {trials[k].params[parent] for k, here in enumerate(present[name]) if here}
            # exact: whenever the parent holds one of these values the parameter is there
            if all(present[name][k] for k, t in enumerate(trials)
                   if present[parent][k] and t.params[parent] in values):
                # the simplest explanation wins: fewest deciding values, then the parent with fewest
                # states (n_layers in [2, 3], not a width that happens to split the trials), then the nearest
                rank = (len(values), pdom.size)
                if cond is None or rank < best:
                    cond, best = Condition(parent, tuple(sorted(values, key=repr))), rank
        if cond is not None:
            decisions.append(Decision(_path(name), domain, cond))
            kept.add(name)
    return SearchSpace(decisions, name="optuna") if decisions else None


class NASRankSampler(BaseSampler):
    """Fill a study's parameters from a :mod:`ray_nasrank.search` strategy.

    Args:
        space: ``None`` (default) to infer the space from the study's completed trials (or to
            take a ``Strategy`` instance's own space), or a
            :class:`~ray_nasrank.spaces.SearchSpace` (or a dict of choice lists and domains) to
            search exactly that space.
        strategy: a strategy name (``"nasrank"``, ``"random"``, ``"rea"``, ``"opdist"``...) or a
            :class:`~ray_nasrank.search.Strategy` (which searches its own space); its mode must
            match the study's direction.
        strategy_kwargs: constructor arguments of a named strategy (``candidates``, ``batch_size``...).
        weak: weak labels for a named strategy that takes them: a
            :class:`~ray_nasrank.search.WeakLabels` (labels you have, your model family's
            zero-cost proxies with ``model_fn(config) -> nn.Module`` and
            ``config = space.to_config(arch)``, a trained supernet's labels) or the labels alone.
        independent_sampler: samples what the space does not hold (default
            ``TPESampler(seed=seed)``).
        seed: seed of a named strategy and of the default independent sampler.
        ready_timeout_s: how long ``sample_relative`` waits for a strategy that is refitting.
        torch_threads: torch threads for the predictor's refits (default 1, restored after).
        constraints_func: Optuna 4's way to give constraints, as its samplers take it: a function
            ``FrozenTrial -> sequence of floats`` (``<= 0`` feasible) run after each COMPLETE or
            PRUNED trial, its values stored where ``study.best_trials`` reads them. Constraints
            set with ``trial.set_constraint`` (Optuna 5) are read without it. Either way the
            strategy learns which configs are feasible from them.
        known_objectives: objectives computable without training, by position in ``directions``:
            a function ``params -> float`` or a name the space computes (``"params"``, ``"flops"``
            on NB201); the ``nasrank`` strategy computes them for every candidate instead of
            predicting them.
        known_constraints: constraints computable without training, by key (the
            ``set_constraint`` key; ``"0"``, ``"1"``... for the values of ``constraints_func``): a
            function ``params -> float`` (``<= 0`` feasible) or a space's name; candidates they rule
            out are never proposed, and the trial's value for that key need not be set.

    Pruners: a trial's intermediate values (``trial.report(value, step)``) are told to the strategy
    as its learning curve at fidelity ``step + 1``, for COMPLETE and PRUNED trials alike; a COMPLETE
    trial's value is its full-fidelity result, a PRUNED trial stays a partial observation (never a
    final result; docs/concepts/fidelity.md). A non-finite intermediate value is dropped with one
    warning naming the trial. Under ``HyperbandPruner``, which shows samplers one bracket of the
    study, the strategy still learns from every bracket's trials.

    Finished trials this sampler did not propose (``study.add_trial``, enqueued points, other
    workers of a shared storage) are told to the strategy as warm-start results before the next
    proposal, so they are never proposed again. When the inferred space grows (a conditional
    branch appears), the strategy is rebuilt on the new space and told every finished trial.
    """

    def __init__(self, space: SearchSpace | Mapping[str, Any] | None = None, *, strategy: str | Strategy = "nasrank",
                 strategy_kwargs: Mapping[str, Any] | None = None, weak: WeakLabels | WeakSpec = None,
                 independent_sampler: BaseSampler | None = None, seed: int | None = None,
                 ready_timeout_s: float = 600.0, torch_threads: int | None = 1,
                 constraints_func: Callable[[FrozenTrial], Sequence[float]] | None = None,
                 known_objectives: Mapping[int, Any] | None = None,
                 known_constraints: Mapping[str, Any] | None = None) -> None:
        if isinstance(space, Mapping):
            space = SearchSpace(space, name="columns") if _has_domain(space) else CategoricalSpace(space)
        if space is not None and not isinstance(space, SearchSpace):
            raise TypeError(f"space must be None, a SearchSpace or a dict of choice lists, got {type(space).__name__}")
        if isinstance(strategy, Strategy):
            if space is None:
                space = strategy.space  # a strategy searches its own space
            elif strategy.space != space:
                raise ValueError(f"the strategy searches {strategy.space!r}, not {space!r}")
            if weak is not None:
                raise ValueError("weak= feeds a strategy the sampler builds; a Strategy instance has its weak labels already")
        elif isinstance(strategy, str):
            from ray_nasrank.search import STRATEGIES

            if strategy not in STRATEGIES:
                raise ValueError(f"unknown strategy {strategy!r}; choose from {sorted(STRATEGIES)}")
        else:
            raise TypeError(f"strategy must be a strategy name or a Strategy, got {type(strategy).__name__}")
        if independent_sampler is not None and not isinstance(independent_sampler, BaseSampler):
            raise TypeError(f"independent_sampler must be an optuna sampler, got {type(independent_sampler).__name__}")
        if torch_threads is not None and (isinstance(torch_threads, bool) or not isinstance(torch_threads, int)
                                          or torch_threads < 1):
            raise ValueError(f"torch_threads must be an int >= 1 or None, got {torch_threads!r}")
        kwargs = dict(strategy_kwargs or {})
        if weak is not None and isinstance(strategy, str):
            if not strategy_accepts(strategy, "weak"):
                raise ValueError(f"weak= feeds a strategy that takes weak labels (e.g. 'nasrank'), not {strategy!r}")
            weak = WeakLabels.of(weak)
            if "weak" in kwargs:
                if weak.given is not None:
                    raise ValueError("weak labels given both as weak= and in strategy_kwargs['weak']; give them once")
                weak = dataclasses.replace(weak, given=kwargs.pop("weak"))
            kwargs["weak"] = weak
        if constraints_func is not None and not callable(constraints_func):
            raise TypeError(f"constraints_func must be a function FrozenTrial -> sequence of floats, got {constraints_func!r}")
        known_objectives = dict(known_objectives or {})
        known_constraints = {str(k): v for k, v in dict(known_constraints or {}).items()}
        for what, spec in (("known_objectives", known_objectives), ("known_constraints", known_constraints)):
            bad = [k for k, v in spec.items() if not (callable(v) or isinstance(v, str))]
            if bad:
                raise TypeError(f"{what}[{bad[0]!r}] must be a function params -> float or a name the space "
                                f"computes, got {spec[bad[0]]!r}")
        if (known_objectives or known_constraints) and not (
                isinstance(strategy, str) and strategy_accepts(strategy, "known_objectives")):
            raise ValueError(f"known_objectives= and known_constraints= are used by the 'nasrank' strategy, not {strategy!r}")
        self._constraints_func = constraints_func
        self._known_objectives = known_objectives
        self._known_constraints = known_constraints
        self._constraint_keys: list[str] = list(known_constraints)  # known ones first, then as first told
        self._fixed_space = space
        self.space: SearchSpace | None = space
        self._strategy_spec = strategy
        self._strategy_kwargs = kwargs
        self._strategy: Strategy | None = strategy if isinstance(strategy, Strategy) else None
        self._seed = seed
        self._torch_threads = torch_threads
        self._independent = independent_sampler or TPESampler(seed=seed)
        self._ready_timeout_s = float(ready_timeout_s)
        self._trial_arch: dict[tuple[int, int], Arch] = {}   # (study id, trial number) -> proposed arch
        self._done: set[tuple[int, int]] = set()              # trials already told to the strategy
        self._claimed: dict[tuple[int, int], Arch] = {}       # running trials of others, pending
        self._inferred_at: tuple[int, int] | None = None      # (study id, completed trials) of self.space
        self._ran_out = False
        self._lock = threading.RLock()                         # study.optimize(n_jobs>1)

    # ------------------------------------------------------------------ space and strategy
    @property
    def strategy(self) -> Strategy | None:
        """The strategy (built at the first trial that has a space, when the study's direction is known)."""
        return self._strategy

    def _current_space(self, study: Study) -> SearchSpace | None:
        if self._fixed_space is not None:
            return self._fixed_space
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        key = (study._study_id, len(complete))
        if self._inferred_at != key:
            space = infer_space(complete)
            self._inferred_at = key
            if space != self.space:
                self.space = space
                self._strategy = None  # rebuilt on the new space, with every finished trial told
                self._trial_arch.clear()
                self._done.clear()
                self._claimed.clear()
                self._ran_out = False
        return self.space

    def _get_strategy(self, study: Study) -> Strategy:
        modes = ["max" if d == StudyDirection.MAXIMIZE else "min" for d in study.directions]
        mode: str | tuple[str, ...] = modes[0] if len(modes) == 1 else tuple(modes)
        if self._strategy is None:
            kwargs = {"mode": mode if isinstance(mode, str) else list(mode), **self._strategy_kwargs}
            if isinstance(kwargs.get("weak"), WeakLabels):  # resolved on the space (configs: space.to_config)
                kwargs["weak"] = kwargs["weak"].resolve(self.space)
            if "torch_threads" not in kwargs and strategy_accepts(self._strategy_spec, "torch_threads"):
                kwargs["torch_threads"] = self._torch_threads
            bad = [i for i in self._known_objectives if isinstance(i, bool) or not isinstance(i, int)
                   or not 0 <= i < len(modes)]
            if bad:
                raise ValueError(f"known_objectives key {bad[0]!r} is not an objective position of this study "
                                 f"(0 .. {len(modes) - 1}, as in directions)")
            if self._known_objectives:
                kwargs["known_objectives"] = {i: self._quantity(q) for i, q in self._known_objectives.items()}
            if self._known_constraints:
                kwargs["known_constraints"] = {self._constraint_keys.index(k): self._quantity(q)
                                               for k, q in self._known_constraints.items()}
            self._strategy = make_strategy(self._strategy_spec, self.space, seed=self._seed, **kwargs)
        if tuple(self._strategy.modes) != tuple(modes):
            study_is = (f"study is {study.directions[0].name.lower()}d" if len(modes) == 1 else
                        f"study's directions are {[d.name.lower() for d in study.directions]}")
            raise ValueError(f"the strategy has mode={self._strategy.mode!r} but the {study_is}")
        return self._strategy

    def _quantity(self, q: Any) -> Any:
        """A known quantity for the core: a space's name as it is, a ``params -> float`` function wrapped."""
        return q if isinstance(q, str) else _ParamsFunction(self.space, q)

    def _constraints_of(self, study: Study, trial: FrozenTrial, state: TrialState) -> list[float | None] | None:
        """The trial's constraint vector in the order of ``_constraint_keys`` (``None``: it has none).

        Runs ``constraints_func`` on COMPLETE and PRUNED trials, as Optuna's samplers do, and stores
        its values where Optuna reads them (``study.best_trials``, ``FrozenTrial.constraints``).
        """
        found = _trial_constraints(trial)
        if self._constraints_func is not None and state in (TrialState.COMPLETE, TrialState.PRUNED):
            try:
                con = self._constraints_func(trial)
            except Exception as e:
                raise ValueError(f"constraints_func raised on trial {trial.number}: {type(e).__name__}: {e}") from e
            if isinstance(con, (str, bytes)) or not isinstance(con, Sequence) and not hasattr(con, "__len__"):
                raise ValueError(f"constraints_func returned {con!r} for trial {trial.number}; "
                                 "it must return a sequence of floats (<= 0 feasible)")
            con = list(con)
            first = self.__dict__.setdefault("_func_len", len(con))
            if len(con) != first:
                raise ValueError(f"constraints_func returned {len(con)} values for trial {trial.number} but "
                                 f"{first} for earlier trials; it must return the same number every time")
            for i, c in enumerate(con):
                if not _is_number(c) or c != c:
                    raise ValueError(f"constraints_func returned {c!r} as value {i} for trial {trial.number}; "
                                     "constraint values must be numbers, not NaN")
            con = [float(c) for c in con]
            study._storage.set_trial_system_attr(trial._trial_id, _CONSTRAINTS_KEY, tuple(con))
            found.update({str(i): c for i, c in enumerate(con)})
        for k, c in found.items():
            if not _is_number(c) or c != c:
                raise ValueError(f"constraint {k!r} of trial {trial.number} is {c!r}; constraint values must be "
                                 "numbers, not NaN")
        if not found:
            return None  # none set: feasible, as Optuna reads it (known constraints are computed)
        for k in found:
            if k not in self._constraint_keys:
                if self._strategy is not None and self._strategy.n_constraints is not None:
                    raise ValueError(f"trial {trial.number} has constraint {k!r}, which earlier trials did not "
                                     f"have ({self._constraint_keys}); set the same constraints in every trial")
                self._constraint_keys.append(k)
        missing = [k for k in self._constraint_keys if k not in found and k not in self._known_constraints]
        if missing and state != TrialState.COMPLETE:
            return None  # a trial that stopped before setting them all: its values teach nothing about them
        if missing:
            raise ValueError(f"trial {trial.number} has no value for constraint(s) {missing} that earlier trials "
                             "set; set the same constraints in every trial")
        return [float(found[k]) if k in found else None for k in self._constraint_keys]

    def _arch_from_params(self, params: Mapping[str, Any]) -> Arch | None:
        if self.space is None:
            return None
        try:
            return self.space.from_config(params)
        except ValueError:
            return None

    def _key(self, study: Study, number: int) -> tuple[int, int]:
        return (study._study_id, number)

    def _sync(self, study: Study, strategy: Strategy) -> None:
        """Tell the strategy about trials it did not propose (warm starts, other workers, trials
        in flight when the driver restarted): finished ones as results, running ones with every
        parameter of the space as pending, so they are never proposed again."""
        for t in study.get_trials(deepcopy=False, states=(*_FINISHED, TrialState.RUNNING)):
            key = self._key(study, t.number)
            if key in self._done or key in self._trial_arch:
                continue
            arch = self._arch_from_params(t.params)
            if t.state == TrialState.RUNNING:
                if arch is not None and key not in self._claimed and strategy.claim(arch):
                    self._claimed[key] = arch
                continue
            self._done.add(key)
            claimed = self._claimed.pop(key, None)
            cons = self._stored_constraints(t)
            if claimed is not None and strategy.status(claimed) == "pending":
                self._tell_finished(strategy, claimed, t.state, t.values, t, constraints=cons)
                continue
            if arch is None or strategy.status(arch) in ("ok", "failed", "pending", "partial"):
                continue
            self._tell_finished(strategy, arch, t.state, t.values, t, warm=True, constraints=cons)

    @staticmethod
    def _tell_finished(strategy: Strategy, arch: Arch, state: TrialState, values: Sequence[float] | None,
                       trial: FrozenTrial, warm: bool = False, constraints: Any = None) -> None:
        """Tell a finished trial: its intermediate values as a learning curve, then a COMPLETE
        trial's value at full fidelity; a PRUNED trial stays a partial observation (a failure
        only if it reported nothing). ``constraints`` go with the last result told."""
        tell = strategy.add_evaluated if warm else strategy.tell
        curve = _curve(trial) if state != TrialState.FAIL else []
        for fidelity, v in curve:
            if strategy.status(arch) in ("ok", "failed"):
                break  # reached the strategy's max_fidelity: that was its full-fidelity result
            tell(arch, v, fidelity=fidelity)
        if state == TrialState.PRUNED and curve or strategy.status(arch) in ("ok", "failed"):
            return
        value = _value_of(state, values, trial.number)
        tell(arch, value, constraints=constraints)

    def _stored_constraints(self, trial: FrozenTrial) -> list[float | None] | None:
        """The constraint vector of a finished trial someone else ran (what it has stored)."""
        found = _trial_constraints(trial)
        if not found:
            return None
        if any(k not in self._constraint_keys for k in found) or any(
                k not in found and k not in self._known_constraints for k in self._constraint_keys):
            return None  # another shape than this study's trials: learn its value, not its feasibility
        return [float(found[k]) if k in found else None for k in self._constraint_keys]

    def _check_declarations(self, trial: FrozenTrial) -> None:
        """A parameter the objective declared unlike the given space: name both distributions."""
        if self._fixed_space is None:
            return
        ours = {d.name: optuna_distribution(d.domain) for d in self._fixed_space.decisions}
        for name, dist in trial.distributions.items():
            if name in ours and type(ours[name]) is not type(dist):
                raise ValueError(f"parameter {name!r} is declared as {dist} in trial {trial.number} but the "
                                 f"sampler's space has {ours[name]}; declare it alike in both (or pass no space)")

    # ------------------------------------------------------------------ BaseSampler
    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        study = _whole_study(study)
        with self._lock:
            space = self._current_space(study)
        if space is None:
            return {}
        return {d.name: optuna_distribution(d.domain) for d in space.decisions}

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if not search_space:
            return {}
        study = _whole_study(study)
        with self._lock:
            if self.space is None:
                return {}
            strategy = self._get_strategy(study)
            self._sync(study, strategy)
            fixed_params = trial.system_attrs.get("fixed_params", {})
            fixed = self._arch_from_params(fixed_params)
            if fixed is not None:
                # an enqueued configuration: Optuna uses the fixed values, the strategy learns the result
                self._trial_arch[self._key(study, trial.number)] = fixed
                return {}
            if any(d.name in fixed_params for d in self.space.decisions):
                # enqueued values that are no configuration of the space: Optuna evaluates them as given,
                # so proposing something would only attribute their result to the proposal
                return {}
            deadline = time.monotonic() + self._ready_timeout_s
            while not strategy.ready:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"strategy not ready after {self._ready_timeout_s} s")
                time.sleep(0.02)
            arch = self._ask_expressible(strategy)
            if arch is None:
                if not self._ran_out:
                    self._ran_out = True
                    logger.info("NASRankSampler: every configuration of %r was tried; the independent sampler "
                                "fills the next trials (repeats possible)", self.space)
                return {}
            self._trial_arch[self._key(study, trial.number)] = arch
            return self.space.to_flat_params(arch)

    def _ask_expressible(self, strategy: Strategy) -> Arch | None:
        """The strategy's next proposal, within the distributions this sampler declares to Optuna.

        A normal domain is unbounded but declared as ``mean +- 4 sd``; Optuna would hand a value
        outside it to the independent sampler (off the domain's step). Such a proposal is
        recorded as failed and its nearest value inside is proposed instead.
        """
        for _ in range(100):
            archs = strategy.ask(1)
            if not archs:
                return None
            fitted = _inside_declared(self.space, archs[0])
            if fitted == archs[0]:
                return fitted
            strategy.tell(archs[0], None)  # not expressible in the study
            if strategy.claim(fitted):
                return fitted
        return None

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._independent.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self._independent.before_trial(study, trial)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._independent.after_trial(study, trial, state, values)
        study = _whole_study(study)
        with self._lock:
            self._check_declarations(trial)
            cons = self._constraints_of(study, trial, state)
            key = self._key(study, trial.number)
            proposed = self._trial_arch.pop(key, None)
            self._claimed.pop(key, None)  # told below like any pending arch
            if key in self._done or self.space is None:
                return
            self._done.add(key)
            actual = self._arch_from_params(trial.params)
            if proposed is None and actual is None:
                names = [d.name for d in self.space.decisions if d.name in trial.params]
                if names:  # it left the space (e.g. an enqueued value outside a domain): say so once
                    try:
                        self.space.from_config(trial.params)
                    except ValueError as e:
                        warnings.warn(f"trial {trial.number} is not a configuration of the sampler's space ({e}); "
                                      "the strategy does not learn from it", stacklevel=2)
                return
            strategy = self._get_strategy(study)
            self._sync(study, strategy)  # enqueued trials skip sample_relative: sync here too
            if proposed is not None and actual != proposed:
                if actual is not None:
                    # the user overrode the proposal: release it as failed rather than leave it pending
                    warnings.warn(f"trial {trial.number} evaluated {self.space.to_string(actual)!r} instead of the "
                                  f"proposed {self.space.to_string(proposed)!r}", stacklevel=2)
                    strategy.tell(proposed, None)
                else:
                    self._tell_finished(strategy, proposed, state, values, trial, constraints=cons)
                    return
            arch = actual if actual is not None else proposed
            if strategy.status(arch) in ("ok", "failed", "partial"):
                return  # a repeat (e.g. filled by the independent sampler after the space ran out)
            self._tell_finished(strategy, arch, state, values, trial, constraints=cons)

    def reseed_rng(self) -> None:
        self._independent.reseed_rng()

    # ------------------------------------------------------------------ pickling (OptunaSearch saves it)
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        del state["_lock"]
        if self._strategy is not None:
            state["_strategy"] = self._strategy.state_dict()
            if state["_strategy_spec"] is self._strategy:
                state["_strategy_spec"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        strategy_state = state.pop("_strategy", None)
        self.__dict__.update(state)
        self.__dict__.setdefault("_claimed", {})  # pickled before running trials were claimed
        self._strategy = None if strategy_state is None else Strategy.from_state_dict(strategy_state)
        for name, default in (("_constraints_func", None), ("_known_objectives", {}), ("_known_constraints", {}),
                              ("_constraint_keys", [])):
            self.__dict__.setdefault(name, default)
        if self._strategy is not None and self.space is not None:
            # a state holds data only: the functions among the known quantities come from this sampler
            args = {}
            kc = {self._constraint_keys.index(k): self._quantity(q) for k, q in self._known_constraints.items()
                  if not isinstance(q, str)}
            ko = {i: self._quantity(q) for i, q in self._known_objectives.items() if not isinstance(q, str)}
            if kc:
                args["known_constraints"] = kc
            if ko:
                args["known_objectives"] = ko
            if args:
                self._strategy.attach_known(**args)
        if self._strategy_spec is None:
            self._strategy_spec = self._strategy
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        name = self._strategy_spec if isinstance(self._strategy_spec, str) else type(self._strategy_spec).__name__
        space = "inferred from the study" if self._fixed_space is None else repr(self._fixed_space)
        return f"NASRankSampler(space={space}, strategy={name!r})"


def _inside_declared(space: SearchSpace, arch: Arch) -> Arch:
    """``arch`` with each normal value moved inside its declared ``mean +- 4 sd`` (on its step)."""
    from ray_nasrank.spaces import Normal

    out = list(arch)
    for i, d in enumerate(space.decisions):
        dom, v = d.domain, out[i]
        if not isinstance(dom, Normal) or not isinstance(v, (int, float)):
            continue
        lo, hi = dom.mean - 4 * dom.sd, dom.mean + 4 * dom.sd
        if lo <= v <= hi:
            continue
        v = min(max(v, lo), hi)
        if dom.step is not None:
            v = round(v / dom.step) * dom.step
            v = v - dom.step if v > hi else v + dom.step if v < lo else v
        out[i] = float(v)
    return space.validate(tuple(out))


def _is_number(x: Any) -> bool:
    import numbers

    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _has_domain(spec: Mapping) -> bool:
    return any(_has_domain(v) if isinstance(v, Mapping) else isinstance(v, Domain) for v in spec.values())


__all__ = ["NASRankSampler", "infer_space", "domain_of"]
