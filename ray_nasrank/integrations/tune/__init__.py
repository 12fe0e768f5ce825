"""Ray Tune integration: a NAS searcher, supernet weak-label actors and ready trainables.

Importing this subpackage imports Ray (``pip install 'ray_nasrank[tune]'``).

Example::

    from ray import tune
    from ray_nasrank.tabular import TabularBenchmark
    from ray_nasrank.integrations.tune import NASRankSearcher, make_table_trainable

    bench = TabularBenchmark.nb201()
    searcher = NASRankSearcher(metric="test_acc", mode="max", strategy="nasrank",
                               strategy_kwargs={"candidates": bench.archs}, seed=0)
    tuner = tune.Tuner(make_table_trainable(bench), param_space=bench.space.to_tune(),
                       tune_config=tune.TuneConfig(search_alg=searcher, num_samples=50,
                                                   max_concurrent_trials=4, reuse_actors=True))
    best = tuner.fit().get_best_result("test_acc", "max")
"""

from ._actors import SupernetActor, check_actor_resources, get_or_create_supernet_actor, supernet_actors_per_node
from ._searcher import NASRankSearcher
from ._trainables import make_table_trainable, nb201_trainable

__all__ = [
    "NASRankSearcher",
    "SupernetActor",
    "get_or_create_supernet_actor",
    "supernet_actors_per_node",
    "check_actor_resources",
    "make_table_trainable",
    "nb201_trainable",
]
