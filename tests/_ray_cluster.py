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
            "temp_dir": tempfile.mkdtemp(prefix="rn_ray_"),
        },
    )
