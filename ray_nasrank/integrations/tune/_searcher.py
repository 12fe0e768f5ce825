"""NASRankSearcher: a Ray Tune ``Searcher`` driving a :mod:`ray_nasrank.search` strategy.

The searcher is a thin adapter: the strategy (``nasrank`` by default) decides which
architectures to try, de-duplicates them by isomorphism key and learns from results; this class
translates between Tune's trial ids and configs and the strategy's ask/tell calls, keeps the
bookkeeping Tune needs to resume, and keeps slow work off Tune's control loop.

Example::

    from ray import tune
    from ray_nasrank.spaces import NB201Space
    from ray_nasrank.integrations.tune import NASRankSearcher

    # the NB201 cell, searched as NB201 (its encodings and intrinsic labels) because it is named
    tuner = tune.Tuner(trainable, param_space={**NB201Space().to_tune(), "epochs": 12},
                       tune_config=tune.TuneConfig(metric="valid_acc", mode="max",
                                                   search_alg=NASRankSearcher(NB201Space(), seed=0),
                                                   num_samples=50, max_concurrent_trials=4))
    best = tuner.fit().get_best_result()
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import threading
import time
import warnings
from typing import Any, Mapping, Sequence

from ray.tune.search import Searcher

from ray_nasrank.search import Strategy, WeakLabels, make_strategy, strategy_accepts
from ray_nasrank.search._base import check_fidelity
from ray_nasrank.spaces import Arch, SearchSpace, space_from_tune

from ._weak import finite_or_none, resolve_weak_source

# under Tune's logger, so the searcher's lines show and go quiet exactly like Tune's own (Ray gives
# the "ray" logger a handler at INFO; a logger outside it would drop INFO lines unseen)
logger = logging.getLogger("ray.tune.search.nasrank")

_STATE_VERSION = 1


def _deep_merge(base: Mapping, update: Mapping) -> dict:
    out = copy.deepcopy(dict(base))
    for k, v in update.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


class NASRankSearcher(Searcher):
    """Propose architectures to Ray Tune with a ray_nasrank search strategy.

    Args:
        space: a :class:`~ray_nasrank.spaces.SearchSpace` (mixed and conditional ones included,
            e.g. ``NB201Space()``: NB201 is searched as NB201 only when given here) or a Tune
            ``param_space`` dict; the Tuner's ``param_space`` may then hold the same space as Tune
            domains (``space.to_tune()``) or constants only. If ``None`` the space comes from the
            Tuner's ``param_space``: every Tune domain is converted (choice, randint, lograndint,
            qrandint, uniform, loguniform, quniform, qloguniform, randn, qrandn); entries no
            searcher can fill (``tune.sample_from``, ``grid_search``) raise one ``ValueError`` at
            ``set_search_properties`` naming every such key and the fix.
        metric: the result key to optimise; may come from ``TuneConfig``. A list of keys searches
            several objectives at once (with a list ``mode`` of the same length, as Tune's
            multi-objective searchers take them; give them here, ``TuneConfig`` takes one metric).
        mode: ``"max"`` or ``"min"``; may come from ``TuneConfig``; a list with a list ``metric``.
        strategy: a strategy name of :func:`ray_nasrank.search.make_strategy` or a
            :class:`~ray_nasrank.search.Strategy` instance built on the same space.
        strategy_kwargs: extra constructor arguments for a named strategy (``candidates``,
            ``explore``, ``predictor``...).
        weak: weak labels the searcher computes, a :class:`~ray_nasrank.search.WeakLabels`: the
            zero-cost proxies of your own model family (its ``model_fn(config) -> nn.Module``
            receives each candidate's trial config, the ``param_space`` constants included) and
            a trained supernet's labels; added to ``weak_source`` (its ``given`` labels, if any,
            are the ``weak_source``).
        weak_source: weak labels for the strategy's prior: a ``SupernetActor`` handle (asked when
            ready, zero-cost proxies or ``weak_fallback`` meanwhile), a callable
            ``archs -> dict of arrays`` or a dict of arrays aligned to the candidates.
        weak_fallback: callable used while a supernet actor is not ready.
        points_to_evaluate: configs (nested, flat ``"cell/e1_0"`` keys or ``{"arch": str}``),
            arch tuples or NB201 strings evaluated first.
        evaluated_rewards: their known results; then they are not run again but warm-start the
            strategy.
        seed: seed of a named strategy.
        torch_threads: torch threads for the predictor's pretraining, refits and scoring in the
            driver (default 1, so refits never take the cores trials need; ``None`` leaves the
            count alone); the previous count is restored after each.
        known_objectives: metrics known without training, by metric name: a function
            ``config -> float`` (the trial config, constants included) or a name the space
            computes (``"params"``, ``"flops"`` on NB201); computed for every candidate instead of
            predicted (``nasrank`` strategy).
        known_constraints: constraints known before training: functions ``config -> float`` or
            names the space computes, ``<= 0`` feasible (``lambda c: c["width"] * c["depth"] - 512``).
            Candidates they rule out are never suggested.
        constraint_metrics: result keys holding constraint values (``<= 0`` feasible) measured by
            the trial; the strategy learns from them which configs are feasible.
        time_attr: the result key that measures a trial's training so far, its fidelity (default
            ``training_iteration``, as for Tune's schedulers; set it to the scheduler's
            ``time_attr``).
        max_fidelity: the ``time_attr`` value of a full training (the scheduler's ``max_t``). A
            trial a scheduler stopped below it is a partial observation: its results are points
            of a learning curve the ranker compares with other trials at the same fidelity,
            never a final result (docs/concepts/fidelity.md). ``None``: the Tuner's
            ``RunConfig(stop={time_attr: N})`` when it has one (``N``), else the highest
            ``time_attr`` any trial reached counts as the full one (Tune does not show a searcher
            its scheduler, so a ``max_t`` is not read).

    Every result a trial reports (``on_trial_result``) is recorded at its ``time_attr``; the last
    one, which a scheduler's STOP does not pass to ``on_trial_result``, arrives with
    ``on_trial_complete``. A result without ``time_attr``, with a non-finite metric or with a
    ``time_attr`` not above the trial's previous one (a trial restarted from scratch) is dropped
    with one warning naming the trial. ``on_pause``/``on_unpause`` (called by
    ``HyperBandForBOHB``) keep paused trials out of the concurrency count.

    Each config it returns is the ``param_space`` constants merged with
    ``space.to_config(arch)`` and the space's ``config_extras(arch)`` (for the NB201 space the
    NB201 string as ``"arch"``).
    """

    def __init__(
        self,
        space: SearchSpace | Mapping | None = None,
        *,
        metric: str | list[str] | None = None,
        mode: str | list[str] | None = None,
        strategy: str | Strategy = "nasrank",
        strategy_kwargs: Mapping[str, Any] | None = None,
        weak: WeakLabels | None = None,
        weak_source: Any = None,
        weak_fallback: Any = None,
        points_to_evaluate: Sequence[Any] | None = None,
        evaluated_rewards: Sequence[Any] | None = None,
        seed: int | None = None,
        torch_threads: int | None = 1,
        known_objectives: Mapping[str, Any] | None = None,
        known_constraints: Sequence[Any] | None = None,
        constraint_metrics: Sequence[str] | None = None,
        time_attr: str = "training_iteration",
        max_fidelity: float | None = None,
    ) -> None:
        if not isinstance(time_attr, str) or not time_attr:
            raise TypeError(f"time_attr must be a result key (a non-empty string), got {time_attr!r}")
        if max_fidelity is not None:
            max_fidelity = check_fidelity("max_fidelity", max_fidelity, optional=False)
            if isinstance(strategy, Strategy) and strategy.max_fidelity != max_fidelity:
                raise ValueError(f"max_fidelity={max_fidelity:g} but the strategy has max_fidelity="
                                 f"{strategy.max_fidelity!r}; set it once, on the strategy")
        metric, mode = _check_metric_mode(metric, mode)
        known_objectives = dict(known_objectives or {})
        known_constraints = list(known_constraints or [])
        constraint_metrics = list(constraint_metrics or [])
        for what, items in (("known_objectives", list(known_objectives.items())),
                            ("known_constraints", list(enumerate(known_constraints)))):
            for k, q in items:
                if not (callable(q) or isinstance(q, str)):
                    raise TypeError(f"{what}[{k!r}] must be a function config -> float or a name the space "
                                    f"computes, got {q!r}")
        if not all(isinstance(m, str) for m in constraint_metrics):
            raise TypeError(f"constraint_metrics must be result keys (strings), got {constraint_metrics!r}")
        if known_objectives:
            names = metric if isinstance(metric, list) else [metric]
            unknown = [k for k in known_objectives if k not in names]
            if metric is not None and unknown:
                raise ValueError(f"known_objectives names {unknown}, which are not among metric {names}")
        if (known_objectives or known_constraints) and not (
                isinstance(strategy, str) and strategy_accepts(strategy, "known_objectives")):
            raise ValueError(f"known_objectives= and known_constraints= are used by the 'nasrank' strategy, "
                             f"not {strategy!r}")
        if not isinstance(strategy, (str, Strategy)):
            raise TypeError(f"strategy must be a strategy name or a Strategy, got {type(strategy).__name__}")
        if isinstance(strategy, str):
            from ray_nasrank.search import STRATEGIES

            if strategy not in STRATEGIES:  # fail here, not deep inside Tune
                raise ValueError(f"unknown strategy {strategy!r}; choose from {sorted(STRATEGIES)}")
        if strategy_kwargs is not None and not isinstance(strategy_kwargs, Mapping):
            raise TypeError(f"strategy_kwargs must be a dict, got {type(strategy_kwargs).__name__}")
        if weak_fallback is not None and not callable(weak_fallback):
            raise TypeError(f"weak_fallback must be callable, got {type(weak_fallback).__name__}")
        points = list(points_to_evaluate or [])
        if evaluated_rewards is not None:
            evaluated_rewards = list(evaluated_rewards)
            if len(evaluated_rewards) != len(points):
                raise ValueError(
                    f"evaluated_rewards has {len(evaluated_rewards)} values for {len(points)} "
                    "points_to_evaluate; they must have the same length"
                )
        if weak is not None:
            if not isinstance(weak, WeakLabels):
                raise TypeError(f"weak must be a WeakLabels (labels of your own data go in weak_source), "
                                f"got {type(weak).__name__}")
            if not isinstance(strategy, str) or not strategy_accepts(strategy, "weak"):
                raise ValueError(f"weak= feeds a named strategy that takes weak labels (e.g. 'nasrank'), "
                                 f"not {strategy!r}")
            if weak.given is not None and weak_source is not None:
                raise ValueError("give your own weak labels once: as weak_source or as weak=WeakLabels(given=...)")
            if weak.given is not None:
                weak_source, weak = weak.given, dataclasses.replace(weak, given=None)
        self._model_weak = weak if weak is not None and weak.computed else None
        super().__init__(metric=metric, mode=mode)
        self._strategy_spec: str | Strategy = strategy
        self._strategy_kwargs = dict(strategy_kwargs or {})
        self._weak_source = weak_source
        self._weak_fallback = weak_fallback
        self._points = points
        self._rewards = evaluated_rewards
        self._seed = seed
        if torch_threads is not None and (isinstance(torch_threads, bool) or not isinstance(torch_threads, int)
                                          or torch_threads < 1):
            raise ValueError(f"torch_threads must be an int >= 1 or None, got {torch_threads!r}")
        self._torch_threads = torch_threads
        self._known_objectives = known_objectives
        self._known_constraints = known_constraints
        self._constraint_metrics = constraint_metrics
        self._space: SearchSpace | None = None
        self._constants: dict = {}
        self._space_from_tuner = False
        self._strategy: Strategy | None = strategy if isinstance(strategy, Strategy) else None
        self._built = False                    # strategy built and points_to_evaluate applied
        self._build_error: BaseException | None = None
        self._builder: threading.Thread | None = None
        self._max_concurrency: int | None = None
        self._budget: int | None = None
        self._queue: list[Arch] = []           # asked from the strategy, not yet handed to a trial
        self._live: dict[str, Arch] = {}       # trial id -> arch, suggested and not completed
        self._trial_arch: dict[str, Arch] = {}  # every trial id ever suggested -> arch
        self._completed: list[dict[str, Any]] = []  # completion order: trial_id, arch, value
        self._suggested = 0
        self._overhead_s = 0.0
        self._build_s: float | None = None     # strategy construction (pretraining), off the loop
        self._finished = False
        self._time_attr = time_attr
        self._max_fidelity = max_fidelity
        self._fidelity: dict[str, float] = {}   # trial id -> time_attr of its last recorded result
        self._paused: set[str] = set()          # live trials a scheduler paused (HyperBandForBOHB)
        self._warned: set[tuple[str, str]] = set()  # (trial id, problem): one warning each
        if space is not None:
            self._set_space(space, from_tuner=False)

    # ------------------------------------------------------------------ space
    def _set_space(self, space: SearchSpace | Mapping, from_tuner: bool) -> None:
        if isinstance(space, SearchSpace):
            sp, constants = space, {}
        elif isinstance(space, Mapping):
            sp, constants = space_from_tune(space)
        else:
            raise TypeError(f"space must be a SearchSpace or a Tune param_space dict, got {type(space).__name__}")
        if self._strategy is not None and self._strategy.space != sp:
            raise ValueError(f"the strategy searches {self._strategy.space!r} but the space is {sp!r}")
        self._space, self._constants, self._space_from_tuner = sp, constants, from_tuner

    @property
    def space(self) -> SearchSpace | None:
        return self._space

    @property
    def strategy(self) -> Strategy | None:
        """The strategy once built (``None`` until the first ``suggest``)."""
        return self._strategy

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        placeholders = _fn_placeholders(config) if config else []
        if self._space is not None and not self._space_from_tuner:
            # our own space: refuse Tune's, so Tune complains if its param_space has domains too,
            # unless they write the same space (e.g. space=NB201Space() with NB201Space().to_tune())
            if config and _has_domains(config) and not _writes_space(config, self._space):
                return False
            if placeholders:
                raise ValueError(
                    f"param_space has tune.sample_from entries ({', '.join(map(repr, placeholders))}); Tune would "
                    "sample them outside the search. Write them as domains of the searcher's space "
                    "(tune.choice, tune.randint, tune.loguniform, ...) or as constants")
        elif config and (_has_domains(config) or placeholders):
            # every unsearchable entry (sample_from, grid_search, ...) is named in one ValueError
            self._set_space(config, from_tuner=True)
        elif self._space is None:
            return False
        if self._metric is None and metric:
            self._metric = metric
        elif not metric and self._metric is not None:
            # Tune's ResultGrid reads its default metric from TuneConfig only (for every searcher)
            logger.warning("NASRankSearcher: tune.TuneConfig has no metric, so results.get_best_result() will "
                           "need metric=%r, mode=%r; pass them to tune.TuneConfig(metric=..., mode=...) instead "
                           "(the searcher reads them from there)", self._metric, self._mode)
        if self._mode is None and mode:
            self._metric, self._mode = _check_metric_mode(self._metric, mode)
        n = spec.get("num_samples")
        if isinstance(n, int) and 0 < n < 2**62:
            self._budget = n
        self._max_fidelity_from_stop(spec.get("stop"))
        return True

    def _max_fidelity_from_stop(self, stop: Any) -> None:
        """Without ``max_fidelity``, a stopping criterion on ``time_attr``
        (``RunConfig(stop={"training_iteration": 9})``) says where a full training ends. Tune
        shows a searcher the experiment's ``stop``, ``num_samples`` and ``time_budget_s``, never
        the scheduler: an ASHA/HyperBand ``max_t`` must be passed as ``max_fidelity``."""
        if self._max_fidelity is not None or not isinstance(stop, Mapping) or self._strategy is not None \
                or isinstance(self._strategy_spec, Strategy):
            return  # set, no such criterion, or a strategy already built (it keeps its own)
        t = stop.get(self._time_attr)
        if isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) and t > 0:
            self._max_fidelity = float(t)

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        if not isinstance(max_concurrent, int) or max_concurrent < 1:
            raise ValueError(f"max_concurrent must be a positive int, got {max_concurrent!r}")
        self._max_concurrency = max_concurrent
        return True

    # ------------------------------------------------------------------ strategy
    def _check_ready_to_search(self) -> None:
        if self._space is None:
            raise RuntimeError(
                "NASRankSearcher has no search space: pass space= or give the Tuner a param_space "
                "with tune.choice entries"
            )
        if self._metric is None or self._mode is None:
            raise RuntimeError(
                "NASRankSearcher needs metric and mode: pass them to the searcher or to TuneConfig"
            )

    def _build_strategy(self) -> Strategy:
        assert self._space is not None and self._mode is not None
        if isinstance(self._strategy_spec, Strategy):
            s = self._strategy_spec
            if tuple(s.modes) != tuple([self._mode] if isinstance(self._mode, str) else self._mode):
                raise ValueError(f"the strategy minimises/maximises with mode={s.mode!r} but the searcher has mode={self._mode!r}")
        else:
            kwargs = dict(self._strategy_kwargs)
            if self._weak_source is not None:
                if "weak" in kwargs:
                    raise ValueError("give weak labels either as weak_source or in strategy_kwargs['weak'], not both")
                kwargs["weak"] = resolve_weak_source(self._weak_source, self._space, self._weak_fallback)
            if self._model_weak is not None:
                given = dataclasses.replace(self._model_weak, given=kwargs.get("weak"))
                kwargs["weak"] = given.resolve(self._space, config_of=self._config_for)
            kwargs.setdefault("mode", self._mode)
            metrics = self._metrics()
            if self._known_objectives:
                unknown = [k for k in self._known_objectives if k not in metrics]
                if unknown:
                    raise ValueError(f"known_objectives names {unknown}, which are not among metric {metrics}")
                kwargs["known_objectives"] = {metrics.index(k): self._quantity(q)
                                              for k, q in self._known_objectives.items()}
            if self._known_constraints:
                kwargs["known_constraints"] = [self._quantity(q) for q in self._known_constraints]
            if "async_refit" not in kwargs and strategy_accepts(self._strategy_spec, "async_refit"):
                # refits run in a thread; suggest answers None meanwhile instead of blocking Tune
                kwargs["async_refit"] = True
            if "torch_threads" not in kwargs and strategy_accepts(self._strategy_spec, "torch_threads"):
                kwargs["torch_threads"] = self._torch_threads
            if self._max_fidelity is not None:
                kwargs.setdefault("max_fidelity", self._max_fidelity)
            s = make_strategy(self._strategy_spec, self._space, seed=self._seed, **kwargs)
        for i, p in enumerate(self._points):
            try:
                arch = self._space.validate(p)
            except ValueError as e:
                raise ValueError(f"points_to_evaluate[{i}] is not an architecture of {self._space!r}: {e}") from None
            if self._rewards is not None:
                s.add_evaluated(arch, finite_or_none(self._rewards[i]))
            elif not s.enqueue(arch):
                warnings.warn(f"points_to_evaluate[{i}] repeats an architecture already queued; skipped",
                              stacklevel=2)
        return s

    def _run_builder(self) -> None:
        t0 = time.perf_counter()
        try:
            self._strategy = self._build_strategy()
            self._built = True
            self._build_s = time.perf_counter() - t0
        except BaseException as e:  # re-raised on the driver by the next suggest
            self._build_error = e

    def _strategy_ready(self) -> bool:
        """Start building the strategy in a thread on first use; True once it can answer."""
        if self._built:
            assert self._strategy is not None
            return self._strategy.ready
        if self._builder is None:
            self._builder = threading.Thread(target=self._run_builder, name="nasrank-build", daemon=True)
            self._builder.start()
        if self._builder.is_alive():
            return False
        self._builder = None
        if self._build_error is not None:
            err, self._build_error = self._build_error, None
            raise err
        assert self._strategy is not None
        return self._strategy.ready

    def wait_until_ready(self, timeout_s: float = 600.0) -> None:
        """Block until the strategy is built and ready (tests, benchmarks)."""
        self._check_ready_to_search()
        deadline = time.monotonic() + timeout_s
        while not self._strategy_ready():
            if time.monotonic() > deadline:
                raise TimeoutError(f"strategy not ready after {timeout_s} s")
            time.sleep(0.02)

    # ------------------------------------------------------------------ Tune API
    def suggest(self, trial_id: str) -> dict | str | None:
        t0 = time.perf_counter()
        try:
            return self._suggest(trial_id)
        finally:
            self._overhead_s += time.perf_counter() - t0

    def _suggest(self, trial_id: str) -> dict | str | None:
        self._check_ready_to_search()
        if self._finished:
            return Searcher.FINISHED
        if self._max_concurrency is not None and self._running() >= self._max_concurrency:
            return None
        if not self._queue:
            if not self._strategy_ready():
                return None
            assert self._strategy is not None
            n = self._batch_size()
            if n <= 0:
                return None
            self._queue = list(self._strategy.ask(n))
            if not self._queue:
                if self._live:
                    return None  # live trials may still fail; nothing new to propose now
                self._finished = True
                logger.info("NASRankSearcher: every configuration of the space was tried (%d trials); the "
                            "search ends here", self._suggested)
                return Searcher.FINISHED
        arch = self._queue.pop(0)
        self._live[trial_id] = arch
        self._trial_arch[trial_id] = arch
        self._suggested += 1
        return self._config_for(arch)

    def _batch_size(self) -> int:
        """Fill the allowed concurrency, never beyond the trial budget."""
        free = 1 if self._max_concurrency is None else self._max_concurrency - self._running()
        if self._budget is not None:
            free = min(free, self._budget - self._suggested)
        return free

    def _running(self) -> int:
        """Live trials that hold resources (a paused one does not)."""
        return len(self._live) - len(self._paused & set(self._live))

    def _attach_known(self) -> None:
        """Give a restored strategy back the functions among the known quantities (a state holds data only)."""
        s = self._strategy
        if s is None or not getattr(s, "multi_objective", False) or not hasattr(s, "known_objectives"):
            return
        metrics = self._metrics() if self._metric is not None else []
        args = {}
        kc = {j: self._quantity(q) for j, q in enumerate(self._known_constraints) if not isinstance(q, str)}
        ko = {metrics.index(k): self._quantity(q) for k, q in self._known_objectives.items()
              if not isinstance(q, str) and k in metrics}
        if kc:
            args["known_constraints"] = kc
        if ko:
            args["known_objectives"] = ko
        if args:
            s.attach_known(**args)

    def _metrics(self) -> list[str]:
        return list(self._metric) if isinstance(self._metric, list) else [self._metric]

    def _quantity(self, q: Any) -> Any:
        """A known quantity for the core: a space's name as it is, a ``config -> float`` function wrapped."""
        return q if isinstance(q, str) else _ConfigFunction(self._config_for, q)

    def _config_for(self, arch: Arch) -> dict:
        assert self._space is not None
        return {**_deep_merge(self._constants, self._space.to_config(arch)), **self._space.config_extras(arch)}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        t0 = time.perf_counter()
        try:
            self._on_complete(trial_id, result, error)
        finally:
            self._overhead_s += time.perf_counter() - t0

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """Record an intermediate result at its ``time_attr`` (a point of the trial's curve)."""
        t0 = time.perf_counter()
        try:
            arch = self._live.get(trial_id)
            # several metrics: a point of the curve once every one is reported
            if (arch is not None and self._strategy is not None and self._metric is not None
                    and all(m in (result or {}) for m in self._metrics())):
                # constraint values go with each result that reports them all: a trial a scheduler
                # stops ends with that same result again, which adds no curve point
                cons = (self._constraints_of(trial_id, result) if self._constraint_metrics
                        and all(m in result for m in self._constraint_metrics) else None)
                self._observe(trial_id, arch, result, cons)
        finally:
            self._overhead_s += time.perf_counter() - t0

    def on_pause(self, trial_id: str) -> None:
        """A scheduler paused the trial (``HyperBandForBOHB``): it frees its concurrency slot."""
        if trial_id in self._live:
            self._paused.add(trial_id)

    def on_unpause(self, trial_id: str) -> None:
        """The paused trial runs again."""
        self._paused.discard(trial_id)

    def _warn_once(self, trial_id: str, problem: str, message: str) -> None:
        """One warning per trial and problem; a trial already warned about gets no follow-up."""
        if problem == "unusable" and any(t == trial_id for t, _ in self._warned):
            return
        if (trial_id, problem) not in self._warned:
            self._warned.add((trial_id, problem))
            warnings.warn(message, stacklevel=3)

    def _observe(self, trial_id: str, arch: Arch, result: Mapping, constraints: Any = None) -> bool:
        """Tell the strategy ``result`` at its fidelity; False when it is dropped (bad input) or
        the trial already has its full-fidelity result."""
        assert self._strategy is not None
        if self._strategy.status(arch) in ("ok", "failed"):
            return False
        t = result.get(self._time_attr)
        if t is None:
            self._warn_once(trial_id, "time_attr", f"trial {trial_id} reported a result without {self._time_attr!r} "
                            "(the searcher's time_attr); that result is dropped")
            return False
        try:
            t = check_fidelity(self._time_attr, t, optional=False)
        except (TypeError, ValueError) as e:
            self._warn_once(trial_id, "time_attr", f"trial {trial_id}: {e}; that result is dropped")
            return False
        values = [finite_or_none(result[m]) for m in self._metrics()]
        bad = [m for m, v in zip(self._metrics(), values) if v is None]
        if bad:
            self._warn_once(trial_id, "nan", f"trial {trial_id} reported {bad[0]}={result[bad[0]]!r} at "
                            f"{self._time_attr}={t:g}, not a finite number; that result is dropped")
            return False
        value = values[0] if isinstance(self._metric, str) else values
        last = self._fidelity.get(trial_id)
        if last is not None and t <= last:
            if t < last:
                self._warn_once(trial_id, "lower", f"trial {trial_id} reported {self._time_attr}={t:g} after "
                                f"{last:g} (restarted without its checkpoint?); that result is dropped")
            return False  # t == last: the same result again (on_trial_complete repeats the last one)
        self._fidelity[trial_id] = t
        self._strategy.tell(arch, value, fidelity=t, constraints=constraints)
        return True

    def _on_complete(self, trial_id: str, result: dict | None, error: bool) -> None:
        arch = self._live.pop(trial_id, None)
        self._paused.discard(trial_id)
        if arch is None:
            # after a restore Tune may report trials this state never suggested: tolerate
            logger.warning("NASRankSearcher: ignoring completion of unknown trial %s", trial_id)
            return
        assert self._strategy is not None
        if isinstance(self._metric, list) and (error or (trial_id not in self._fidelity
                                                         and self._time_attr not in (result or {}))):
            # several metrics and no fidelity anywhere (no time_attr reported): one result per trial
            self._complete_multi(trial_id, arch, result, error)
            return
        cons = self._constraints_of(trial_id, result) if not error else None
        curve = trial_id in self._fidelity  # intermediate results were recorded
        if error:
            warnings.warn(f"trial {trial_id} errored; its architecture is recorded as failed"
                          + (" (its results so far are kept)" if curve else ""), stacklevel=2)
            self._tell_final(arch, None)
        elif result is None and curve:
            pass  # a paused trial a scheduler stopped (Tune passes no result): its curve is its record
        elif result is None or not all(m in result for m in self._metrics()):
            keys = sorted(result)[:20] if result else []
            missing = next(m for m in self._metrics() if result is None or m not in result)
            warnings.warn(
                f"trial {trial_id} finished without reporting metric {missing!r} (reported: {keys}); its "
                + ("results so far are kept" if curve else "architecture is recorded as failed"), stacklevel=2)
            if not curve:
                self._tell_final(arch, None)
        elif self._time_attr not in result and not curve:
            # no fidelity anywhere (a direct call, a custom time_attr never reported): a result as before
            value = finite_or_none(result[self._metric])
            if value is None:
                warnings.warn(f"trial {trial_id} reported {self._metric}={result[self._metric]!r}, "
                              "not a finite number; its architecture is recorded as failed", stacklevel=2)
            self._tell_final(arch, value, cons)
        else:
            # the last result (a scheduler's STOP does not pass it to on_trial_result); a trial
            # stopped below max_fidelity stays a partial observation
            self._observe(trial_id, arch, result, cons)
            if self._strategy.status(arch) == "pending":  # nothing usable was ever reported
                self._warn_once(trial_id, "unusable", f"trial {trial_id} gave no usable result; its architecture "
                                "is recorded as failed")
                self._tell_final(arch, None)
        h = self._strategy.record(arch)
        self._completed.append({"trial_id": trial_id, "arch": arch, "value": h["value"], "fidelity": h["fidelity"]})

    def _tell_final(self, arch: Arch, value: float | None, constraints: Any = None) -> None:
        assert self._strategy is not None
        if self._strategy.status(arch) not in ("ok", "failed"):
            self._strategy.tell(arch, value, constraints=constraints)

    def _complete_multi(self, trial_id: str, arch: Arch, result: dict | None, error: bool) -> None:
        """A finished trial of a multi-metric search that reported no ``time_attr``, or errored:
        its one result, or a failure (a trial with a fidelity ends like a single-metric one: a
        scheduler may stop it before any ``on_trial_result``)."""
        assert self._strategy is not None
        value: float | list[float] | None = None
        metrics = self._metrics()
        missing = [m for m in metrics if result is None or m not in result]
        if error:
            warnings.warn(f"trial {trial_id} errored; its architecture is recorded as failed", stacklevel=2)
        elif missing:
            keys = sorted(result)[:20] if result else []
            warnings.warn(
                f"trial {trial_id} finished without reporting metric {missing[0]!r} "
                f"(reported: {keys}); its architecture is recorded as failed", stacklevel=2)
        else:
            values = [finite_or_none(result[m]) for m in metrics]
            bad = [m for m, v in zip(metrics, values) if v is None]
            if bad:
                warnings.warn(f"trial {trial_id} reported {bad[0]}={result[bad[0]]!r}, "
                              "not a finite number; its architecture is recorded as failed", stacklevel=2)
            else:
                value = values[0] if len(values) == 1 else values
        self._strategy.tell(arch, value, constraints=None if error else self._constraints_of(trial_id, result))
        self._completed.append({"trial_id": trial_id, "arch": arch, "value": value, "fidelity": None})

    def _constraints_of(self, trial_id: str, result: dict | None) -> list[float | None] | None:
        """The trial's constraint vector: the known ones (computed by the strategy), then the
        ``constraint_metrics`` it reported (``None`` as a whole when one is missing)."""
        if not self._constraint_metrics:
            return None
        missing = [m for m in self._constraint_metrics if not result or m not in result]
        if missing:
            warnings.warn(f"trial {trial_id} did not report constraint metric {missing[0]!r}; its feasibility "
                          "is not learned from it", stacklevel=3)
            return None
        vals = []
        for m in self._constraint_metrics:
            v = result[m]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v:
                raise ValueError(f"trial {trial_id} reported constraint metric {m}={v!r}; constraint values must "
                                 "be numbers, not NaN (<= 0 feasible)")
            vals.append(float(v))
        return [None] * len(self._known_constraints) + vals

    def add_evaluated_point(self, parameters: dict, value: float, error: bool = False,
                            pruned: bool = False, intermediate_values: list | None = None) -> None:
        """A point evaluated outside this searcher (Tune's ``add_evaluated_trials``)."""
        self._check_ready_to_search()
        self.wait_until_ready()
        assert self._space is not None and self._strategy is not None
        arch = self._space.validate(parameters)
        if isinstance(value, (list, tuple)):
            vals = [finite_or_none(v) for v in value]
            told = None if (error or pruned or any(v is None for v in vals)) else vals
        else:
            told = None if (error or pruned) else finite_or_none(value)
        self._strategy.add_evaluated(arch, told)

    # ------------------------------------------------------------------ bookkeeping
    @property
    def completed(self) -> list[dict[str, Any]]:
        """``{"trial_id", "arch", "value", "fidelity"}`` per completed trial, in completion order:
        ``value`` at ``fidelity`` (``None``: full; else the ``time_attr`` a scheduler stopped it at)."""
        return [dict(c) for c in self._completed]

    @property
    def overhead_s(self) -> float:
        """Wall-clock seconds spent inside ``suggest`` and ``on_trial_complete`` so far."""
        return self._overhead_s

    @property
    def build_s(self) -> float | None:
        """Seconds the strategy took to build (weak-label pretraining), in a background thread."""
        return self._build_s

    @property
    def num_suggested(self) -> int:
        return self._suggested

    def arch_of(self, trial_id: str) -> Arch | None:
        return self._trial_arch.get(trial_id)

    # ------------------------------------------------------------------ state
    def __getstate__(self) -> dict:
        if self._builder is not None:
            self._builder.join()
        state = dict(self.__dict__)
        state["_builder"] = None
        state["_build_error"] = None
        if self._strategy is not None:
            state["_strategy"] = None
            state["_strategy_state"] = self._strategy.state_dict()
            if state["_strategy_spec"] is self._strategy:
                state["_strategy_spec"] = None
        return {"version": _STATE_VERSION, "state": state}

    def __setstate__(self, payload: dict) -> None:
        if not isinstance(payload, dict) or payload.get("version") != _STATE_VERSION:
            raise ValueError("not a NASRankSearcher state (or from an incompatible version)")
        state = dict(payload["state"])
        strategy_state = state.pop("_strategy_state", None)
        # saved before fidelities: results were final ones
        for key, default in (("_time_attr", "training_iteration"), ("_max_fidelity", None), ("_fidelity", {}),
                             ("_paused", set()), ("_warned", set())):
            state.setdefault(key, default)
        self.__dict__.update(state)
        self.__dict__.setdefault("_known_objectives", {})
        self.__dict__.setdefault("_known_constraints", [])
        self.__dict__.setdefault("_constraint_metrics", [])
        if strategy_state is not None:
            self._strategy = Strategy.from_state_dict(strategy_state)
            if self._strategy_spec is None:
                self._strategy_spec = self._strategy
            self._attach_known()
        self._builder = None
        self._build_error = None

    #: what :meth:`save` writes (``kind`` of a :mod:`ray_nasrank._state` file)
    FILE_KIND = "ray_nasrank.NASRankSearcher/2"
    #: what the constructor was given as code (weak-label sources, model functions): never written,
    #: a restored searcher keeps the ones it was built with (Tune rebuilds it from its own experiment state)
    _CODE = ("_weak_source", "_weak_fallback", "_model_weak", "_known_objectives", "_known_constraints")
    #: what the Tuner's ``param_space`` or the constructor give again on a restore: written when it is
    #: data, kept from the live searcher when not (a constant holding an object, a ``weak`` callable)
    _GIVEN = ("_constants", "_strategy_kwargs", "_points", "_rewards", "_strategy_spec")

    def save(self, checkpoint_path: str) -> None:
        """Write the state (strategy included) atomically as JSON and arrays (reading it runs no code).

        Tune calls this with a path in its experiment folder. What the searcher was given as code
        (``weak_source``, ``weak_fallback``, ``weak``...) is not written: :meth:`restore` keeps
        the live searcher's.
        """
        from ray_nasrank._state import encode, write_npz

        state = {k: v for k, v in self.__getstate__()["state"].items() if k not in self._CODE}
        for k in self._GIVEN:
            try:
                encode(state.get(k))
            except TypeError:
                state.pop(k, None)
        write_npz(checkpoint_path, self.FILE_KIND, {"version": _STATE_VERSION, "state": state})

    def restore(self, checkpoint_path: str) -> None:
        """Load a state written by :meth:`save`; trials live then are expected to complete.

        Raises:
            ValueError: not a searcher state this package wrote, or a corrupt one (the message
                names the file).
        """
        from ray_nasrank._state import StateError, read_npz

        try:
            payload = read_npz(checkpoint_path, self.FILE_KIND)
        except StateError as e:
            raise ValueError(f"{e}; it is not a NASRankSearcher state (delete the experiment folder, or use "
                             "another one, to start over)") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("state"), dict):
            raise ValueError(f"{str(checkpoint_path)!r} is not a NASRankSearcher state")
        kept = {k: self.__dict__[k] for k in self._CODE + self._GIVEN if k in self.__dict__}
        self.__setstate__({"version": payload.get("version"), "state": {**kept, **payload["state"]}})

    def __repr__(self) -> str:
        name = self._strategy_spec if isinstance(self._strategy_spec, str) else type(self._strategy_spec).__name__
        return (f"NASRankSearcher(strategy={name!r}, space={self._space!r}, metric={self._metric!r}, "
                f"mode={self._mode!r}, suggested={self._suggested}, completed={len(self._completed)})")


class _ConfigFunction:
    """A user's ``config -> value`` function as the core's ``archs -> values``."""

    def __init__(self, config_of: Any, fn: Any) -> None:
        self.config_of, self.fn = config_of, fn

    def __call__(self, archs: Sequence[Arch]) -> list[float]:
        return [float(self.fn(self.config_of(a))) for a in archs]


def _check_metric_mode(metric: Any, mode: Any) -> tuple[Any, Any]:
    """``metric``/``mode`` checked: strings, or lists of the same length (several objectives)."""
    if metric is not None and not isinstance(metric, (str, list, tuple)):
        raise TypeError(f"metric must be a string or a list of strings, got {metric!r}")
    if isinstance(metric, (list, tuple)):
        metric = list(metric)
        if not metric or not all(isinstance(m, str) for m in metric) or len(set(metric)) != len(metric):
            raise ValueError(f"a metric list must hold distinct result keys, got {metric!r}")
    if isinstance(mode, (list, tuple)):
        mode = list(mode)
        bad = [m for m in mode if m not in ("min", "max")]
        if bad or not mode:
            raise ValueError(f"every mode must be 'min' or 'max', got {mode!r}")
        if metric is not None and (not isinstance(metric, list) or len(metric) != len(mode)):
            raise ValueError(f"mode {mode!r} needs a metric list of the same length, got metric={metric!r}")
    elif mode is not None:
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if isinstance(metric, list):
            raise ValueError(f"metric {metric!r} is a list: give a list mode of the same length")
    return metric, mode


def _fn_placeholders(config: Mapping, prefix: str = "") -> list[str]:
    """Keys holding the ``('__fn_ph', hash)`` placeholders Tune puts in place of ``tune.sample_from``."""
    out = []
    for k, v in config.items():
        where = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out += _fn_placeholders(v, where + "/")
        elif isinstance(v, (tuple, list)) and len(v) == 2 and v[0] == "__fn_ph":
            out.append(where)
    return out


def _writes_space(config: Mapping, space: SearchSpace) -> bool:
    """Whether the Tune domains of ``config`` are exactly ``space``'s decisions (same paths,
    domains and conditions), so the searcher's suggestions fill every one of them."""
    try:
        written, _ = space_from_tune(config)
    except ValueError:
        return False
    return {d.path: d for d in written.decisions} == {d.path: d for d in space.decisions}


def _has_domains(config: Mapping) -> bool:
    from ray.tune.search.variant_generator import parse_spec_vars

    _, domain_vars, grid_vars = parse_spec_vars(config)
    return bool(domain_vars or grid_vars)
