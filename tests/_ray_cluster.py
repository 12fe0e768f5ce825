"""Start the test suite's Ray: the head of a ``ray.cluster_utils.Cluster`` (never
``AutoscalingCluster``, which kills every Ray on the machine)."""

from __future__ import annotations

import os
import tempfile


def start_cluster(num_cpus: int = 2, object_store_mb: int = 400):
    """A 2-CPU head node in its own temp dir, safe on a machine where Ray has never run.

    ``Cluster`` writes its address file under the *default* temp dir (``$TMPDIR/ray``) even
    when given a ``temp_dir`` of its own, and fails with ``FileNotFoundError`` where that
    folder does not exist yet, i.e. on a fresh machine or with a fresh ``TMPDIR``.
    """
    from ray.cluster_utils import Cluster

    os.makedirs(os.path.join(tempfile.gettempdir(), "ray"), exist_ok=True)
    return Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": num_cpus,
            "include_dashboard": False,
            "object_store_memory": object_store_mb * 1024 * 1024,
            "temp_dir": _short_temp_dir(),
        },
    )


def _short_temp_dir() -> str:
    """A new folder for the cluster's session, short enough for Ray's socket paths.

    Ray puts ``<temp_dir>/session_<date>_<pid>/sockets/plasma_store`` under it, and AF_UNIX
    paths stop at 107 bytes: a nested ``TMPDIR`` (CI's own inside a caller's) overflows that.
    """
    base = tempfile.gettempdir()
    if len(base) > 40:
        base = "/tmp"
    return tempfile.mkdtemp(prefix="r", dir=base)
