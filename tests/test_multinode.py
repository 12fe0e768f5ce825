"""Two-node Ray cluster (``ray.cluster_utils.Cluster``): actors and trials spread over both
nodes, and removing a node mid-run loses no finished result."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

ray = pytest.importorskip("ray")

from ray import tune  # noqa: E402

from ray_nasrank.benchmarks import TabularBenchmark  # noqa: E402
from ray_nasrank.integrations.tune import (  # noqa: E402
    NASRankSearcher,
    make_table_trainable,
    supernet_actors_per_node,
)
from ray_nasrank.spaces import NB201Space  # noqa: E402

pytestmark = pytest.mark.ray
SPACE = NB201Space()


@pytest.fixture(scope="module")
def worker_node(ray_cluster):
    """A 1-CPU worker node added to the session's head for this module, removed afterwards
    (the removal test takes it away earlier; tests run in file order)."""
    ray_session = ray_cluster
    head_cpus = ray.cluster_resources()["CPU"]
    node = ray_session.add_node(num_cpus=1)
    ray_session.wait_for_nodes()
    deadline = time.monotonic() + 60
    while ray.cluster_resources().get("CPU", 0) < head_cpus + 1:
        if time.monotonic() > deadline:
            raise TimeoutError("the worker node did not join")
        time.sleep(0.2)
    try:
        yield node
    finally:
        if node in ray_session.worker_nodes:
            ray_session.remove_node(node)
        deadline = time.monotonic() + 60
        while ray.cluster_resources().get("CPU", 0) > head_cpus and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ray.cluster_resources().get("CPU", 0) == head_cpus  # the head stays as it was


@pytest.fixture(scope="module")
def bench() -> TabularBenchmark:
    rng = np.random.default_rng(1)
    archs = SPACE.sample_many(300, rng=rng, unique=True)
    df = pd.DataFrame({"arch": [SPACE.to_string(a) for a in archs], "acc": rng.random(len(archs))})
    return TabularBenchmark.from_frame(df, space="nb201", target="acc")


def test_one_supernet_actor_per_node_sharing_weights(ray_session, worker_node, bench):
    labels = pd.DataFrame({"arch": [SPACE.to_string(a) for a in bench.archs], "weak_acc": bench.targets})
    actors = supernet_actors_per_node("t-pernode", "t-mn", labels=labels, num_cpus=0.25, trial_cpus=1)
    alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    assert set(actors) == alive and len(alive) == 2
    infos = ray.get([a.info.remote() for a in actors.values()])
    assert {i["node_id"] for i in infos} == alive  # each actor sits on its own node
    outs = ray.get([a.weak_labels.remote(bench.archs[:5]) for a in actors.values()])
    np.testing.assert_array_equal(outs[0], outs[1])
    for a in actors.values():
        ray.kill(a)


class _RemoveWorkerAfterItsFirstResult(tune.Callback):
    """Remove the worker node as soon as one trial that ran there has finished."""

    def __init__(self, cluster, node) -> None:
        self.cluster, self.node, self.removed_after, self.finished = cluster, node, None, []

    def __getstate__(self):  # Tuner pickles callbacks into tuner.pkl; a Cluster does not pickle
        return {"cluster": None, "node": None, "removed_after": self.removed_after, "finished": []}

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.finished.append(trial.trial_id)
        if self.node is not None and self.removed_after is None and trial.last_result.get("node_id") == self.node.node_id:
            self.removed_after = list(self.finished)  # every trial finished so far, this one included
            self.cluster.remove_node(self.node)


def test_trials_spread_and_a_removed_node_loses_no_finished_result(ray_session, worker_node, bench, tmp_path):
    remover = _RemoveWorkerAfterItsFirstResult(ray_session, worker_node)
    searcher = NASRankSearcher(SPACE, strategy="random", metric="acc", mode="max", seed=0,
                               strategy_kwargs={"candidates": bench.archs})
    tuner = tune.Tuner(
        tune.with_resources(make_table_trainable(bench, sleep_s=2.0), {"cpu": 1}),
        param_space=SPACE.to_tune(),
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=6, max_concurrent_trials=3, reuse_actors=False),
        run_config=tune.RunConfig(verbose=0, storage_path=str(tmp_path), callbacks=[remover],
                                  failure_config=tune.FailureConfig(max_failures=2)),
    )
    df = tuner.fit().get_dataframe()
    assert remover.removed_after, "no trial ran on the worker node"
    assert len(df) == 6 and df["arch"].nunique() == 6 and df["acc"].notna().all()
    assert worker_node.node_id in set(df["node_id"])  # trials did spread to the worker
    # every trial finished before the removal is still in the results, with its value
    assert set(remover.removed_after) <= set(df["trial_id"])
    assert len(searcher.completed) == 6
    assert {c["trial_id"] for c in searcher.completed} == set(df["trial_id"])
