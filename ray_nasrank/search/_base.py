"""The :class:`Strategy` ask/tell core every search strategy shares.

A strategy proposes architectures with :meth:`Strategy.ask` and learns their results through
:meth:`Strategy.tell`. The base class owns the bookkeeping that must be identical for every
strategy, so the subclasses only decide *what* to propose:

- de-duplication by isomorphism key: an arch whose ``space.iso_key`` was already asked, told,
  queued or is pending is never proposed again (failed ones included);
- the queue of user points (``points_to_evaluate``) asked before any proposal, and warm-start
  results (``evaluated_rewards``);
- failed trials (``None``/NaN/inf) recorded and never re-proposed;
- ``mode``: values stay in the caller's units; subclasses see scores where higher is better;
- the whole state as a dict of plain data, saved atomically as JSON and arrays (reading it runs
  no code), so a resumed run neither loses nor repeats a trial and, when seeded, asks exactly
  what the uninterrupted run would have asked.

Example (a complete loop without Optuna or Ray):

>>> from ray_nasrank.spaces import NB201Space
>>> from ray_nasrank.search import make_strategy
>>> s = make_strategy("random", NB201Space(), seed=0)
>>> for arch in s.ask(4):
...     s.tell(arch, float(arch.count("nor_conv_3x3")))
>>> len(s.history), s.best[1] >= 0
(4, True)
"""

from __future__ import annotations

import abc
import copy
import math
import numbers
import os
from typing import Any, Hashable, Sequence

import numpy as np

from ray_nasrank._checks import check_int, check_mode
from ray_nasrank.spaces import Arch, SearchSpace

#: spaces up to this size are walked through a seeded permutation instead of rejection sampling
_ENUMERABLE = 1 << 20
STATE_VERSION = 1


def nearest_first(space: SearchSpace, pool_features: np.ndarray, arch: Arch) -> np.ndarray:
    """Pool indices ordered by their distance to ``arch``, nearest first (ties in pool order).

    The distance is Euclidean over ``space.features``: one-hot categoricals and numeric values
    in ``[0, 1]`` of their transform, so a pool of configs with floats (a table of runs) has
    neighbours even though it almost never holds a config one exact step away.

    Args:
        space: the space of the pool and of ``arch``.
        pool_features: ``space.features`` of the pool's archs, one row per arch.
        arch: the arch whose neighbours are wanted.

    Returns:
        Indices into the pool, nearest first.
    """
    dist = np.square(pool_features - space.features([arch])[0]).sum(axis=1)
    return np.argsort(dist, kind="stable")


def as_value(value: Any) -> float | None:
    """A told value as a finite float, or ``None`` for a failed trial (None, NaN, +-inf).

    Args:
        value: what a trial reported.

    Returns:
        ``float(value)``, or ``None`` for a failure.

    Raises:
        TypeError: not a real number (a bool or a string is not one).

    >>> as_value(91.5), as_value(float("nan")), as_value(None)
    (91.5, None, None)
    """
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"value must be a real number or None (failed trial), got {value!r}")
    v = float(value)
    return v if math.isfinite(v) else None


class Strategy(abc.ABC):
    """Ask/tell search over a :class:`~ray_nasrank.spaces.SearchSpace`.

    Subclasses implement :meth:`_propose` and may react to results in :meth:`_observe`; all
    de-duplication, queueing and state handling happens here.

    Args:
        space: the search space.
        seed: seed of every random choice (``None``: not reproducible).
        mode: ``max`` when higher told values are better, ``min`` when lower are.
        candidates: a finite pool to propose from (e.g. a table's archs); ``None``: the whole space.

    Raises:
        TypeError: ``space`` is not a :class:`~ray_nasrank.spaces.SearchSpace`, or ``seed`` not an int.
        ValueError: an unknown ``mode``, an empty ``candidates`` or one outside the space.
    """

    #: registry name (``make_strategy``)
    name: str = "strategy"
    #: attributes rebuilt after loading instead of being saved (threads, locks, caches)
    _TRANSIENT: tuple[str, ...] = ("_space_list",)

    def __init__(self, space: SearchSpace, seed: int | None = None, mode: str = "max",
                 candidates: Sequence[Arch] | None = None) -> None:
        if not isinstance(space, SearchSpace):
            raise TypeError(f"space must be a SearchSpace, got {type(space).__name__}: {space!r}")
        self.space = space
        self.seed = check_int("seed", seed, low=0, optional=True)
        self.mode = check_mode(mode)
        self._rng = np.random.default_rng(self.seed)
        self._candidates: list[Arch] | None = None
        if candidates is not None:
            pool = list(dict.fromkeys(space.validate(a) for a in candidates))
            if not pool:
                raise ValueError("candidates is empty; pass None to search the whole space")
            self._candidates = pool
        self._seen: set[Hashable] = set()          # iso keys asked, told, queued or pending
        self._pending: dict[Arch, int] = {}        # arch -> ask number
        self._queue: list[Arch] = []               # enqueued points, asked first
        self._told: dict[Arch, int] = {}           # arch -> index into _history
        self._history: list[dict[str, Any]] = []
        self._asked = 0
        self._perm: np.ndarray | None = None       # random walk over the pool / small space
        self._perm_pos = 0

    # ------------------------------------------------------------------ subclass hooks
    @abc.abstractmethod
    def _propose(self, n: int) -> list[Arch]:
        """Up to ``n`` distinct archs whose iso key is unseen (see :meth:`is_new`)."""

    def _observe(self, arch: Arch, score: float | None, source: str) -> None:
        """A result arrived: ``score`` is higher-is-better, ``None`` for a failed trial."""

    def _wait(self) -> None:
        """Block until background work (an async refit) is done; default: nothing runs."""

    def _restore_transient(self) -> None:
        """Rebuild the attributes named in ``_TRANSIENT`` after :meth:`load_state_dict`."""

    # ------------------------------------------------------------------ public API
    @property
    def ready(self) -> bool:
        """False while background work runs (a Tune searcher then answers ``None``)."""
        return True

    @property
    def candidates(self) -> list[Arch] | None:
        return None if self._candidates is None else list(self._candidates)

    def ask(self, n: int = 1) -> list[Arch]:
        """Propose up to ``n`` new archs (queued points first); fewer only when exhausted.

        Every returned arch is pending until told.
        """
        n = check_int("n", n, low=1)
        self._wait()
        out: list[Arch] = []
        while self._queue and len(out) < n:
            out.append(self._queue.pop(0))
        batch_keys: set[Hashable] = set()
        for _ in range(3):  # a proposal may collide with itself; retry, then fall back to random
            if len(out) >= n:
                break
            fresh = self._accept(self._propose(n - len(out)), batch_keys)
            out += fresh
            if not fresh:
                break
        if len(out) < n:
            out += self._accept(self._random_unseen(n - len(out), batch_keys), batch_keys)
        for a in out:
            self._pending[a] = self._asked
            self._asked += 1
        return out

    def tell(self, arch: Any, value: Any) -> None:
        """Record the result of ``arch``: a number in the caller's units, or ``None``/NaN/inf
        for a failed trial. Archs never asked are accepted (user-evaluated points)."""
        self._record(arch, value, "asked")

    def add_evaluated(self, arch: Any, value: Any) -> None:
        """Warm start: a point evaluated elsewhere (``points_to_evaluate`` + ``evaluated_rewards``)."""
        self._record(arch, value, "warm")

    def enqueue(self, arch: Any) -> bool:
        """Ask ``arch`` before any proposal (``points_to_evaluate`` without rewards).

        Returns False (and queues nothing) if an isomorphic arch was already asked, told or
        queued, since evaluating it again would repeat a trial.
        """
        arch = self.space.validate(arch)
        key = self.space.iso_key(arch)
        if key in self._seen:
            return False
        self._seen.add(key)
        self._queue.append(arch)
        return True

    def claim(self, arch: Any) -> bool:
        """Mark ``arch`` pending without proposing it: someone else is evaluating it now (another
        worker of a shared study, or a trial in flight when the driver restarted). It is never
        proposed, and its result arrives through :meth:`tell` like any pending arch.

        Returns False (and changes nothing) if an isomorphic arch was already asked, told or
        queued.
        """
        arch = self.space.validate(arch)
        key = self.space.iso_key(arch)
        if key in self._seen:
            return False
        self._seen.add(key)
        self._pending[arch] = self._asked
        self._asked += 1
        return True

    def status(self, arch: Any) -> str | None:
        """``"queued"``, ``"pending"``, ``"ok"``, ``"failed"`` or ``None`` (never seen)."""
        arch = self.space.validate(arch)
        if arch in self._told:
            return self._history[self._told[arch]]["status"]
        if arch in self._pending:
            return "pending"
        if arch in self._queue:
            return "queued"
        return None

    def is_new(self, arch: Arch) -> bool:
        """Whether no isomorphic arch was asked, told, queued or is pending."""
        return self.space.iso_key(arch) not in self._seen

    @property
    def pending(self) -> set[Arch]:
        return set(self._pending)

    @property
    def history(self) -> list[dict[str, Any]]:
        """One dict per told arch: ``arch``, ``value`` (None if failed), ``status``
        (``ok``/``failed``), ``order`` (tell number), ``source`` (asked/external/warm)."""
        return [dict(h) for h in self._history]

    @property
    def best(self) -> tuple[Arch, float] | None:
        ok = [h for h in self._history if h["status"] == "ok"]
        if not ok:
            return None
        h = max(ok, key=lambda h: self._score(h["value"]))
        return h["arch"], h["value"]

    def observations(self) -> tuple[list[Arch], np.ndarray]:
        """Successful archs and their scores (higher is better, whatever the mode)."""
        ok = [h for h in self._history if h["status"] == "ok"]
        return [h["arch"] for h in ok], np.array([self._score(h["value"]) for h in ok], dtype=np.float64)

    def exhausted(self) -> bool:
        """True when every iso class of the pool (or space) was asked or told."""
        return not self._random_unseen_probe()

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume, as a dict (a deep copy) of data: values, arrays and the package's own objects."""
        self._wait()
        state = {k: v for k, v in self.__dict__.items() if k not in self._TRANSIENT}
        cls = type(self)
        return {"class": f"{cls.__module__}:{cls.__qualname__}", "version": STATE_VERSION,
                "state": copy.deepcopy(state)}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        """Replace this strategy's state by ``d`` (from :meth:`state_dict` of the same class)."""
        if not isinstance(d, dict) or not {"class", "version", "state"} <= set(d):
            raise ValueError("not a strategy state dict: expected keys 'class', 'version', 'state'")
        cls = type(self)
        here = f"{cls.__module__}:{cls.__qualname__}"
        if d["class"] != here:
            raise ValueError(f"state of {d['class']!r} cannot be loaded into {here!r}")
        if d["version"] != STATE_VERSION:
            raise ValueError(f"state version {d['version']!r} is not supported (expected {STATE_VERSION})")
        state = d["state"]
        if "space" in getattr(self, "__dict__", {}) and state.get("space") != self.space:
            raise ValueError(f"state was saved for space {state.get('space')!r}, not {self.space!r}")
        self._wait()
        self.__dict__.update(copy.deepcopy(state))
        self._restore_transient()

    #: what :meth:`save` writes (``kind`` of a :mod:`ray_nasrank._state` file)
    FILE_KIND = "ray_nasrank.Strategy/2"

    def save(self, path: str | os.PathLike) -> None:
        """Write :meth:`state_dict` to ``path`` atomically (a crash never leaves half a file), as
        JSON and arrays (an ``.npz`` of :mod:`ray_nasrank._state`): reading it runs no code.

        Raises:
            TypeError: the state holds something that is not data (e.g. a function passed as
                ``weak``); the message gives where.
        """
        from ray_nasrank._state import write_npz

        write_npz(path, self.FILE_KIND, self.state_dict())

    def load(self, path: str | os.PathLike) -> None:
        """Load a state written by :meth:`save`.

        Raises:
            ValueError: not a strategy state of this class, or a corrupt one (the message names the file).
        """
        self.load_state_dict(_read_state(path))

    @staticmethod
    def from_state_dict(d: dict[str, Any]) -> "Strategy":
        """Rebuild a strategy of the saved class without calling its constructor (the class must
        be one of the package's strategies: checked before anything is built)."""
        from ray_nasrank._state import StateError, resolve_class

        if not isinstance(d, dict) or "class" not in d:
            raise ValueError("not a strategy state dict: missing 'class'")
        try:
            cls = resolve_class(d["class"])
        except StateError as e:
            raise ValueError(f"refusing to load strategy class {d['class']!r}: {e}") from None
        if not issubclass(cls, Strategy):
            raise ValueError(f"refusing to load strategy class {d['class']!r}: not a Strategy")
        obj = cls.__new__(cls)
        obj._restore_transient()
        obj.load_state_dict(d)
        return obj

    @staticmethod
    def from_file(path: str | os.PathLike) -> "Strategy":
        """The strategy :meth:`save` wrote to ``path`` (reading it runs no code)."""
        return Strategy.from_state_dict(_read_state(path))

    # ------------------------------------------------------------------ internals
    def _score(self, value: float) -> float:
        return value if self.mode == "max" else -value

    def _record(self, arch: Any, value: Any, source: str) -> None:
        arch = self.space.validate(arch)
        v = as_value(value)
        if arch in self._told:
            raise ValueError(f"architecture {self.space.to_string(arch)!r} was already told")
        if arch in self._pending:
            del self._pending[arch]
        else:
            if source == "asked":
                source = "external"
            if arch in self._queue:
                self._queue.remove(arch)
            self._seen.add(self.space.iso_key(arch))
        self._told[arch] = len(self._history)
        self._history.append({"arch": arch, "value": v, "status": "ok" if v is not None else "failed",
                              "order": len(self._history), "source": source})
        self._observe(arch, None if v is None else self._score(v), source)

    def _accept(self, archs: Sequence[Arch], batch_keys: set[Hashable]) -> list[Arch]:
        out = []
        for a in archs:
            a = self.space.validate(a)
            key = self.space.iso_key(a)
            if key in self._seen or key in batch_keys:
                continue
            batch_keys.add(key)
            self._seen.add(key)
            out.append(a)
        return out

    def _walkable(self) -> bool:
        """Whether random proposals walk a seeded permutation (a pool, or a small finite space)
        instead of drawing from the prior with rejection."""
        return self._candidates is not None or (self.space.finite and self.space.size <= _ENUMERABLE)

    def _pool_size(self) -> int:
        if self._candidates is not None:
            return len(self._candidates)
        if self.space.indexable:
            return int(self.space.size)
        return len(self._listed())

    def _pool_arch(self, i: int) -> Arch:
        if self._candidates is not None:
            return self._candidates[i]
        if self.space.indexable:
            return self.space.arch_at(i)
        return self._listed()[i]

    def _listed(self) -> list[Arch]:
        """Every configuration of a small finite conditional space (no index order of its own)."""
        listed = self.__dict__.get("_space_list")
        if listed is None:
            listed = self.__dict__["_space_list"] = list(self.space.enumerate())
        return listed

    def _random_unseen(self, n: int, exclude: set[Hashable] = frozenset()) -> list[Arch]:
        """Up to ``n`` uniformly random archs of the pool with unseen iso keys (not reserved)."""
        out: list[Arch] = []
        keys: set[Hashable] = set()
        if self._walkable():
            if self._perm is None:
                self._perm = self._rng.permutation(self._pool_size())
                self._perm_pos = 0
            # seen keys never become unseen, so the walk can skip them for good
            pos = self._perm_pos
            while pos < len(self._perm) and len(out) < n:
                a = self._pool_arch(int(self._perm[pos]))
                key = self.space.iso_key(a)
                if key in self._seen or key in exclude:
                    if len(out) == 0:
                        self._perm_pos = pos + 1
                elif key not in keys:
                    keys.add(key)
                    out.append(a)
                pos += 1
            return out
        tries = 0
        while len(out) < n and tries < 1000 * n:
            a = self.space.sample(self._rng)
            key = self.space.iso_key(a)
            tries += 1
            if key in self._seen or key in exclude or key in keys:
                continue
            keys.add(key)
            out.append(a)
        return out

    def _random_unseen_probe(self) -> bool:
        if self._walkable():
            keys = self._pool_keys()
            return any(k not in self._seen for k in keys)
        return True

    def _pool_keys(self) -> list[Hashable]:
        return [self.space.iso_key(self._pool_arch(i)) for i in range(self._pool_size())]

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(space={self.space!r}, seed={self.seed}, mode={self.mode!r}, "
                f"told={len(self._history)}, pending={len(self._pending)})")


def _read_state(path: str | os.PathLike) -> dict[str, Any]:
    from ray_nasrank._state import StateError, read_npz

    try:
        d = read_npz(path, Strategy.FILE_KIND)
    except StateError as e:
        raise ValueError(f"{e}; it is not a saved strategy state") from None
    if not isinstance(d, dict):
        raise ValueError(f"{str(path)!r} is not a saved strategy state")
    return d
