"""The suite must pass on a machine where Ray has never run (issue: a fresh ``TMPDIR``).

A used machine keeps ``$TMPDIR/ray`` from earlier runs, which hid that the session cluster
could not start without it; these tests recreate the fresh state in a subprocess.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


def _fresh_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(TMPDIR=str(tmp_path), RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


@pytest.mark.ray
def test_session_cluster_starts_with_a_fresh_tmpdir():
    pytest.importorskip("ray")
    # short on purpose: Ray's socket paths under it must stay within AF_UNIX's 107 bytes
    fresh = Path(tempfile.mkdtemp(prefix="rf"))
    assert not (fresh / "ray").exists()
    code = (
        "import sys; sys.path.insert(0, {repo!r})\n"
        "import ray\n"
        "from reliability import start_cluster\n"
        "c = start_cluster(num_cpus=1, object_store_mb=100)\n"
        "ray.init(address=c.address, log_to_driver=False)\n"
        "assert ray.get(ray.remote(lambda: 41 + 1).remote()) == 42\n"
        "ray.shutdown(); c.shutdown()\n"
    ).format(repo=str(REPO))
    try:
        proc = subprocess.run([sys.executable, "-c", code], env=_fresh_env(fresh), capture_output=True,
                              text=True, timeout=240)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_ci_runs_the_suite_with_its_own_tmpdir():
    """``.ci/run`` gives the suite a new, empty ``TMPDIR`` so state from earlier runs cannot
    hide a missing step; check it by running the script's setup part in a shell."""
    text = (REPO / ".ci" / "run").read_text()
    assert "mktemp -d" in text and "TMPDIR" in text
    probe = text.replace("make test", 'echo "TMPDIR=$TMPDIR"; ls -A "$TMPDIR" | wc -l')
    proc = subprocess.run(["bash", "-c", probe, str(REPO / ".ci" / "run")], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split()
    tmpdir = next(line.split("=", 1)[1] for line in lines if line.startswith("TMPDIR="))
    assert tmpdir != os.environ.get("TMPDIR") and lines[-1] == "0"
    assert not Path(tmpdir).exists(), "the suite's TMPDIR is removed when .ci/run ends"
