"""``ray-nasrank bench search --via tune``: a search strategy run through a real Ray Tune ``Tuner``.

Each trial is a table lookup (:func:`make_table_trainable`), so the run shows that the Tune path
finds the same architectures as the plain ask/tell loop, and what the searcher itself costs per
trial on Tune's control loop.

Example::

    from ray_nasrank.tabular import TabularBenchmark
    from ray_nasrank.benchmarks._search_tune import search_via_tune

    out = search_via_tune(TabularBenchmark.nb201(), strategy="nasrank", budget=50, seed=0,
                          concurrency=4, weak=("supernet_oneshot_acc",))
    out["values"][:3], out["overhead_s_per_trial"]
"""

from __future__ import annotations

import tempfile
import time
from typing import Any, Mapping, Sequence

from ray_nasrank.search import STRATEGIES, strategy_accepts


def search_via_tune(bench: Any, strategy: str = "nasrank", budget: int = 100, seed: int = 0,
                    concurrency: int = 4, weak: Sequence[str] = ("supernet_oneshot_acc",),
                    strategy_kwargs: Mapping[str, Any] | None = None,
                    storage_path: str | None = None) -> dict[str, Any]:
    """Run ``strategy`` on ``bench`` (a ``TabularBenchmark``) through ``tune.Tuner``.

    The candidates are the table's archs and ``weak`` names weak-label columns of the table
    (given to strategies that take weak labels). Starts a local Ray instance if none is running
    (and stops it afterwards). Returns ``values`` (targets in trial completion order),
    ``archs``, ``overhead_s_per_trial`` (the searcher's own time in ``suggest`` and
    ``on_trial_complete`` per trial), ``setup_s`` (strategy construction, incl. weak-label
    pretraining, done off Tune's loop), ``wall_s`` (the whole ``fit``) and ``trials``.
    """
    # Ray only when a Tune run is asked for: the benchmarks package imports without it
    import ray
    from ray import tune

    from ray_nasrank.integrations.tune import NASRankSearcher, make_table_trainable
    from ray_nasrank.tabular import TabularBenchmark

    if not isinstance(bench, TabularBenchmark):
        raise TypeError(f"bench must be a TabularBenchmark, got {type(bench).__name__}")
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {sorted(STRATEGIES)}")
    for name, v in (("budget", budget), ("concurrency", concurrency)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    kwargs: dict[str, Any] = {"candidates": bench.archs}
    if weak and strategy_accepts(strategy, "weak"):
        missing = [w for w in weak if w not in bench.weak]
        if missing:
            raise ValueError(f"weak label column(s) {missing} not loaded; the table has {sorted(bench.weak)}")
        kwargs["weak"] = {w: bench.weak_label(w) for w in weak}
    kwargs.update(strategy_kwargs or {})

    own_ray = not ray.is_initialized()
    if own_ray:
        # address="local": always a fresh instance of our own, never another process's cluster
        # that `ray.init()` would otherwise find and join (and lose when it shuts down)
        ray.init(address="local", include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        cpus = float(ray.cluster_resources().get("CPU", 1.0))
        # a lookup needs almost no CPU: fractional trials let `concurrency` of them run at once
        per_trial = min(1.0, cpus / concurrency)
        trainable = tune.with_resources(make_table_trainable(bench), {"cpu": per_trial})
        # the table's own space (e.g. NB201Space), not one read back from its Tune domains
        searcher = NASRankSearcher(bench.space, metric=bench.target_name, mode=bench.mode, strategy=strategy,
                                   strategy_kwargs=kwargs, seed=seed)
        with tempfile.TemporaryDirectory(prefix="nasrank-tune-") as tmp:
            tuner = tune.Tuner(
                trainable,
                param_space=bench.space.to_tune(),
                tune_config=tune.TuneConfig(search_alg=searcher, num_samples=budget,
                                            max_concurrent_trials=concurrency, reuse_actors=True),
                run_config=tune.RunConfig(name="search", verbose=0, storage_path=storage_path or tmp),
            )
            t0 = time.perf_counter()
            results = tuner.fit()
            wall = time.perf_counter() - t0
        if results.errors:
            raise RuntimeError(f"{len(results.errors)} trial(s) failed, first: {results.errors[0]!r}")
    finally:
        if own_ray:
            ray.shutdown()
    done = searcher.completed
    n = max(1, len(done))
    return {
        "strategy": strategy,
        "seed": seed,
        "budget": budget,
        "concurrency": concurrency,
        "values": [c["value"] for c in done],
        "archs": [bench.space.to_string(c["arch"]) for c in done],
        "overhead_s_per_trial": searcher.overhead_s / n,
        "setup_s": searcher.build_s,
        "wall_s": wall,
        "trials": len(done),
    }
