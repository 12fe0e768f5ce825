"""Atomic file writes: a reader (or a restarted run) never sees a truncated file."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)``, fsync, then rename over ``path`` (same directory, so atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    def _w(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    return atomic_write(path, _w)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def _default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot write {type(o).__name__} to JSON")


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, default=_default, allow_nan=True) + "\n")


def atomic_write_parquet(path: str | os.PathLike, df) -> Path:
    return atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))


def check_writable_dir(path: str | os.PathLike, min_free_bytes: int = 50 * 1024 * 1024) -> Path:
    """Create ``path`` if needed and prove it is writable with enough free space, before work starts."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PermissionError(f"cannot create output directory {str(p)!r}: {e.strerror}") from None
    if not p.is_dir():
        raise NotADirectoryError(f"output path {str(p)!r} exists and is not a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=p)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise PermissionError(f"output directory {str(p)!r} is not writable: {e.strerror}") from None
    free = os_free_bytes(p)
    if free is not None and free < min_free_bytes:
        raise OSError(
            f"output directory {str(p)!r} has only {free / 2**20:.1f} MiB free; "
            f"need at least {min_free_bytes / 2**20:.0f} MiB"
        )
    return p


def os_free_bytes(path: Path) -> int | None:
    try:
        st = os.statvfs(path)
    except (OSError, AttributeError):
        return None
    return st.f_bavail * st.f_frsize
