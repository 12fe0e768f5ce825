"""Optuna's TPE behind the ask/tell core (Optuna is imported only when this strategy is built)."""

from __future__ import annotations

from typing import Any, Hashable, Sequence

from ray_nasrank._checks import check_int
from ray_nasrank._state import state_class
from ray_nasrank.spaces import INACTIVE, Arch, Categorical, Domain, Float, Integer, Normal, SearchSpace

from ._base import Strategy, nearest_first


@state_class
class TPEStrategy(Strategy):
    """Tree-structured Parzen estimator via ``study.ask(space.to_optuna())``.

    Optuna's sampler knows nothing of isomorphism or of a candidate pool, so a suggestion that
    repeats a seen iso class (or leaves ``candidates``) is answered inside the study without a
    real evaluation: with the value of the isomorphic arch already evaluated, else as FAIL. After
    ``max_retries`` such suggestions a random unseen arch is used instead. Every real result,
    including external and warm-start ones, becomes a trial of the study.

    A pool of a space with numeric decisions (e.g. a table of configs with their learning rates)
    almost never holds a suggested float exactly, so there a suggestion outside the pool becomes
    the nearest unseen pool config instead (distance over the ranker features: one-hot
    categoricals, numeric values in [0, 1] of their transform); the study records that config.

    Args:
        space: the search space.
        seed: seed of every random choice (``None``: not reproducible).
        mode: ``max`` when higher told values are better, ``min`` when lower are.
        candidates: a finite pool to propose from (e.g. a table's archs); ``None``: the whole space.
        max_fidelity: the full fidelity of ``tell`` (see :class:`~ray_nasrank.search.Strategy`); this
            strategy learns from full-fidelity results only.
        n_startup_trials: random trials before TPE models the results.
        max_retries: repeated suggestions answered inside the study before a random unseen arch.
        sampler_kwargs: more ``optuna.samplers.TPESampler`` arguments.

    Raises:
        ImportError: Optuna is not installed.

    >>> from ray_nasrank.spaces import NB201Space
    >>> s = TPEStrategy(NB201Space(), seed=0)
    >>> [a] = s.ask()
    >>> s.tell(a, 90.0)
    >>> len(s.study.trials)
    1
    """

    name = "optuna-tpe"
    # the study and its distributions are saved as data (:meth:`state_dict`), never as objects
    _TRANSIENT = ("_space_list", "_pool_features", "study", "_dists")

    def __init__(self, space: SearchSpace, *, seed: int | None = None, mode: str = "max",
                 candidates: Sequence[Arch] | None = None, n_startup_trials: int = 10,
                 max_retries: int = 20, sampler_kwargs: dict[str, Any] | None = None,
                 max_fidelity: float | None = None) -> None:
        super().__init__(space, seed=seed, mode=mode, candidates=candidates, max_fidelity=max_fidelity)
        try:
            import optuna
        except ImportError as e:  # pragma: no cover - optuna is a declared extra
            raise ImportError("strategy 'optuna-tpe' needs optuna: pip install 'ray_nasrank[optuna]'") from e
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.max_retries = check_int("max_retries", max_retries, low=1)
        kwargs = {"n_startup_trials": check_int("n_startup_trials", n_startup_trials, low=1), "seed": self.seed}
        kwargs.update(sampler_kwargs or {})
        self._sampler_kwargs = kwargs
        self.study = optuna.create_study(direction="maximize" if mode == "max" else "minimize",
                                         sampler=optuna.samplers.TPESampler(**kwargs))
        self._dists = {d.name: optuna_distribution(d.domain) for d in space.decisions}
        # a conditional space is asked define-by-run (only active decisions are suggested)
        self._by_run = space.conditional
        self._trial_of: dict[Arch, int] = {}          # asked arch -> trial number
        self._value_of_key: dict[Hashable, float] = {}  # iso key -> a real evaluated value
        self._pool_set = None if self._candidates is None else set(self._candidates)
        self._restore_transient()

    def _propose(self, n: int) -> list[Arch]:
        from optuna.trial import TrialState

        out: list[Arch] = []
        taken: set[Hashable] = set()
        retries = 0
        while len(out) < n and retries < self.max_retries:
            trial, arch = self._ask_trial()
            key = self.space.iso_key(arch)
            outside = self._pool_set is not None and arch not in self._pool_set
            if outside and self.space.numeric:
                near = self._nearest_unseen(arch, taken)
                if near is not None:
                    # the suggestion is not a row: tell it as failed and evaluate the closest row
                    self.study.tell(trial, state=TrialState.FAIL)
                    self.study.enqueue_trial(self.space.to_flat_params(near))
                    trial, arch = self._ask_trial()
                    key, outside = self.space.iso_key(arch), False
            if key in self._seen or key in taken or outside:
                # answer the repeat inside the study so TPE does not suggest it forever
                known = self._value_of_key.get(key)
                if known is not None and not outside:
                    self.study.tell(trial, known)
                else:
                    self.study.tell(trial, state=TrialState.FAIL)
                retries += 1
                continue
            self._trial_of[arch] = trial.number
            taken.add(key)
            out.append(arch)
        if len(out) < n:
            for arch in self._random_unseen(n - len(out), exclude=taken):
                # a random fill-in: open a trial fixed to it so its result reaches the study
                self.study.enqueue_trial(self.space.to_flat_params(arch))
                trial, _ = self._ask_trial()
                self._trial_of[arch] = trial.number
                out.append(arch)
        return out

    def _restore_transient(self) -> None:
        self._pool_features = None  # the pool's features, for nearest-config snapping (numeric spaces)

    def state_dict(self) -> dict[str, Any]:
        """The base state plus the study as data: its trials (params, distributions as Optuna's
        JSON, values, states) and its sampler's arguments and random states."""
        d = super().state_dict()
        d["state"]["_study_data"] = _study_data(self.study, self._sampler_kwargs)
        return d

    def load_state_dict(self, d: dict[str, Any]) -> None:
        state = dict(d.get("state") or {}) if isinstance(d, dict) else {}
        data = state.pop("_study_data", None)
        if data is None:
            raise ValueError("not an optuna-tpe strategy state: it holds no study")
        super().load_state_dict({**d, "state": state})
        self._dists = {dec.name: optuna_distribution(dec.domain) for dec in self.space.decisions}
        self.study = _study_from_data(data, self.mode)

    def _nearest_unseen(self, arch: Arch, taken: set[Hashable]) -> Arch | None:
        """The unseen pool config closest to ``arch`` in feature space (``None``: none left)."""
        pool = self._candidates
        if self._pool_features is None:
            self._pool_features = self.space.features(pool)
        for i in nearest_first(self.space, self._pool_features, arch):
            a = pool[int(i)]
            key = self.space.iso_key(a)
            if key not in self._seen and key not in taken:
                return a
        return None

    def _ask_trial(self):
        """A new trial of the study and the configuration it suggests (snapped to the space's grid)."""
        if not self._by_run:
            trial = self.study.ask(self._dists)
            return trial, self.space.validate(_snap(self.space, trial.params))
        trial = self.study.ask()
        values: list[Any] = []
        for i, d in enumerate(self.space.decisions):
            if self.space._is_active(values, i):
                values.append(trial._suggest(d.name, self._dists[d.name]))
            else:
                values.append(INACTIVE)
        return trial, self.space.validate(_snap(self.space, dict(zip(self._names(), values))))

    def _names(self) -> list[str]:
        return [d.name for d in self.space.decisions]

    def _observe(self, arch: Arch, score: float | None, source: str) -> None:
        import optuna
        from optuna.trial import TrialState

        value = None if score is None else (score if self.mode == "max" else -score)
        if value is not None:
            self._value_of_key.setdefault(self.space.iso_key(arch), value)
        number = self._trial_of.pop(arch, None)
        if number is not None:
            if value is None:
                self.study.tell(number, state=TrialState.FAIL)
            else:
                self.study.tell(number, value)
            return
        params = self.space.to_flat_params(arch)
        dists = {k: self._dists[k] for k in params}
        if value is None:
            trial = optuna.trial.create_trial(state=TrialState.FAIL, params=params, distributions=dists)
        else:
            trial = optuna.trial.create_trial(value=value, params=params, distributions=dists)
        self.study.add_trial(trial)


def _study_data(study: Any, sampler_kwargs: dict) -> dict:
    from optuna.distributions import distribution_to_json

    sampler = study.sampler
    trials = [{"state": t.state.name, "values": None if t.values is None else list(t.values), "params": dict(t.params),
               "distributions": {k: distribution_to_json(v) for k, v in t.distributions.items()},
               "user_attrs": dict(t.user_attrs), "system_attrs": dict(t.system_attrs),
               "intermediate_values": dict(t.intermediate_values)}
              for t in study.get_trials(deepcopy=False)]
    return {"sampler_kwargs": dict(sampler_kwargs), "trials": trials,
            "rng": sampler._rng.rng.get_state(), "random_rng": sampler._random_sampler._rng.rng.get_state()}


def _study_from_data(data: Any, mode: str) -> Any:
    """The study :func:`_study_data` described: its trials in their order and states, its sampler
    built from the saved arguments with the saved random states."""
    import datetime

    import optuna
    from optuna.distributions import json_to_distribution
    from optuna.trial import FrozenTrial, TrialState

    if not isinstance(data, dict) or not isinstance(data.get("trials"), list):
        raise ValueError("the optuna-tpe state's study is malformed")
    sampler = optuna.samplers.TPESampler(**dict(data.get("sampler_kwargs") or {}))
    sampler._rng.rng.set_state(data["rng"])
    sampler._random_sampler._rng.rng.set_state(data["random_rng"])
    study = optuna.create_study(direction="maximize" if mode == "max" else "minimize", sampler=sampler)
    now = datetime.datetime.now()
    for i, t in enumerate(data["trials"]):
        state = TrialState[t["state"]]
        values = t["values"]
        study.add_trial(FrozenTrial(
            number=i, state=state, value=None, values=values,
            datetime_start=None if state == TrialState.WAITING else now,
            datetime_complete=now if state.is_finished() else None, params=t["params"],
            distributions={k: json_to_distribution(v) for k, v in t["distributions"].items()},
            user_attrs=t["user_attrs"], system_attrs=t["system_attrs"],
            intermediate_values={int(k): v for k, v in t["intermediate_values"].items()}, trial_id=i))
    return study


def optuna_distribution(domain: Domain) -> Any:
    """The Optuna distribution closest to ``domain``: Optuna has no log-scale float with a step
    (the step is applied after sampling) and no normal (sampled over mean +- 4 sd, rounded)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if isinstance(domain, Categorical):
        return CategoricalDistribution(list(domain.choices))
    if isinstance(domain, Integer):
        return IntDistribution(domain.low, domain.high, log=domain.log, step=domain.step)
    if isinstance(domain, Float):
        step = None if domain.log else domain.step
        return FloatDistribution(domain.low, domain.high, log=domain.log, step=step)
    if isinstance(domain, Normal):
        return FloatDistribution(domain.mean - 4 * domain.sd, domain.mean + 4 * domain.sd)
    raise TypeError(f"no Optuna distribution for {domain!r}")


def _snap(space: SearchSpace, params: dict) -> dict:
    """Put Optuna's values on the space's grid (log-scale steps, normal steps)."""
    out = dict(params)
    for d in space.decisions:
        v = out.get(d.name, INACTIVE)
        if v is not INACTIVE and not d.categorical:
            out[d.name] = d.domain.check_snapped(v)
    return out
