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
def curve_table_of(tmp_path_factory):
    """``curve_table_of(epochs)``: the path of a 36-row learning-curve CSV (``k``, ``w``, ``act``,
    then ``acc_1`` .. ``acc_<epochs>``) for the scheduled ``bench search`` tests; wider nets learn
    slower, so early values mislead a little."""
    import numpy as np
    import pandas as pd

    def make(epochs: int) -> Path:
        rng = np.random.default_rng(0)
        rows = [(k, w, a) for k in (1, 3, 5, 7) for w in (8, 16, 32) for a in ("relu", "tanh", "gelu")]
        df = pd.DataFrame(rows, columns=["k", "w", "act"])
        final = df["k"] * 5 + df["w"] / 4 + rng.normal(0, 1, len(df))
        for e in range(1, epochs + 1):
            df[f"acc_{e}"] = final * (1 - np.exp(-e * 6 / df["w"]))
        path = tmp_path_factory.mktemp("lc") / f"curves_{epochs}.csv"
        df.to_csv(path, index=False)
        return path

    return make


@pytest.fixture(scope="session")
def ray_cluster():
    """One Ray for the whole session: the head of a ``ray.cluster_utils.Cluster``.

    Single-node tests use it as a local instance (2 CPUs); multi-node tests add and remove
    worker nodes on it. Never ``AutoscalingCluster``: it kills every Ray on the machine.
    """
    ray = pytest.importorskip("ray")
    from reliability import start_cluster

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
