"""Progress bars and step messages for long steps, quiet where nobody watches.

Bars (tqdm) and step lines (rich) are shown only on an interactive terminal. They are off when
stderr is not a TTY (logs, pipes, notebooks' captured output), when ``CI`` is set to a true value,
or when ``TQDM_DISABLE`` is set to a true value; ``enabled=`` overrides the detection.

Example::

    from ray_nasrank.progress import progress, step

    with step("supernet"):                      # "supernet ... done in 3.2 s" on a terminal
        for epoch in progress(range(3), desc="supernet epochs", unit="epoch"):
            ...
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import Any, Iterable, Iterator, TypeVar

__all__ = ["progress_enabled", "progress", "step", "console"]

T = TypeVar("T")
_TRUE = {"1", "true", "yes", "on"}


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def progress_enabled(enabled: bool | None = None, stream: Any = None) -> bool:
    """Whether progress output should be shown.

    ``enabled`` (True/False) wins; otherwise progress is on only for a TTY ``stream`` (default
    stderr) with neither ``CI`` nor ``TQDM_DISABLE`` set to a true value.

    >>> progress_enabled(False)
    False
    """
    if enabled is not None:
        if not isinstance(enabled, bool):
            raise TypeError(f"enabled must be True, False or None, got {enabled!r}")
        return enabled
    if _env_true("CI") or _env_true("TQDM_DISABLE"):
        return False
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (ValueError, OSError):  # closed or detached stream
        return False


def progress(iterable: Iterable[T] | None = None, total: int | None = None, desc: str | None = None,
             unit: str = "it", enabled: bool | None = None, **kwargs: Any):
    """A ``tqdm`` bar, disabled unless :func:`progress_enabled`; use as an iterable or ``update()``.

    >>> sum(progress(range(4), enabled=False))
    6
    """
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=not progress_enabled(enabled),
                dynamic_ncols=True, leave=False, **kwargs)


def console(enabled: bool | None = None):
    """A ``rich`` console on stderr that prints only when progress is enabled."""
    from rich.console import Console

    return Console(stderr=True, quiet=not progress_enabled(enabled), highlight=False)


@contextlib.contextmanager
def step(name: str, enabled: bool | None = None) -> Iterator[dict]:
    """Time a step; on a terminal print ``name ...`` and ``done in X s`` (or the failure).

    Yields a dict whose ``"seconds"`` is filled when the step ends, so callers can record it.

    >>> with step("demo", enabled=False) as s:
    ...     pass
    >>> s["seconds"] >= 0
    True
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"step name must be a non-empty string, got {name!r}")
    con = console(enabled)
    info: dict = {"name": name, "seconds": None}
    con.print(f"[bold]{name}[/bold] ...")
    t0 = time.perf_counter()
    try:
        yield info
    except BaseException as e:
        info["seconds"] = time.perf_counter() - t0
        con.print(f"[red]{name} failed after {info['seconds']:.1f} s: {type(e).__name__}[/red]")
        raise
    info["seconds"] = time.perf_counter() - t0
    con.print(f"[green]{name}[/green] done in {info['seconds']:.1f} s")
