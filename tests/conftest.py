"""Shared fixtures: one Ray instance for the whole session, shared data that skips when absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("TQDM_DISABLE", "1")

REPO = Path(__file__).resolve().parents[1]


def _shared(name: str) -> Path | None:
    from ray_nasrank.benchmarks import find_shared_data

    return find_shared_data(name)


@pytest.fixture(scope="session")
def nb201_path() -> Path:
    p = _shared("nb201/nb201_cifar10.parquet")
    if p is None:
        pytest.skip("../shared/data/nb201/nb201_cifar10.parquet is absent")
    return p


@pytest.fixture(scope="session")
def nb201_zc_path() -> Path:
    p = _shared("nb201/nb201_zc_cifar10.parquet")
    if p is None:
        pytest.skip("../shared/data/nb201/nb201_zc_cifar10.parquet is absent")
    return p


@pytest.fixture(scope="session")
def nb201_bench(nb201_path):
    from ray_nasrank.benchmarks import TabularBenchmark

    return TabularBenchmark.nb201(nb201_path)


@pytest.fixture(scope="session")
def ray_cluster():
    """One Ray for the whole session: the head of a ``ray.cluster_utils.Cluster``.

    Single-node tests use it as a local instance (2 CPUs); multi-node tests add and remove
    worker nodes on it. Never ``AutoscalingCluster``: it kills every Ray on the machine.
    """
    ray = pytest.importorskip("ray")
    from _ray_cluster import start_cluster

    cluster = start_cluster()
    ray.init(address=cluster.address, log_to_driver=False, ignore_reinit_error=True)
    yield cluster
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture()
def ray_session(ray_cluster):
    import ray

    if not ray.is_initialized():
        ray.init(address=ray_cluster.address, log_to_driver=False)
    return ray_cluster
