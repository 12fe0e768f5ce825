"""The run folder (``--out``) of the main job: one run at a time, and nothing read unchecked.

:class:`RunLock` holds an exclusive lock on the folder for the whole run (``filelock``: an
``flock`` the operating system drops when the process dies, so a killed run never leaves the
folder locked), and records who holds it in ``.run.lock.json`` (pid, host, start time, command).
A second run on the same folder is refused at once with that record. Where the file system
offers no ``flock`` and ``filelock`` falls back to a lock file, a record naming a process of
this host that is gone (or a pid reused by another process) is a stale lock: it is removed and
the lock taken.

:class:`Manifest` (``manifest.json``) records the size and sha256 of every artefact the run
writes, and of the files of its Tune folders that Ray unpickles; :func:`check_artefacts` and
:func:`tune_records` check them before a resumed run reads them (docs/concepts/run_folder.md).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any, Iterator

#: the lock file and the holder's record inside ``--out``
LOCK_FILE = ".run.lock"
HOLDER_FILE = ".run.lock.json"


class RunDirLockedError(RuntimeError):
    """Another run holds the output folder (the message names it: pid, host, start time, command)."""


def _proc_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def holder_gone(record: dict[str, Any]) -> bool:
    """Whether ``record`` names a process of this host that no longer runs (or whose pid was reused)."""
    if record.get("host") != socket.gethostname() or not isinstance(record.get("pid"), int):
        return False
    pid = record["pid"]
    if not _alive(pid):
        return True
    start = record.get("proc_start")
    return start is not None and _proc_start(pid) not in (None, start)


def _describe(record: dict[str, Any] | None) -> str:
    if not record:
        return "a process that has not recorded itself yet"
    cmd = record.get("command")
    return (f"pid {record.get('pid')} on host {record.get('host')!r}, started {record.get('started')}"
            + (f" ({cmd})" if cmd else ""))


class RunLock:
    """An exclusive lock on a run folder for as long as the ``with`` block runs.

    Args:
        out: the run folder (it must exist).

    Raises:
        RunDirLockedError: another run holds the folder (on entering the block, at once).

    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> with RunLock(d):
    ...     try:
    ...         RunLock(d).__enter__()
    ...     except RunDirLockedError as e:
    ...         print("refused:", "pid" in str(e))
    refused: True
    """

    def __init__(self, out: str | os.PathLike) -> None:
        self.out = Path(out)
        self._lock: Any = None

    def _record(self) -> dict[str, Any] | None:
        try:
            rec = json.loads((self.out / HOLDER_FILE).read_text())
        except (OSError, ValueError):
            return None
        return rec if isinstance(rec, dict) else None

    def __enter__(self) -> "RunLock":
        import filelock

        for attempt in range(2):
            lock = filelock.FileLock(str(self.out / LOCK_FILE), timeout=0, thread_local=False)
            try:
                lock.acquire()
                break
            except filelock.Timeout:
                record = self._record()
                stale = record is not None and holder_gone(record) and not _flock_held(self.out / LOCK_FILE)
                if attempt == 0 and stale:
                    # a lock file without flock left by a process that is gone: take it over
                    for name in (LOCK_FILE, HOLDER_FILE):
                        (self.out / name).unlink(missing_ok=True)
                    continue
                raise RunDirLockedError(
                    f"{str(self.out)!r} is in use by another run: {_describe(record)}; wait for it to finish or "
                    "stop it (a killed run frees the folder at once), or choose another --out") from None
        self._lock = lock
        from ray_nasrank._io import atomic_write_json

        pid = os.getpid()
        atomic_write_json(self.out / HOLDER_FILE, {
            "pid": pid, "host": socket.gethostname(), "proc_start": _proc_start(pid),
            "started": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv and sys.argv[0] else None})
        return self

    def __exit__(self, *exc: Any) -> None:
        (self.out / HOLDER_FILE).unlink(missing_ok=True)
        if self._lock is not None:
            self._lock.release()
            self._lock = None


def _flock_held(path: Path) -> bool:
    """Whether some process holds an ``flock`` on ``path`` (False where ``flock`` is not available)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not a Unix
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


# ---------------------------------------------------------------------- manifest
#: the manifest inside ``--out``: every artefact the package wrote, with its size and sha256
MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = "ray_nasrank.run/1"


class RunDirError(ValueError):
    """The output folder cannot be resumed as it is (the message names the file and the remedy)."""


def file_digest(path: Path) -> dict[str, Any]:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return {"size": path.stat().st_size, "sha256": h.hexdigest()}


def _ray_pickles(root: Path) -> list[Path]:
    """The files of a Tune experiment folder that Ray unpickles on a restore: ``tuner.pkl``, the
    trials' ``params.pkl``, and its state records (``experiment_state-*.json`` holds pickled
    objects too; ``search_gen_state-*.json`` and ``basic-variant-state-*.json`` are pickles)."""
    if not root.is_dir():
        return []
    return [p for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()
            and (p.suffix == ".pkl" or (p.suffix == ".json" and "state" in p.name))]


class Manifest:
    """``manifest.json``: size and sha256 of every artefact the package wrote into a run folder.

    :meth:`record` is called right after an artefact is written (atomically), :meth:`check` when
    a run resumes: an artefact whose bytes differ from what was recorded, or that is missing,
    is reported, and so is a file present but never recorded (written by someone else, or a
    crash between the write and the record).

    Args:
        out: the run folder.
    """

    def __init__(self, out: str | os.PathLike) -> None:
        self.out = Path(out)
        self.path = self.out / MANIFEST_FILE
        self.entries: dict[str, dict[str, Any]] = {}

    @classmethod
    def open(cls, out: str | os.PathLike, artefacts: dict[str, str]) -> "Manifest":
        """The folder's manifest; a fresh one for a folder holding none of ``artefacts``.

        Raises:
            RunDirError: artefacts without a manifest, or a manifest the package did not write.
        """
        m = cls(out)
        if not m.path.is_file():
            present = [name for name in artefacts.values() if (m.out / name).exists()]
            if present:
                raise RunDirError(
                    f"{str(m.out)!r} holds {', '.join(present[:4])}{' ...' if len(present) > 4 else ''} but no "
                    f"{MANIFEST_FILE}: it was not written by this version of ray-nasrank, so its files cannot be "
                    "checked; choose another --out (or move those files away to start over here)")
            m.save()
            return m
        try:
            doc = json.loads(m.path.read_text())
        except (OSError, ValueError) as e:
            raise RunDirError(f"{str(m.path)!r} is corrupt ({e}); the folder's artefacts cannot be checked: "
                              "choose another --out to start over") from None
        entries = doc.get("artefacts") if isinstance(doc, dict) and doc.get("format") == MANIFEST_FORMAT else None
        if not isinstance(entries, dict) or not all(
                isinstance(v, dict) and isinstance(v.get("size"), int) and isinstance(v.get("sha256"), str)
                for v in entries.values()):
            raise RunDirError(f"{str(m.path)!r} is not a manifest ray-nasrank wrote; the folder cannot be resumed: "
                              "choose another --out")
        m.entries = {str(k): dict(v) for k, v in entries.items()}
        return m

    def save(self) -> None:
        from ray_nasrank import __version__
        from ray_nasrank._io import atomic_write_json

        atomic_write_json(self.path, {"format": MANIFEST_FORMAT, "package": "ray_nasrank", "version": __version__,
                                      "artefacts": dict(sorted(self.entries.items()))})

    def record(self, *names: str) -> None:
        """Record the artefacts ``names`` (files inside the folder) as they are now."""
        for name in names:
            path = self.out / name
            if path.is_file():
                self.entries[name] = file_digest(path)
            else:
                self.entries.pop(name, None)
        self.save()

    def record_tree(self, folder: str) -> None:
        """Record the files of the Tune experiment ``folder`` that Ray reads with pickle
        (``*.pkl`` and its ``*state*.json`` records), replacing what was recorded for it before."""
        self.entries = {k: v for k, v in self.entries.items() if not k.startswith(folder + "/")}
        for path in _ray_pickles(self.out / folder):
            self.entries[path.relative_to(self.out).as_posix()] = file_digest(path)
        self.save()

    def check_tree(self, folder: str) -> None:
        """A recorded ``folder`` must hold exactly the files recorded for it, as recorded
        (files Tune removed since are fine: a missing file runs nothing).

        Raises:
            RunDirError: a file changed or added since the run recorded the folder.
        """
        recorded = {k for k in self.entries if k.startswith(folder + "/")}
        root = self.out / folder
        if not recorded or not root.is_dir():
            return  # never recorded (the step was killed in its first call): Ray's records, Ray's trust
        for path in _ray_pickles(root):
            name = path.relative_to(self.out).as_posix()
            problem = "not written by this run" if name not in recorded else self.problem(name)
            if problem is not None and problem != "missing":
                raise RunDirError(
                    f"{str(path)!r} is {problem}: Ray reads the records of {folder}/ with pickle, so the folder "
                    f"is not resumed; delete {str(root)!r} to run that step again from scratch (its trainings are "
                    "repeated), or choose another --out")

    def forget(self, *names: str) -> None:
        for name in names:
            self.entries.pop(name, None)
        self.save()

    def problem(self, name: str) -> str | None:
        """What is wrong with artefact ``name``: ``None`` when it is as recorded (or absent and
        never recorded), else ``missing``, ``not recorded`` or how its size or hash differs."""
        path = self.out / name
        entry = self.entries.get(name)
        if entry is None:
            return "not recorded in the manifest" if path.exists() else None
        if not path.is_file():
            return "missing"
        now = file_digest(path)
        if now["size"] != entry["size"]:
            return f"{now['size']} bytes instead of the {entry['size']} written"
        if now["sha256"] != entry["sha256"]:
            return "its content differs from what was written (sha256)"
        return None


#: artefacts assembled together at the end of a run: one of them redone means all of them
FINAL_TABLES = ("results", "random", "rungs", "final", "best")
#: artefacts that hold what cannot be computed again (the run's settings, the data it used)
KEPT = ("config", "data")


def check_artefacts(manifest: Manifest, artefacts: dict[str, str]) -> list[str]:
    """Check a resumed folder's artefacts against ``manifest``; returns the names removed to be
    computed again (they can be derived from the others), after a warning naming each.

    ``steps.json`` (step times) is dropped with a warning: the times of earlier calls are lost,
    nothing else. ``config.json`` and ``data.json`` cannot be derived once later steps were
    computed with the settings and data they record: a problem with either is then an error
    naming the file and the remedy.

    Raises:
        RunDirError: ``config.json`` or ``data.json`` is missing or corrupt while later artefacts exist.
    """
    import warnings

    files = {k: v for k, v in artefacts.items() if "." in v}  # the others are folders (Tune's, the report)
    problems = {k: p for k, p in ((k, manifest.problem(v)) for k, v in files.items()) if p is not None}
    later = [k for k in files if k not in (*KEPT, "steps") and (manifest.out / files[k]).exists()
             and k not in problems] + [k for k in ("tune", "tune_random", "tune_final")
                                       if k in artefacts and (manifest.out / artefacts[k]).is_dir()]
    for key in KEPT:
        if key in problems and later:
            raise RunDirError(
                f"{str(manifest.out / files[key])!r} is {problems[key]}: it records the "
                f"{'settings' if key == 'config' else 'data and splits'} the run's other artefacts were computed "
                "with, and cannot be computed again; restore it, or choose another --out to start over")
    if any(k in problems for k in FINAL_TABLES):
        problems.update({k: problems.get(k, "assembled with a table that is redone")
                         for k in FINAL_TABLES if (manifest.out / files[k]).exists() or k in problems})
    for key in problems:
        path = manifest.out / files[key]
        if path.exists() and not path.is_file():
            raise RunDirError(f"{str(path)!r} is not a file (the run wrote one there); move it away to let the run "
                              "compute it again, or choose another --out")
    removed = []
    for key, problem in problems.items():
        what = ("the step times of earlier calls are lost (only this call's are kept)" if key == "steps"
                else "it is computed again")
        warnings.warn(f"{str(manifest.out / files[key])!r} is {problem}; {what}", RuntimeWarning, stacklevel=3)
        (manifest.out / files[key]).unlink(missing_ok=True)
        removed.append(key)
    if removed:
        manifest.forget(*(files[k] for k in removed))
    return removed


@contextlib.contextmanager
def tune_records(manifest: Manifest, *folders: str) -> Iterator[None]:
    """Around Tune steps: their folders are checked against the manifest before Tune reads them,
    and recorded however the steps end (finished, Ctrl-C, an error), unless their records were refused.

    Raises:
        RunDirError: a record of a folder changed or was added since the run recorded it.
    """
    for folder in folders:
        manifest.check_tree(folder)
    try:
        yield
    except RunDirError:
        raise
    except BaseException:
        for folder in folders:
            manifest.record_tree(folder)
        raise
    for folder in folders:
        manifest.record_tree(folder)


def check_tune_state(path: Path, searcher_kind: str | None = None) -> None:
    """Check a Tune experiment folder of the run before ``Tuner.restore`` reads it: Tune's
    experiment state (JSON) must parse, and the searcher's state (``searcher-state-*.pkl``, written by
    :class:`~ray_nasrank.integrations.tune.NASRankSearcher` as JSON and arrays) must be one.

    Raises:
        RunDirError: the first file that is not, with the remedy (the step is run again from scratch
            once its folder is deleted).
    """
    from ray_nasrank._state import StateError, read_npz

    remedy = (f"delete the folder {str(path)!r} to run that step again from scratch (its trainings are repeated), "
              "or choose another --out")
    for f in sorted(path.glob("experiment_state-*.json")):
        try:
            json.loads(f.read_text())
        except (OSError, ValueError) as e:
            raise RunDirError(f"{str(f)!r} is corrupt ({type(e).__name__}: {e}): Tune's record of the "
                              f"{path.name!r} step cannot be read; {remedy}") from None
    if searcher_kind is not None:
        for f in sorted(path.glob("searcher-state-*.pkl")):
            try:
                read_npz(f, searcher_kind)
            except (OSError, StateError) as e:
                raise RunDirError(f"the searcher state {str(f)!r} cannot be read ({e}); {remedy}") from None


def restore_error(path: Path, error: BaseException) -> RunDirError:
    """The error for a Tune experiment folder of the run that ``Tuner.restore`` cannot read."""
    text = str(error).strip().splitlines()
    return RunDirError(f"Tune cannot restore {str(path)!r} ({type(error).__name__}"
                       f"{': ' + text[0][:300] if text else ''}); delete that folder to run the step again from "
                       "scratch (its trainings are repeated), or choose another --out")


__all__ = ["HOLDER_FILE", "LOCK_FILE", "MANIFEST_FILE", "Manifest", "RunDirError", "RunDirLockedError", "RunLock",
           "check_artefacts", "check_tune_state", "file_digest", "holder_gone", "restore_error", "tune_records"]
