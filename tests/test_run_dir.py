"""The run folder: one run at a time (a lock naming its holder) and a manifest that checks every
artefact before a resumed run reads it (these tests need no Ray: they stop before any training)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from ray_nasrank.cli import main
from ray_nasrank.pipeline import ARTEFACTS, PipelineConfig, run_search
from ray_nasrank.pipeline._rundir import (
    HOLDER_FILE,
    MANIFEST_FILE,
    Manifest,
    RunDirError,
    RunDirLockedError,
    RunLock,
    check_artefacts,
)

HOLD = ("import sys, time; from ray_nasrank.pipeline._rundir import RunLock\n"
        "with RunLock(sys.argv[1]):\n    print('held', flush=True); time.sleep(120)\n")


@pytest.fixture
def holder(tmp_path):
    """Another process holding the lock on ``tmp_path / 'run'``."""
    out = tmp_path / "run"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert proc.stdout.readline().strip() == "held"
    yield out, proc
    proc.kill()
    proc.wait()


def test_a_second_run_is_refused_at_once_naming_the_holder(holder, capsys):
    out, proc = holder
    with pytest.raises(RunDirLockedError, match=rf"in use by another run: pid {proc.pid} on host .*started"):
        RunLock(out).__enter__()
    t0 = time.perf_counter()
    with pytest.raises(RunDirLockedError, match=f"pid {proc.pid}"):
        run_search(PipelineConfig(dataset="digits", budget=2, pool_size=8, baseline="none"), out)
    rc = main(["search", "--out", str(out), "--dataset", "digits", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and f"pid {proc.pid}" in err and err.count("\n") == 1 and "Traceback" not in err
    assert time.perf_counter() - t0 < 30  # refused before any work (no data read, no Ray)
    assert not (out / ARTEFACTS["config"]).exists()


def test_a_killed_holder_frees_the_folder_and_its_record_is_replaced(holder):
    out, proc = holder
    stale = json.loads((out / HOLDER_FILE).read_text())
    assert stale["pid"] == proc.pid
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with RunLock(out):  # the operating system dropped the dead process's lock
        assert json.loads((out / HOLDER_FILE).read_text())["pid"] == os.getpid()
    assert not (out / HOLDER_FILE).exists()


def _folder(tmp_path, names=("config", "data", "steps", "weak_labels", "ranker")):
    out = tmp_path / "run"
    out.mkdir()
    m = Manifest.open(out, ARTEFACTS)
    for n in names:
        (out / ARTEFACTS[n]).write_bytes(json.dumps({"artefact": n}).encode() * 20)
    m.record(*(ARTEFACTS[n] for n in names))
    return out


def test_a_folder_without_the_package_manifest_is_refused(tmp_path):
    out = _folder(tmp_path)
    (out / MANIFEST_FILE).write_text(json.dumps({"artefacts": {}}))
    with pytest.raises(RunDirError, match="not a manifest ray-nasrank wrote"):
        Manifest.open(out, ARTEFACTS)
    (out / MANIFEST_FILE).write_text('{"format": "ray_nasrank.run/1", "artef')
    with pytest.raises(RunDirError, match="manifest.json.*is corrupt"):
        Manifest.open(out, ARTEFACTS)
    (out / MANIFEST_FILE).unlink()
    with pytest.raises(RunDirError, match="holds config.json, data.json.* but no manifest.json"):
        Manifest.open(out, ARTEFACTS)


@pytest.mark.parametrize("name", ["weak_labels", "ranker", "steps"])
def test_a_truncated_derivable_artefact_is_named_and_computed_again(tmp_path, name):
    out = _folder(tmp_path)
    path = out / ARTEFACTS[name]
    path.write_bytes(path.read_bytes()[:10])
    m = Manifest.open(out, ARTEFACTS)
    with pytest.warns(RuntimeWarning, match=rf"{ARTEFACTS[name]}' is 10 bytes instead of the \d+ written"):
        assert check_artefacts(m, ARTEFACTS) == [name]
    assert not path.exists() and ARTEFACTS[name] not in Manifest.open(out, ARTEFACTS).entries
    assert check_artefacts(Manifest.open(out, ARTEFACTS), ARTEFACTS) == []  # the rest is as written


@pytest.mark.parametrize("name", ["config", "data"])
def test_a_corrupt_record_of_settings_or_data_is_refused_with_the_remedy(tmp_path, name):
    out = _folder(tmp_path)
    path = out / ARTEFACTS[name]
    path.write_bytes(path.read_bytes().replace(b"artefact", b"ARTEFACT"))
    with pytest.raises(RunDirError, match=rf"{ARTEFACTS[name]}' is its content differs.*restore it, or choose "
                                          "another --out"):
        check_artefacts(Manifest.open(out, ARTEFACTS), ARTEFACTS)
    path.unlink()
    with pytest.raises(RunDirError, match=rf"{ARTEFACTS[name]}' is missing"):
        check_artefacts(Manifest.open(out, ARTEFACTS), ARTEFACTS)


def test_one_corrupt_final_table_redoes_all_of_them_and_an_unrecorded_file_is_not_trusted(tmp_path):
    out = _folder(tmp_path, names=("config", "data", "results", "final", "best"))
    (out / ARTEFACTS["final"]).write_bytes(b"PAR1")
    (out / ARTEFACTS["ranker"]).write_bytes(b"planted")  # never written by the package
    with pytest.warns(RuntimeWarning):
        removed = check_artefacts(Manifest.open(out, ARTEFACTS), ARTEFACTS)
    assert sorted(removed) == ["best", "final", "ranker", "results"]
    assert (out / ARTEFACTS["config"]).exists() and (out / ARTEFACTS["data"]).exists()


def test_an_artefact_replaced_by_a_folder_is_named_not_deleted(tmp_path):
    out = _folder(tmp_path)
    (out / ARTEFACTS["ranker"]).unlink()
    (out / ARTEFACTS["ranker"]).mkdir()
    (out / ARTEFACTS["ranker"] / "keep").write_text("someone's file")
    with pytest.raises(RunDirError, match="ranker.pt' is not a file.*move it away"):
        check_artefacts(Manifest.open(out, ARTEFACTS), ARTEFACTS)
    assert (out / ARTEFACTS["ranker"] / "keep").exists()
