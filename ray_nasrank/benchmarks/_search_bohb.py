"""Hyperband as HpBandSter runs it, on a learning-curve table: BOHB, NASRank and random configs
in the same brackets at an equal epoch budget (``bench search --scheduler hpbandster``).

BOHB (Falkner et al., 2018) is Hyperband whose new configs come from a kernel-density model
(TPE-like) fitted at the largest budget holding enough results. Its authors' implementation,
HpBandSter, splits it in two parts, and this replay uses both as they are:

- the brackets: :class:`hpbandster.optimizers.iterations.SuccessiveHalving` iterations, with the
  bracket sizes of ``hpbandster.optimizers.bohb.BOHB.get_next_iteration`` (budgets
  ``max_budget * eta**-k``, bracket ``s`` starts ``floor(S / (s + 1)) * eta**s`` configs);
- the config generator: ``hpbandster.optimizers.config_generators.bohb.BOHB``
  (``get_config(budget)``, ``new_result(job)``) with its default settings.

What is not used is HpBandSter's ``Master``: it hands jobs to workers over Pyro (a name server
and a network daemon). The loop here does what the master does with one worker: ask the
oldest unfinished bracket for its next run, run it, register the result with the bracket and the
config generator. Random configs are HpBandSter's ``RandomSampling`` (its ``HyperBand``
optimizer), and NASRank is a core :class:`~ray_nasrank.search.Strategy` told every result at
its budget as fidelity (``tell(arch, value, fidelity=epochs)``, ``max_fidelity`` the last epoch).

A config promoted from budget ``b`` to ``b'`` resumes its training: it costs ``b' - b`` more
epochs and reads the table's value at epoch ``b'`` (a checkpointed worker; Tune's
``HyperBandForBOHB`` pauses and resumes trials the same way). HpBandSter's example workers
retrain from scratch instead, which costs more epochs for the same result.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from ray_nasrank._checks import ConfigError

#: the strategies a ``hpbandster`` run compares
HPBANDSTER_STRATEGIES = ("bohb", "nasrank", "random")
#: what installs HpBandSter and ConfigSpace
EXTRA = "pip install 'ray_nasrank[bohb]'"


def require_hpbandster() -> None:
    """Import HpBandSter and ConfigSpace, or raise one :class:`ConfigError` naming the extra."""
    try:
        import ConfigSpace  # noqa: F401
        import hpbandster.optimizers.config_generators.bohb  # noqa: F401
    except ImportError as e:
        raise ConfigError(f"scheduler 'hpbandster' (BOHB) needs HpBandSter and ConfigSpace ({EXTRA}); "
                          f"importing them failed: {e}") from None


def configspace_of(space: Any, seed: int) -> Any:
    """The ConfigSpace of ``space``'s decisions (through its Optuna distributions): a choice is
    categorical, a number uniform (log-uniform where the space samples it on a log scale).

    Args:
        space: a :class:`~ray_nasrank.spaces.SearchSpace`.
        seed: seeds ConfigSpace's own sampling.

    Returns:
        A ``ConfigSpace.ConfigurationSpace``.
    """
    import ConfigSpace as CS  # noqa: N817 (its usual name)
    import optuna.distributions as od

    cs = CS.ConfigurationSpace(seed=seed)
    hps = []
    for name, d in space.to_optuna().items():
        if isinstance(d, od.CategoricalDistribution):
            hps.append(CS.CategoricalHyperparameter(name, list(d.choices)))
        elif isinstance(d, od.IntDistribution):
            hps.append(CS.UniformIntegerHyperparameter(name, d.low, d.high, log=d.log))
        elif isinstance(d, od.FloatDistribution):
            hps.append(CS.UniformFloatHyperparameter(name, d.low, d.high, log=d.log))
        else:
            raise ConfigError(f"decision {name!r}: no ConfigSpace counterpart for {type(d).__name__}")
    cs.add(hps)
    return cs


def _plain(config: dict) -> dict:
    """ConfigSpace hands back numpy scalars: the space wants Python values."""
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in config.items()}


class StrategyGenerator:
    """An HpBandSter config generator (``get_config``/``new_result``) around a core strategy:
    every result is told at its budget as fidelity.

    Args:
        strategy: the strategy (its ``max_fidelity`` the largest budget).
        space: its search space.
    """

    def __init__(self, strategy: Any, space: Any) -> None:
        self.strategy = strategy
        self.space = space

    def get_config(self, budget: float) -> tuple[dict, dict]:
        (arch,) = self.strategy.ask(1)
        return self.space.to_config(arch), {}

    def new_result(self, job: Any, update_model: bool = True) -> None:
        arch = self.space.from_config(job.kwargs["config"])
        if job.result is None:  # a failed training: a failure, at full fidelity
            self.strategy.tell(arch, None)
        else:
            self.strategy.tell(arch, job.result["info"]["value"], fidelity=float(job.kwargs["budget"]))


def brackets(epochs: int, eta: int, min_budget: int = 1) -> tuple[np.ndarray, list[tuple[list[int], np.ndarray]]]:
    """Hyperband's budgets and brackets as HpBandSter's BOHB makes them.

    Args:
        epochs: the largest budget (a full training).
        eta: the reduction factor.
        min_budget: the smallest budget.

    Returns:
        ``(budgets, [(configs per stage, budgets per stage) for bracket s = S-1 .. 0])``.

    >>> b, br = brackets(9, 3)
    >>> [int(round(x)) for x in b], [(n, [int(round(x)) for x in bs]) for n, bs in br]
    ([1, 3, 9], [([9, 3, 1], [1, 3, 9]), ([3, 1], [3, 9]), ([3], [9])])
    """
    # HpBandSter writes -int(log(min/max) / log(eta)) + 1; rounding first keeps 9/3 at 3 budgets
    n_budgets = int(math.floor(math.log(epochs / min_budget) / math.log(eta) + 1e-9)) + 1
    budgets = epochs * np.power(float(eta), -np.linspace(n_budgets - 1, 0, n_budgets))
    out = []
    for i in range(n_budgets):
        s = n_budgets - 1 - i
        n0 = int(math.floor(n_budgets / (s + 1)) * eta ** s)
        out.append(([max(int(n0 * eta ** (-j)), 1) for j in range(s + 1)], budgets[-s - 1:]))
    return budgets, out


def make_generator(name: str, bench: Any, seed: int, weak: dict, shared: Any, kwargs: dict, epochs: int) -> Any:
    """The config generator of ``name`` (``bohb``, ``nasrank``, ``random``) for one seed."""
    if name == "bohb":
        from hpbandster.optimizers.config_generators.bohb import BOHB

        return BOHB(configspace=configspace_of(bench.space, seed), **kwargs)
    if name == "random":
        from hpbandster.optimizers.config_generators.random_sampling import RandomSampling

        return RandomSampling(configspace_of(bench.space, seed), **kwargs)
    from ray_nasrank.search import make_strategy

    skw = {"candidates": bench.archs, **kwargs}
    if weak:
        skw.setdefault("weak", weak)
    if shared is not None:
        skw.setdefault("predictor", shared)
    strategy = make_strategy(name, bench.space, seed=seed, mode=bench.mode, max_fidelity=epochs, **skw)
    return StrategyGenerator(strategy, bench.space)


def run_hpbandster(generator: Any, table: Any, epoch_budget: int, eta: int, seed: int) -> dict:
    """One search: Hyperband's brackets, one job at a time, until ``epoch_budget`` epochs are spent.

    Args:
        generator: an HpBandSter config generator (``get_config``, ``new_result``).
        table: the curves (:class:`~ray_nasrank.benchmarks._search_fidelity.CurveTable`).
        epoch_budget: epochs to spend in all.
        eta: Hyperband's reduction factor.
        seed: seeds numpy's global generator, which BOHB's model and sampling draw from.

    Returns:
        As :func:`~ray_nasrank.benchmarks._search_fidelity.run_tune_asha`, plus ``model_picks``
        (configs the generator's model chose, not its random fraction) and ``brackets`` (started).
    """
    from hpbandster.core.dispatcher import Job
    from hpbandster.optimizers.iterations import SuccessiveHalving

    from ._search_fidelity import _incumbent

    np.random.seed(seed)  # BOHB draws from numpy's global generator
    bench = table.bench
    _, plan = brackets(table.epochs, eta)
    iterations: list[Any] = []
    taken: set[int] = set()
    state: dict[tuple, dict] = {}  # config id -> row, epochs trained
    rows, order, full = [], [], {}
    used, searcher_s, picks = 0, 0.0, 0

    def timed(fn, *a):
        nonlocal searcher_s
        t0 = time.perf_counter()
        try:
            return fn(*a)
        finally:
            searcher_s += time.perf_counter() - t0

    while used < epoch_budget:
        run = None
        for it in iterations:
            if not it.is_finished:
                run = timed(it.get_next_run)  # a new config is sampled in here
                if run is not None:
                    break
        if run is None:
            ns, budgets = plan[len(iterations) % len(plan)]
            iterations.append(SuccessiveHalving(HPB_iter=len(iterations), num_configs=ns, budgets=budgets,
                                                config_sampler=generator.get_config))
            continue
        config_id, config, budget = run
        st = state.get(config_id)
        if st is None:
            arch = bench.space.from_config(_plain(config))
            i = table.row(arch, taken)
            taken.add(i)
            rows.append(i)
            st = state[config_id] = {"row": i, "epoch": 0}
            order.append(config_id)
            picks += bool(iterations[config_id[0]].data[config_id].config_info.get("model_based_pick"))
        target = int(round(float(budget)))
        while st["epoch"] < target and used < epoch_budget:
            st["epoch"] += 1
            used += 1
        if st["epoch"] < target:
            break  # the budget ran out inside this job: its result never arrives
        value = float(table.curves[st["row"], target - 1])
        if target >= table.epochs:
            full[st["row"]] = value
        job = Job(config_id, config=config, budget=budget, working_directory=None)
        # HpBandSter minimises its loss; the value itself rides along for a strategy
        job.result = {"loss": -float(bench.signed(value)), "info": {"value": value}}
        iterations[config_id[0]].register_result(job)
        timed(generator.new_result, job)
    inc, val = _incumbent(full, table)
    return {"rows": rows, "epochs": [state[c]["epoch"] for c in order],
            "full": {int(k): v for k, v in full.items()}, "incumbent": inc, "incumbent_value": val,
            "regret": table.regret(val), "epochs_used": used, "searcher_s": searcher_s, "model_picks": picks,
            "brackets": len(iterations)}


__all__ = ["HPBANDSTER_STRATEGIES", "StrategyGenerator", "brackets", "configspace_of", "make_generator",
           "require_hpbandster", "run_hpbandster"]
