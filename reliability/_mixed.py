"""Mixed and conditional spaces through all three front-ends: restore at every 10 % and fuzzed input.

- :func:`interrupt_mixed`: the Tune searcher (driven through Tune's ``Searcher`` API, as Tune's
  controller drives it) and the Optuna sampler (an ``optuna.Study``) over a mixed conditional
  space and a finite conditional one, saved and dropped at every 10 % of the budget with trials
  in flight, then restored the way each tool restores: Tune builds a fresh searcher and calls
  ``restore``; Optuna reloads the study from its storage with the pickled sampler, or with a
  fresh one. The in-flight trials finish after the restore. Every run must end with exactly the
  budget's trials, no configuration twice, and every result kept with its value.
- :func:`fuzz_mixed_configs`: Hypothesis-generated configurations of those spaces with one
  defect (a value outside its domain, off its step, of the wrong type, NaN, a missing or an
  unknown key) and results with a bad metric (NaN, inf, text, missing), through ask/tell,
  the Tune searcher and the Optuna sampler. A bad config is one documented error naming the
  key; a bad metric is a failed trial named in one warning; nothing is lost or repeated.

Nothing here needs a running Ray instance; interruption of a real ``tune.Tuner`` by SIGINT is
:func:`reliability.tune_interrupt`.

>>> from reliability import interrupt_mixed
>>> interrupt_mixed(("random",), budget=10, frontends=("tune",)).failures
0
"""

from __future__ import annotations

import math
import pickle
import tempfile
import warnings
from pathlib import Path
from typing import Any, Sequence

from ._core import CaseLog, ScenarioResult
from ._interrupt import EVERY_10_PERCENT, checkpoints, mixed_space, mixed_value

FRONTENDS = ("tune", "optuna", "optuna-fresh")


def finite_conditional_space():
    """A small conditional space (60 configurations) that a budget of 40 nearly exhausts, so a
    repeat after a restore would show."""
    from ray_nasrank.spaces import Condition, Decision, Integer, SearchSpace

    return SearchSpace([
        Decision(("op",), ["conv3", "conv5", "pool"]),
        Decision(("opt",), ["sgd", "adam"]),
        Decision(("momentum",), [0.0, 0.9], Condition("opt", ("sgd",))),
        Decision(("beta",), Integer(1, 3), Condition("opt", ("adam",))),
        Decision(("depth",), Integer(1, 4)),
    ], name="finite-conditional")


def finite_value(arch: Sequence[Any]) -> float:
    """A deterministic objective over :func:`finite_conditional_space` configurations."""
    op, opt, momentum, beta, depth = arch
    v = {"conv3": 1.0, "conv5": 0.7, "pool": 0.2}[op] + 0.3 * depth
    return v + (momentum if opt == "sgd" else 0.2 * beta)


SPACES = {"mixed": (mixed_space, mixed_value), "finite": (finite_conditional_space, finite_value)}


def _strategy_kwargs(name: str) -> dict:
    if name != "nasrank":
        return {}
    from ray_nasrank.predictor import BlendConfig, FineTuneConfig, PredictorConfig

    # a small ranker: the scenario checks bookkeeping across restores, not ranking quality
    return {"predictor": PredictorConfig(ensemble=1, hidden=16, finetune=FineTuneConfig(epochs=10), blend=BlendConfig(mode="off")), "n_candidates": 200,
            "torch_threads": 1}


# ====================================================================== Tune searcher
def _tune_run(space, value, name: str, budget: int, concurrency: int, seed: int, stops: list[int],
              path: Path) -> tuple[dict, list[dict], int]:
    """Drive NASRankSearcher as Tune does; at each stop save it, drop it, restore a fresh one.

    Returns (trial id -> (config arch, value) of completed trials, snapshots at each stop, restores).
    """
    from ray_nasrank.integrations.tune import NASRankSearcher

    def fresh() -> NASRankSearcher:
        # Tune rebuilds the searcher from the Tuner's arguments, then calls restore()
        s = NASRankSearcher(space=space, strategy=name, seed=seed, strategy_kwargs=_strategy_kwargs(name))
        s.set_search_properties("score", "max", {}, num_samples=budget)  # TuneConfig's metric and mode
        s.set_max_concurrency(concurrency)
        return s

    searcher = fresh()
    live: dict[str, dict] = {}
    done: dict[str, tuple] = {}
    snapshots: list[dict] = []
    restores = n_ids = 0
    stops = list(stops)
    while len(done) < budget:
        while len(live) + len(done) < budget and len(live) < concurrency:
            searcher.wait_until_ready(timeout_s=600)
            cfg = searcher.suggest(f"t{n_ids:04d}")
            if cfg is None or cfg == "FINISHED":
                break
            live[f"t{n_ids:04d}"] = cfg
            n_ids += 1
        if not live:
            break
        tid = min(live)  # the oldest live trial finishes first
        arch = space.from_config(live.pop(tid))
        v = value(arch)
        searcher.on_trial_complete(tid, result={"score": v, "training_iteration": 1})
        done[tid] = (arch, v)
        if stops and len(done) >= stops[0]:
            stops.pop(0)
            snapshots.append(dict(done))
            searcher.save(str(path))
            del searcher
            searcher = fresh()
            searcher.restore(str(path))
            restores += 1
    return done, snapshots, restores


# ====================================================================== Optuna sampler
def suggest_config(trial: Any, space: Any) -> dict:
    """Define-by-run: suggest the active decisions of ``space`` in order (a conditional branch
    only when its parent holds an activating value)."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    from ray_nasrank.search._tpe import optuna_distribution

    params: dict[str, Any] = {}
    for d in space.decisions:
        cond = d.condition
        if cond is not None and params.get(cond.parent, object()) not in cond.values:
            continue
        dist = optuna_distribution(d.domain)
        if isinstance(dist, CategoricalDistribution):
            params[d.name] = trial.suggest_categorical(d.name, list(dist.choices))
        elif isinstance(dist, IntDistribution):
            params[d.name] = trial.suggest_int(d.name, dist.low, dist.high, step=dist.step, log=dist.log)
        else:
            params[d.name] = trial.suggest_float(d.name, dist.low, dist.high, step=dist.step, log=dist.log)
    return params


def _optuna_run(space, value, name: str, budget: int, concurrency: int, seed: int, stops: list[int],
                path: Path, pickled: bool) -> tuple[dict, list[dict], int]:
    """An Optuna study on a journal file, ``concurrency`` trials asked ahead of their results;
    at each stop the study and sampler are dropped and the study reloaded from the file with
    the pickled sampler (``pickled``) or a fresh one; the in-flight trials finish afterwards."""
    import optuna

    from ray_nasrank.integrations.optuna import NASRankSampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    journal = path.with_suffix(".journal")
    sampler_file = path.with_suffix(".sampler.pkl")

    def storage():
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        return JournalStorage(JournalFileBackend(str(journal)))

    def new_sampler():
        return NASRankSampler(space, strategy=name, seed=seed, strategy_kwargs=_strategy_kwargs(name))

    study = optuna.create_study(direction="maximize", sampler=new_sampler(), storage=storage(),
                                study_name="interrupted")
    live: dict[int, tuple] = {}
    done: dict[int, tuple] = {}
    snapshots: list[dict] = []
    restores = 0
    stops = list(stops)
    while len(done) < budget:
        while len(live) + len(done) < budget and len(live) < concurrency:
            t = study.ask()
            params = suggest_config(t, space)
            live[t.number] = (t, space.from_config(params))
        number = min(live)
        trial, arch = live.pop(number)
        v = value(arch)
        study.tell(number, v)
        done[number] = (arch, v)
        if stops and len(done) >= stops[0]:
            stops.pop(0)
            snapshots.append(dict(done))
            if pickled:
                sampler_file.write_bytes(pickle.dumps(study.sampler))
            del study
            sampler = pickle.loads(sampler_file.read_bytes()) if pickled else new_sampler()
            study = optuna.load_study(study_name="interrupted", storage=storage(), sampler=sampler)
            restores += 1
    finished = {t.number: t for t in study.get_trials(deepcopy=False)
                if t.state == optuna.trial.TrialState.COMPLETE}
    # what the study itself holds, not only what this driver told it
    return ({n: (space.from_config(t.params), t.value) for n, t in finished.items()}, snapshots, restores)


# ====================================================================== the scenario
def interrupt_mixed(strategies: Sequence[str] = ("random", "rea", "optuna-tpe"), budget: int = 40,
                    concurrency: int = 3, seed: int = 0, fractions: Sequence[float] = EVERY_10_PERCENT,
                    frontends: Sequence[str] = FRONTENDS, spaces: Sequence[str] = ("mixed", "finite")
                    ) -> ScenarioResult:
    """Tune searcher and Optuna sampler runs over mixed and conditional spaces, saved, dropped and
    restored at every 10 % of ``budget`` with ``concurrency`` trials in flight: one case per
    (front-end, space, strategy)."""
    bad = [f for f in frontends if f not in FRONTENDS]
    if bad:
        raise ValueError(f"unknown frontends {bad}; choose from {list(FRONTENDS)}")
    log = CaseLog("interrupt_mixed")
    stops = checkpoints(budget, fractions)
    with tempfile.TemporaryDirectory(prefix="rn_rel_mixed_") as tmp:
        for frontend in frontends:
            for space_name in spaces:
                make_space, value = SPACES[space_name]
                space = make_space()
                for name in strategies:
                    label = f"{frontend} {name} on {space_name}: budget {budget}, {concurrency} in flight, restored at {stops}"
                    with log.case(label, timeout_s=600) as c, warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        path = Path(tmp) / f"{frontend}-{space_name}-{name}"
                        if frontend == "tune":
                            done, snaps, restores = _tune_run(space, value, name, budget, concurrency, seed, stops, path)
                        else:
                            done, snaps, restores = _optuna_run(space, value, name, budget, concurrency, seed, stops,
                                                                path, pickled=frontend == "optuna")
                        c.check(restores == len(stops), f"{restores} restores for {len(stops)} stops")
                        c.check(len(done) == budget, f"{len(done)} completed trials for a budget of {budget}")
                        archs = [a for a, _ in done.values()]
                        c.check(len(set(archs)) == len(archs), f"{len(archs) - len(set(archs))} repeated configuration(s)")
                        for snap in snaps:
                            for k, av in snap.items():
                                c.check(done.get(k) == av, f"trial {k} ({av}) lost or changed after a restore")
                        for k, (a, v) in done.items():
                            c.check(math.isclose(v, value(a)), f"trial {k} holds {v}, not the value of {a}")
    log.details.update({"frontends": list(frontends), "spaces": list(spaces), "strategies": list(strategies),
                        "budget": budget, "in_flight": concurrency, "restores_per_run": len(stops)})
    return log.result()


# ====================================================================== fuzzed input
#: defects put into one key of a valid configuration; the first two must be accepted
ACCEPTED_DEFECTS = ("unknown_key", "inactive_value")
DEFECTS = ACCEPTED_DEFECTS + ("outside", "off_step", "text", "list", "bool", "nan", "none", "missing")
#: what a trial reports as its metric
METRICS = ("ok", "nan", "inf", "none", "text", "missing")


def _fuzz_strategy():
    from hypothesis import strategies as st

    return st.tuples(st.sampled_from(sorted(SPACES)), st.sampled_from(("asktell", "tune", "optuna")),
                     st.integers(0, 10**6), st.one_of(st.none(), st.sampled_from(DEFECTS)),
                     st.sampled_from(METRICS))


def _with_defect(space, config: dict, defect: str | None, rnd: int) -> tuple[dict, str | None]:
    """``config`` with ``defect`` put into one of its keys; returns (config, the key to be named)."""
    import numpy as np

    from ray_nasrank.spaces import INACTIVE, Categorical

    cfg = dict(config)
    if defect is None:
        return cfg, None
    if defect == "unknown_key":
        cfg["not_in_the_space"] = rnd  # Tune configs carry constants next to the searched keys
        return cfg, None
    arch = space.from_config(cfg)
    if defect == "inactive_value":
        off = [d for d, v in zip(space.decisions, arch) if v is INACTIVE]
        if off:  # a value for a branch the parent switched off is ignored
            d = off[rnd % len(off)]
            cfg[d.name] = d.domain.sample(np.random.default_rng(rnd))
        return cfg, None
    active = [d for d, v in zip(space.decisions, arch) if v is not INACTIVE]
    d = active[rnd % len(active)]
    dom = d.domain
    if defect == "off_step":
        stepped = [x for x in active if getattr(x.domain, "step", None) and not getattr(x.domain, "log", False)]
        if stepped:
            d = stepped[rnd % len(stepped)]
            cfg[d.name] = cfg[d.name] + d.domain.step / 3
            return cfg, d.name
        defect = "outside"
    if defect == "outside":
        # a normal has no bounds: only a non-finite number is outside it
        cfg[d.name] = ("zzz_not_a_choice" if isinstance(dom, Categorical) else
                       dom.high + 10**6 if hasattr(dom, "high") else float("inf"))
    elif defect == "text":
        cfg[d.name] = "zzz" if isinstance(dom, Categorical) else str(cfg[d.name])
    elif defect == "list":
        cfg[d.name] = [cfg[d.name]]
    elif defect == "bool":
        cfg[d.name] = True
    elif defect == "nan":
        cfg[d.name] = float("nan")
    elif defect == "none":
        cfg[d.name] = None
    elif defect == "missing":
        del cfg[d.name]
    return cfg, d.name


def _metric_of(kind: str, v: float) -> Any:
    return {"ok": v, "nan": float("nan"), "inf": float("inf"), "none": None, "text": "high"}.get(kind)


def _check_mixed(example: tuple, c: Any) -> None:
    import numpy as np

    from ._fuzz import _expect_error

    space_name, frontend, rnd, defect, metric = example
    make_space, value = SPACES[space_name]
    space = make_space()
    good = space.to_config(space.sample(np.random.default_rng(rnd)))
    cfg, key = _with_defect(space, good, defect, rnd)
    expected = space.from_config(good)
    if frontend == "asktell":
        _check_asktell(space, value, cfg, key, expected, metric, c, _expect_error)
    elif frontend == "tune":
        _check_tune(space, value, cfg, key, expected, metric, c, _expect_error)
    else:
        _check_optuna(space, value, cfg, key, expected, metric, c)


def _check_asktell(space, value, cfg, key, expected, metric, c, expect_error) -> None:
    from ray_nasrank.search import make_strategy

    try:
        arch = space.validate(cfg)
    except Exception as e:  # noqa: BLE001 - classified
        c.check(key is not None, f"valid config rejected: {type(e).__name__}: {e}")
        expect_error(c, e, key)
        return
    c.check(key is None, f"config with a bad {key!r} accepted as {arch}")
    c.check(arch == expected, f"read as {arch}, not {expected}")
    s = make_strategy("random", space, seed=0)
    m = _metric_of(metric, value(arch))
    try:
        s.tell(arch, m)
    except Exception as e:  # noqa: BLE001 - classified
        c.check(metric == "text", f"tell({m!r}) raised {type(e).__name__}: {e}")
        expect_error(c, e, m)
        return
    c.check(metric != "text", "a text metric was accepted")
    (h,) = s.history
    c.check(h["status"] == ("ok" if metric == "ok" else "failed"), f"metric {m!r} recorded as {h['status']}")
    c.check(arch not in s.ask(3), "a told configuration was proposed again")


def _check_tune(space, value, cfg, key, expected, metric, c, expect_error) -> None:
    from ray_nasrank.integrations.tune import NASRankSearcher

    s = NASRankSearcher(space=space, strategy="random", seed=0, points_to_evaluate=[cfg])
    s.set_search_properties("score", "max", {}, num_samples=10)
    try:
        s.wait_until_ready(timeout_s=60)
    except Exception as e:  # noqa: BLE001 - classified
        c.check(key is not None, f"valid point rejected: {type(e).__name__}: {e}")
        expect_error(c, e, key)
        c.check("points_to_evaluate[0]" in str(e), f"error does not say which point: {e}")
        return
    c.check(key is None, f"point with a bad {key!r} accepted")
    first = s.suggest("t0")
    arch = space.from_config(first)
    c.check(arch == expected, f"first trial runs {arch}, not the point {expected}")
    result = {"training_iteration": 1} if metric == "missing" else {"score": _metric_of(metric, value(arch))}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s.on_trial_complete("t0", result=result)
    told = s.completed
    c.check(len(told) == 1 and told[0]["arch"] == arch, "the completed trial was not recorded")
    if metric == "ok":
        c.check(told[0]["value"] == result["score"] and not caught, f"ok result recorded as {told[0]['value']}")
    else:
        c.check(told[0]["value"] is None, f"bad metric {result} recorded as {told[0]['value']}")
        c.check(len(caught) == 1 and "t0" in str(caught[0].message), f"{len(caught)} warnings for one bad result")
    second = s.suggest("t1")
    c.check(isinstance(second, dict) and space.from_config(second) != arch, "the first configuration was repeated")


def _check_optuna(space, value, cfg, key, expected, metric, c) -> None:
    import optuna

    from ray_nasrank.integrations.optuna import NASRankSampler

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    sampler = NASRankSampler(space, strategy="random", seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.enqueue_trial({k: v for k, v in cfg.items()})

    def objective(trial):
        arch = space.from_config(suggest_config(trial, space))
        if metric == "missing":
            raise KeyError("score")  # the objective could not compute its metric
        return _metric_of(metric, value(arch))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        study.optimize(objective, n_trials=2, catch=(Exception,))
    first, second = study.trials
    hist = {h["arch"]: h for h in sampler.strategy.history}
    try:
        arch = space.from_config(first.params)
    except ValueError:
        arch = None
    if key is not None and arch is None:
        # Optuna ran (or refused) the bad values as given: never told as another configuration
        c.check(first.state != optuna.trial.TrialState.COMPLETE or first.value not in
                [h["value"] for h in hist.values()], "a bad enqueued point's result was attributed to a proposal")
        if first.params:
            c.check(any(f"trial {first.number}" in str(w.message) for w in caught),
                    "a trial outside the space was not named in a warning")
    else:
        c.check(arch == expected if key is None else True, f"enqueued point ran as {arch}, not {expected}")
        c.check(arch in hist, f"trial {first.number} ({arch}) never reached the strategy")
        ok = first.state == optuna.trial.TrialState.COMPLETE and metric in ("ok",)
        c.check(arch not in hist or hist[arch]["status"] == ("ok" if ok else "failed"),
                f"metric {metric} recorded as {hist.get(arch, {}).get('status')}")
    c.check(len(sampler.strategy.history) >= 1, "nothing reached the strategy")
    if second.params:
        c.check(second.params != first.params, "the second trial repeated the first")


def fuzz_mixed_configs(n: int = 300) -> ScenarioResult:
    """Configurations with one defect and results with a bad metric, over a mixed and a finite
    conditional space, through ask/tell, the Tune searcher and the Optuna sampler."""
    from ._fuzz import _hypothesis_run

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _hypothesis_run("fuzz_mixed_configs", _fuzz_strategy(), _check_mixed, n,
                               label=lambda ex: f"space={ex[0]} via={ex[1]} seed={ex[2]} defect={ex[3]} metric={ex[4]}")
