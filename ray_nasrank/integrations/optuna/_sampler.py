"""NASRankSampler: an Optuna sampler whose architecture parameters come from a search strategy.

The architecture's decisions (flat names such as ``"cell/e1_0"``, i.e. ``Decision.name``) are the
sampler's *relative* search space: :meth:`NASRankSampler.sample_relative` asks the strategy for
the next unseen architecture (de-duplicated by isomorphism key) and returns its parameters;
:meth:`NASRankSampler.after_trial` tells the strategy the result. Any other parameter (a learning
rate, a batch size) falls back to an independent sampler. So ``study.ask()/study.tell()``,
``study.optimize()`` and Ray Tune's ``OptunaSearch(sampler=...)`` all work unchanged.

Example::

    import optuna
    from ray_nasrank.spaces import NB201Space
    from ray_nasrank.integrations.optuna import NASRankSampler

    space = NB201Space()
    study = optuna.create_study(direction="maximize",
                                sampler=NASRankSampler(space, strategy="random", seed=0))
    trial = study.ask(space.to_optuna())             # every edge filled by the strategy
    study.tell(trial, evaluate(space.from_config(trial.params)))
"""

from __future__ import annotations

import threading
import time
import warnings
from typing import Any, Mapping, Sequence

from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from ray_nasrank.search import Strategy, make_strategy
from ray_nasrank.spaces import Arch, CategoricalSpace, SearchSpace

_FINISHED = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)


def _value_of(state: TrialState, values: Sequence[float] | None) -> float | None:
    if state != TrialState.COMPLETE or not values:
        return None
    return float(values[0])


class NASRankSampler(BaseSampler):
    """Fill a study's architecture parameters from a :mod:`ray_nasrank.search` strategy.

    Args:
        space: the architecture's :class:`~ray_nasrank.spaces.SearchSpace` (or a dict of
            choice lists, turned into a :class:`~ray_nasrank.spaces.CategoricalSpace`).
        strategy: a strategy name (``"nasrank"``, ``"random"``, ``"rea"``, ``"opdist"``...) or a
            :class:`~ray_nasrank.search.Strategy` on the same space; its mode must match the
            study's direction.
        strategy_kwargs: constructor arguments of a named strategy (``candidates``, ``weak``...).
        independent_sampler: samples every non-architecture parameter (default
            ``RandomSampler(seed)``).
        seed: seed of a named strategy and of the default independent sampler.
        ready_timeout_s: how long ``sample_relative`` waits for a strategy that is refitting.

    Finished trials this sampler did not propose (``study.add_trial``, enqueued points, other
    workers of a shared storage) are told to the strategy as warm-start results before the next
    proposal, so they are never proposed again.
    """

    def __init__(self, space: SearchSpace | Mapping[str, Sequence[Any]], strategy: str | Strategy = "nasrank",
                 strategy_kwargs: Mapping[str, Any] | None = None,
                 independent_sampler: BaseSampler | None = None, seed: int | None = None,
                 ready_timeout_s: float = 600.0) -> None:
        if isinstance(space, Mapping):
            space = CategoricalSpace(space)
        if not isinstance(space, SearchSpace):
            raise TypeError(f"space must be a SearchSpace or a dict of choice lists, got {type(space).__name__}")
        if isinstance(strategy, Strategy):
            if strategy.space != space:
                raise ValueError(f"the strategy searches {strategy.space!r}, not {space!r}")
        elif isinstance(strategy, str):
            from ray_nasrank.search import STRATEGIES

            if strategy not in STRATEGIES:
                raise ValueError(f"unknown strategy {strategy!r}; choose from {sorted(STRATEGIES)}")
        else:
            raise TypeError(f"strategy must be a strategy name or a Strategy, got {type(strategy).__name__}")
        if independent_sampler is not None and not isinstance(independent_sampler, BaseSampler):
            raise TypeError(f"independent_sampler must be an optuna sampler, got {type(independent_sampler).__name__}")
        self.space = space
        self._dists = space.to_optuna()
        self._names = [d.name for d in space.decisions]
        self._strategy_spec = strategy
        self._strategy_kwargs = dict(strategy_kwargs or {})
        self._strategy: Strategy | None = strategy if isinstance(strategy, Strategy) else None
        self._seed = seed
        self._independent = independent_sampler or RandomSampler(seed=seed)
        self._ready_timeout_s = float(ready_timeout_s)
        self._trial_arch: dict[tuple[int, int], Arch] = {}   # (study id, trial number) -> proposed arch
        self._done: set[tuple[int, int]] = set()              # trials already told to the strategy
        self._lock = threading.RLock()                         # study.optimize(n_jobs>1)

    # ------------------------------------------------------------------ strategy
    @property
    def strategy(self) -> Strategy | None:
        """The strategy (built at the first trial, when the study's direction is known)."""
        return self._strategy

    def _get_strategy(self, study: Study) -> Strategy:
        if len(study.directions) != 1:
            raise ValueError("NASRankSampler supports single-objective studies only, got "
                             f"{len(study.directions)} objectives")
        mode = "max" if study.direction == StudyDirection.MAXIMIZE else "min"
        if self._strategy is None:
            kwargs = {"mode": mode, **self._strategy_kwargs}
            self._strategy = make_strategy(self._strategy_spec, self.space, seed=self._seed, **kwargs)
        if self._strategy.mode != mode:
            raise ValueError(f"the strategy has mode={self._strategy.mode!r} but the study is "
                             f"{study.direction.name.lower()}d")
        return self._strategy

    def _arch_from_params(self, params: Mapping[str, Any]) -> Arch | None:
        if not all(n in params for n in self._names):
            return None
        try:
            return self.space.validate({n: params[n] for n in self._names})
        except ValueError:
            return None

    def _key(self, study: Study, number: int) -> tuple[int, int]:
        return (study._study_id, number)

    def _sync(self, study: Study, strategy: Strategy) -> None:
        """Tell the strategy about finished trials it did not propose (warm starts, other workers)."""
        for t in study.get_trials(deepcopy=False, states=_FINISHED):
            key = self._key(study, t.number)
            if key in self._done or key in self._trial_arch:
                continue
            self._done.add(key)
            arch = self._arch_from_params(t.params)
            if arch is None or strategy.status(arch) in ("ok", "failed"):
                continue
            strategy.add_evaluated(arch, _value_of(t.state, t.values))

    # ------------------------------------------------------------------ BaseSampler
    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return dict(self._dists)

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if not search_space:
            return {}
        with self._lock:
            strategy = self._get_strategy(study)
            self._sync(study, strategy)
            fixed = self._arch_from_params(trial.system_attrs.get("fixed_params", {}))
            if fixed is not None:
                # an enqueued architecture: Optuna uses the fixed values, the strategy learns the result
                self._trial_arch[self._key(study, trial.number)] = fixed
                return {}
            deadline = time.monotonic() + self._ready_timeout_s
            while not strategy.ready:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"strategy not ready after {self._ready_timeout_s} s")
                time.sleep(0.02)
            archs = strategy.ask(1)
            if not archs:
                warnings.warn("NASRankSampler: every architecture was tried; falling back to the "
                              "independent sampler (repeats possible)", stacklevel=2)
                return {}
            self._trial_arch[self._key(study, trial.number)] = archs[0]
            return self.space.to_flat_params(archs[0])

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._independent.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self._independent.before_trial(study, trial)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._independent.after_trial(study, trial, state, values)
        with self._lock:
            key = self._key(study, trial.number)
            proposed = self._trial_arch.pop(key, None)
            if key in self._done:
                return
            self._done.add(key)
            actual = self._arch_from_params(trial.params)
            if proposed is None and actual is None:
                return  # the trial never touched the architecture
            strategy = self._get_strategy(study)
            self._sync(study, strategy)  # enqueued trials skip sample_relative: sync here too
            value = _value_of(state, values)
            if proposed is not None and actual is not None and actual != proposed:
                # the user overrode the proposal: release it as failed rather than leave it pending
                warnings.warn(f"trial {trial.number} evaluated {self.space.to_string(actual)!r} instead of the "
                              f"proposed {self.space.to_string(proposed)!r}", stacklevel=2)
                strategy.tell(proposed, None)
            arch = actual if actual is not None else proposed
            if strategy.status(arch) in ("ok", "failed"):
                warnings.warn(f"trial {trial.number} repeats an architecture already told; ignored", stacklevel=2)
                return
            strategy.tell(arch, value)

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
        self._strategy = None if strategy_state is None else Strategy.from_state_dict(strategy_state)
        if self._strategy_spec is None:
            self._strategy_spec = self._strategy
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        name = self._strategy_spec if isinstance(self._strategy_spec, str) else type(self._strategy_spec).__name__
        return f"NASRankSampler(space={self.space!r}, strategy={name!r})"


__all__ = ["NASRankSampler"]
