"""What every reliability scenario shares: a result record, a case log and a hang guard.

A *scenario* tries many *cases* (one fuzz input, one interrupted search, one killed actor...)
and counts the cases whose outcome broke a promise as *failures*. Each scenario returns a
:class:`ScenarioResult`; the benchmark writes them as JSON and the tests assert
``failures == 0``.

>>> log = CaseLog("demo")
>>> with log.case("1 + 1") as c:
...     c.check(1 + 1 == 2, "arithmetic")
>>> log.result().as_dict()["cases"], log.result().failures
(1, 0)
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

#: failure examples kept per scenario (the count is always exact)
MAX_EXAMPLES = 10


class CaseTimeout(Exception):
    """A case ran past its time limit (a hang)."""


class CaseFailure(AssertionError):
    """A case broke one of the scenario's promises."""


@dataclass
class ScenarioResult:
    """Outcome of one scenario: how many cases ran, how many failed, and measurements."""

    name: str
    cases: int = 0
    failures: int = 0
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failures == 0 and self.cases > 0

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "cases": self.cases, "failures": self.failures,
                "seconds": round(self.seconds, 3), "ok": self.ok, "details": self.details,
                "failure_examples": list(self.examples)}

    def summary(self) -> str:
        tail = f"; first failure: {self.examples[0]}" if self.examples else ""
        return f"{self.name}: {self.cases} cases, {self.failures} failures, {self.seconds:.1f} s{tail}"


class _Case:
    def __init__(self, label: str) -> None:
        self.label = label

    def check(self, condition: Any, message: str) -> None:
        """Fail the case with ``message`` unless ``condition`` holds."""
        if not condition:
            raise CaseFailure(message)


class CaseLog:
    """Counts cases and failures of one scenario; ``case()`` turns any exception into a failure."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._result = ScenarioResult(name)
        self._t0 = time.perf_counter()

    @contextlib.contextmanager
    def case(self, label: str, timeout_s: float | None = None) -> Iterator[_Case]:
        c = _Case(label)
        self._result.cases += 1
        try:
            with time_limit(timeout_s, label):
                yield c
        except Exception as e:  # every unexpected outcome is a counted failure, never a crash
            self.fail(label, f"{type(e).__name__}: {e}")

    def fail(self, label: str, message: str) -> None:
        self._result.failures += 1
        if len(self._result.examples) < MAX_EXAMPLES:
            self._result.examples.append(f"{label[:300]}: {message[:500]}")

    def count(self, n: int = 1) -> None:
        """Count ``n`` cases checked elsewhere (their failures go through :meth:`fail`)."""
        self._result.cases += n

    @property
    def details(self) -> dict[str, Any]:
        return self._result.details

    def result(self) -> ScenarioResult:
        self._result.seconds = time.perf_counter() - self._t0
        return self._result


def load_factor() -> float:
    """How many times slower than idle this machine runs now: the 1-minute load average per
    CPU, at least 1 (1 where the load average is unknown)."""
    import os

    try:
        return max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))
    except (AttributeError, OSError):
        return 1.0


@contextlib.contextmanager
def time_limit(seconds: float | None, what: str = "case") -> Iterator[None]:
    """Raise :class:`CaseTimeout` in the main thread if the block runs past ``seconds``.

    ``seconds`` is what the block may take on an idle machine: it is stretched by
    :func:`load_factor` at entry, so a loaded machine is not mistaken for a hang. Uses
    ``SIGALRM`` (Unix, main thread); elsewhere it only measures and raises afterwards, so a hang
    is still reported (late) instead of silently passing. An alarm that lands inside a C
    extension (Ray's ``CoreWorker.wait`` turns it into a ``SystemError``) is still reported as
    the :class:`CaseTimeout` it is.
    """
    if not seconds:
        yield
        return
    seconds = round(seconds * load_factor(), 1)
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    t0 = time.perf_counter()
    if usable:
        fired = []

        def _alarm(signum, frame):  # noqa: ARG001 - signal handler signature
            fired.append(True)
            raise CaseTimeout(f"{what!r} ran past {seconds} s")

        old = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            yield
        except CaseTimeout:
            raise
        except Exception as e:
            if fired:
                raise CaseTimeout(f"{what!r} ran past {seconds} s (surfaced as {type(e).__name__})") from e
            raise
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
    else:
        yield
        if time.perf_counter() - t0 > seconds:
            raise CaseTimeout(f"{what!r} ran past {seconds} s")


def rss_bytes() -> int:
    """Current resident set size of this process (Linux ``/proc``; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        import os

        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def short_temp_dir(prefix: str = "r") -> str:
    """A new folder for a Ray session, short enough for Ray's socket paths.

    Ray puts ``<folder>/session_<date>_<pid>/sockets/plasma_store.<n>`` under it, and AF_UNIX
    paths stop at 107 bytes: a nested ``TMPDIR`` (``mktemp -d`` inside CI's own) overflows that, so
    a long temp dir gives way to ``/tmp``.
    """
    base = tempfile.gettempdir()
    return tempfile.mkdtemp(prefix=prefix, dir=base if len(base) <= 30 else "/tmp")


def start_cluster(num_cpus: int = 2, object_store_mb: int = 400) -> Any:
    """The head of a ``ray.cluster_utils.Cluster`` in a short temp dir of its own, safe on a machine
    where Ray has never run (never ``AutoscalingCluster``, which kills every Ray on the machine).

    ``Cluster`` writes its address file under the *default* temp dir (``$TMPDIR/ray``) even
    when given a ``temp_dir`` of its own, and fails with ``FileNotFoundError`` where that
    folder does not exist yet, i.e. on a fresh machine or with a fresh ``TMPDIR``.
    """
    from ray.cluster_utils import Cluster

    os.makedirs(os.path.join(tempfile.gettempdir(), "ray"), exist_ok=True)
    return Cluster(initialize_head=True, head_node_args={
        "num_cpus": num_cpus, "include_dashboard": False, "object_store_memory": object_store_mb * 1024 * 1024,
        "temp_dir": short_temp_dir()})
