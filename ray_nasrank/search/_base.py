"""The :class:`Strategy` ask/tell core every search strategy shares.

A strategy proposes architectures with :meth:`Strategy.ask` and learns their results through
:meth:`Strategy.tell`. The base class owns the bookkeeping that must be identical for every
strategy, so the subclasses only decide *what* to propose:

- de-duplication by isomorphism key: an arch whose ``space.iso_key`` was already asked, told,
  queued or is pending is never proposed again (failed ones included);
- the queue of user points (``points_to_evaluate``) asked before any proposal, and warm-start
  results (``evaluated_rewards``);
- failed trials (``None``/NaN/inf) recorded and never re-proposed;
- fidelity: results at a partial fidelity (an epoch, a rung, a fraction of the data) kept per arch
  as a learning curve, apart from full-fidelity results (``tell(arch, value, fidelity=...)``,
  docs/concepts/fidelity.md): :meth:`Strategy.observations` and :attr:`Strategy.best` read only
  full-fidelity results, :meth:`Strategy.fidelity_levels` every level for a ranker that compares
  configs observed at the same fidelity only;
- ``mode``: values stay in the caller's units; subclasses see scores where higher is better;
  a list of modes means several objectives (a told value is then one number per objective,
  see :mod:`ray_nasrank.search._objectives`);
- constraints (``tell(..., constraints=[...])``, ``<= 0`` feasible, Optuna's convention) and
  ``known_constraints`` computed for every candidate without training: a candidate a known
  constraint rules out is never proposed;
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
from typing import Any, Hashable, Mapping, Sequence

import numpy as np

from ray_nasrank._checks import check_int
from ray_nasrank.spaces import Arch, SearchSpace

from ._objectives import Known, as_constraints, as_values, check_modes, known_values, non_dominated

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


def check_fidelity(key: str, value: Any, optional: bool = True) -> float | None:
    """A fidelity (epochs, a rung, a fraction of the data...) as a positive finite float.

    Args:
        key: the argument's name, for the error.
        value: the fidelity (``None``: the full one, when ``optional``).
        optional: whether ``None`` is allowed.

    Returns:
        ``float(value)``, or ``None``.

    Raises:
        TypeError: not a real number (a bool is not one).
        ValueError: zero, negative, NaN or infinite.

    >>> check_fidelity("fidelity", 3), check_fidelity("fidelity", None)
    (3.0, None)
    """
    if value is None and optional:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{key} must be a positive number (epochs, a rung, a fraction of the data), got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{key} must be a positive finite number, got {value!r}")
    return v


class Strategy(abc.ABC):
    """Ask/tell search over a :class:`~ray_nasrank.spaces.SearchSpace`.

    Subclasses implement :meth:`_propose` and may react to results in :meth:`_observe`; all
    de-duplication, queueing and state handling happens here.

    Args:
        space: the search space.
        seed: seed of every random choice (``None``: not reproducible).
        mode: ``max`` when higher told values are better, ``min`` when lower are; a list of
            them (one per objective) for a multi-objective search (strategies with
            ``multi_objective = True``).
        candidates: a finite pool to propose from (e.g. a table's archs); ``None``: the whole space.
        max_fidelity: the full fidelity, in the units :meth:`tell` gets (e.g. the epochs of a full
            training): a result told at it or above is a full-fidelity result. ``None``: the
            highest fidelity told so far counts as the full one (and a result told with
            ``fidelity=None`` is always full).
        known_constraints: constraints known without training, by position in the constraint
            vector (a list: positions 0, 1, ...): a name the space computes (``"params"``), values
            aligned to ``candidates`` or a callable ``archs -> values``; ``<= 0`` is feasible.
            Candidates they rule out are never proposed, and a told vector may leave their
            positions ``None`` (they are computed).

    Raises:
        TypeError: ``space`` is not a :class:`~ray_nasrank.spaces.SearchSpace`, or ``seed`` not an int.
        ValueError: an unknown ``mode``, several modes for a single-objective strategy, an empty
            ``candidates`` or one outside the space, or a ``max_fidelity`` that is not a positive number.
    """

    #: registry name (``make_strategy``)
    name: str = "strategy"
    #: whether the strategy searches several objectives at once (a list ``mode``)
    multi_objective: bool = False
    #: attributes holding quantities known without training (a function among them is not saved)
    _KNOWN: tuple[str, ...] = ("_known_constraints",)
    #: attributes rebuilt after loading instead of being saved (threads, locks, caches)
    _TRANSIENT: tuple[str, ...] = ("_space_list",)

    def __init__(self, space: SearchSpace, *, seed: int | None = None, mode: str | Sequence[str] = "max",
                 candidates: Sequence[Arch] | None = None, max_fidelity: float | None = None,
                 known_constraints: Sequence[Known] | Mapping[int, Known] | None = None) -> None:
        if not isinstance(space, SearchSpace):
            raise TypeError(f"space must be a SearchSpace, got {type(space).__name__}: {space!r}")
        self.space = space
        self.seed = check_int("seed", seed, low=0, optional=True)
        self.modes = check_modes(mode)
        if len(self.modes) > 1 and not self.multi_objective:
            from ._registry import multi_objective_strategies

            raise ValueError(f"strategy {self.name!r} searches one objective, got {len(self.modes)} modes "
                             f"{list(self.modes)}; several objectives: {multi_objective_strategies()}")
        # one objective keeps its mode a string, as before
        self.mode: str | tuple[str, ...] = self.modes[0] if len(self.modes) == 1 else self.modes
        self._known_constraints = _check_known_constraints(known_constraints)
        self._n_constraints: int | None = (max(self._known_constraints) + 1) if self._known_constraints else None
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
        self.max_fidelity = check_fidelity("max_fidelity", max_fidelity)
        self._top_fidelity: float | None = None    # highest partial fidelity told so far
        self._n_points = 0                         # successful observations, partial ones included
        self._restore_known_cache()

    # ------------------------------------------------------------------ subclass hooks
    @abc.abstractmethod
    def _propose(self, n: int) -> list[Arch]:
        """Up to ``n`` distinct archs whose iso key is unseen (see :meth:`is_new`)."""

    def _observe(self, arch: Arch, score: float | None, source: str) -> None:
        """A result arrived: ``score`` is higher-is-better, ``None`` for a failed trial."""

    def _observe_partial(self, arch: Arch, score: float, fidelity: float) -> None:
        """A partial-fidelity result arrived (higher-is-better ``score``); default: nothing."""

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
        if self._known_constraints and self._candidates is not None and not self.__dict__.get("_pool_checked"):
            self._require_feasible(self._candidates)  # before anything is trained
            self._pool_checked = True
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

    def tell(self, arch: Any, value: Any, *, fidelity: float | None = None,
             constraints: Sequence[float | None] | None = None) -> None:
        """Record a result of ``arch``: a number in the caller's units (one per objective, as a
        sequence, when there are several), or ``None``/NaN/inf for a failed trial (any objective
        NaN fails the trial). Archs never asked are accepted (user-evaluated points).

        Args:
            arch: the architecture.
            value: its result.
            fidelity: the fidelity the result was measured at (e.g. epochs trained); ``None`` (or
                at least ``max_fidelity``) for the full fidelity, which ends the arch's record.
                Below it, the result is one point of the arch's learning curve: evidence the
                ranker compares with other configs at the same fidelity, never a final label;
                more points may follow at higher fidelities, then a full-fidelity result.
            constraints: its constraint values, ``<= 0`` feasible (Optuna's convention; the same
                count for every trial; ``None`` at a position a known constraint computes).

        Raises:
            ValueError: ``arch`` already has a full-fidelity result; a partial result that is
                not finite (tell a failure at full fidelity); a
                fidelity not above the arch's previous one; a value or constraint vector of the
                wrong length, or a NaN constraint.
            TypeError: a value, constraint or fidelity that is not a number.

        >>> from ray_nasrank.search import make_strategy
        >>> from ray_nasrank.spaces import CategoricalSpace
        >>> s = make_strategy("random", CategoricalSpace({"w": [8, 16, 32]}), seed=0, max_fidelity=9)
        >>> a, b = s.ask(2)
        >>> s.tell(a, 60.0, fidelity=1); s.tell(b, 70.0, fidelity=1)
        >>> s.tell(b, 82.0, fidelity=9)  # b trained to the full 9 epochs; a was stopped at epoch 1
        >>> s.best == (b, 82.0), s.status(a), [h["curve"] for h in s.history]
        (True, 'partial', [[[1.0, 60.0]], [[1.0, 70.0]]])
        """
        self._record(arch, value, "asked", fidelity, constraints)

    def add_evaluated(self, arch: Any, value: Any, *, fidelity: float | None = None,
                      constraints: Sequence[float | None] | None = None) -> None:
        """Warm start: a point evaluated elsewhere (``points_to_evaluate`` + ``evaluated_rewards``);
        ``fidelity`` and ``constraints`` as in :meth:`tell`."""
        self._record(arch, value, "warm", fidelity, constraints)

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
        """``"queued"``, ``"pending"``, ``"partial"`` (results below the full fidelity only),
        ``"ok"``, ``"failed"`` or ``None`` (never seen)."""
        arch = self.space.validate(arch)
        if arch in self._told:
            return self._history[self._told[arch]]["status"]
        if arch in self._pending:
            return "pending"
        if arch in self._queue:
            return "queued"
        return None

    def record(self, arch: Any) -> dict[str, Any] | None:
        """The :attr:`history` entry of ``arch`` (a copy), or ``None`` if it was never told."""
        arch = self.space.validate(arch)
        i = self._told.get(arch)
        if i is None:
            return None
        h = self._history[i]
        return {**h, "curve": [list(p) for p in h.get("curve", ())]}

    def is_new(self, arch: Arch) -> bool:
        """Whether no isomorphic arch was asked, told, queued or is pending."""
        return self.space.iso_key(arch) not in self._seen

    @property
    def pending(self) -> set[Arch]:
        return set(self._pending)

    @property
    def history(self) -> list[dict[str, Any]]:
        """One dict per told arch: ``arch``, ``value`` (None if failed; the latest partial result
        while ``partial``; a tuple with several objectives), ``status`` (``ok``/``failed``/``partial``),
        ``fidelity`` (of ``value``; ``None``: full), ``curve`` (``[fidelity, value]`` pairs below
        the full fidelity, in order), ``order`` (first tell number), ``source``
        (asked/external/warm), ``constraints`` (a tuple, NaN where unknown, or None) and
        ``feasible`` (no constraint value above 0)."""
        return [{**h, "curve": [list(p) for p in h.get("curve", ())]} for h in self._history]

    @property
    def full_fidelity(self) -> float | None:
        """``max_fidelity``, or without it the highest fidelity told so far (``None``: none told)."""
        return self.max_fidelity if self.max_fidelity is not None else self.__dict__.get("_top_fidelity")

    @property
    def n_observations(self) -> int:
        """Successful results told so far, every partial-fidelity point included."""
        return self.__dict__.get("_n_points", sum(h["status"] == "ok" for h in self._history))

    def _full_results(self) -> list[dict[str, Any]]:
        """History entries with a full-fidelity result (without ``max_fidelity``, a curve that
        reached the highest fidelity told counts as one)."""
        top = self.full_fidelity
        return [h for h in self._history if h["status"] == "ok"
                or (h["status"] == "partial" and self.max_fidelity is None and h["fidelity"] >= top)]

    @property
    def n_objectives(self) -> int:
        return len(self.modes)

    @property
    def n_constraints(self) -> int | None:
        """How many constraint values a trial has (``None`` until the first is told)."""
        return self._n_constraints

    @property
    def best(self) -> tuple[Arch, float] | None:
        """The best feasible full-fidelity result ``(arch, value)`` (``None`` before any; one
        objective only, see :attr:`pareto_front` for several)."""
        if self.n_objectives > 1:
            raise ValueError(f"a single best arch is undefined for {self.n_objectives} objectives; "
                             "use pareto_front")
        ok = [h for h in self._full_results() if h.get("feasible", True)]
        if not ok:
            return None
        h = max(ok, key=lambda h: self._score(h["value"]))
        return h["arch"], h["value"]

    @property
    def pareto_front(self) -> list[tuple[Arch, Any]]:
        """The feasible full-fidelity archs no other one dominates, with their values, in tell order."""
        ok = [h for h in self._full_results() if h.get("feasible", True)]
        if not ok:
            return []
        scores = np.array([np.atleast_1d(self._score(h["value"])) for h in ok], dtype=np.float64)
        return [(h["arch"], h["value"]) for h, keep in zip(ok, non_dominated(scores)) if keep]

    def observations(self) -> tuple[list[Arch], np.ndarray]:
        """Archs with a full-fidelity result and their scores (higher is better, whatever the
        mode): one score per arch, or an ``(n, objectives)`` array with several objectives.
        Infeasible archs are included: their values still teach the ranker."""
        ok = self._full_results()
        scores = np.array([self._score(h["value"]) for h in ok], dtype=np.float64)
        if self.n_objectives > 1:
            scores = scores.reshape(len(ok), self.n_objectives)
        return [h["arch"] for h in ok], scores

    def constraint_observations(self) -> tuple[list[Arch], np.ndarray]:
        """Archs told with constraint values and those values, ``(n, n_constraints)`` (NaN where
        unknown), failed trials included (Optuna runs constraints on pruned trials too)."""
        rows = [h for h in self._history if h.get("constraints") is not None]
        m = self._n_constraints or 0
        return [h["arch"] for h in rows], np.array([h["constraints"] for h in rows], dtype=np.float64).reshape(len(rows), m)

    def attach_known(self, **known: Mapping[int, Known]) -> None:
        """Give again the functions among the known quantities after loading a saved state (a
        state holds data only, so a function's place is kept empty), e.g.
        ``attach_known(known_constraints={0: fn})``; names and values are saved and need nothing.

        Raises:
            ValueError: a keyword that is not a known-quantity argument of this strategy, or a
                position it does not have.
        """
        for arg, spec in known.items():
            name = "_" + arg if "_" + arg in self._KNOWN else arg
            if name not in self._KNOWN or name not in self.__dict__:
                raise ValueError(f"{type(self).__name__} has no {arg!r}; it takes {[k.lstrip('_') for k in self._KNOWN]}")
            have = self.__dict__[name]
            for j, q in dict(spec).items():
                if j not in have:
                    raise ValueError(f"{arg} has no position {j!r}; it has {sorted(have)}")
                have[j] = q
        self._restore_known_cache()

    def known_feasible(self, archs: Sequence[Arch]) -> np.ndarray:
        """Whether each arch meets every known constraint (all True without known constraints)."""
        archs = list(archs)
        if not self._known_constraints:
            return np.ones(len(archs), dtype=bool)
        return np.all(self._known_constraint_values(archs) <= 0, axis=1)

    def _require_feasible(self, archs: Sequence[Arch], what: str = "candidates") -> np.ndarray:
        """:meth:`known_feasible` of ``archs`` (a finite pool), refused up front when none is:
        the error names each known constraint's smallest value among them (``<= 0`` feasible).

        Raises:
            ValueError: no arch of ``archs`` meets every known constraint.
        """
        ok = self.known_feasible(archs)
        if len(ok) and not ok.any():
            vals = self._known_constraint_values(list(archs))
            parts = [f"known constraint {j}: smallest value {np.nanmin(vals[:, j]):.6g}"
                     for j in sorted(self._known_constraints)]
            raise ValueError(f"no one of the {len(ok)} {what} meets the known constraints (a value <= 0 is feasible; "
                             f"{'; '.join(parts)}): loosen the limit")
        return ok

    def fidelity_levels(self) -> list[tuple[float | None, list[Arch], np.ndarray]]:
        """Every fidelity level told: ``(fidelity, archs, scores)``, lowest fidelity first and the
        full-fidelity results (:meth:`observations`, fidelity ``None``) last.

        A partial level holds every arch with a curve point at exactly that fidelity, the ones
        that went on to higher fidelities included: the configs a scheduler compared there.
        Levels at or above the full fidelity are not repeated: those results are the last group.
        """
        top = self.full_fidelity
        levels: dict[float, tuple[list[Arch], list[float]]] = {}
        for h in self._history:
            for f, v in h.get("curve", ()):
                if self.max_fidelity is None and top is not None and f >= top:
                    continue  # the highest fidelity told is the full one: in the last group
                archs, ys = levels.setdefault(f, ([], []))
                archs.append(h["arch"])
                ys.append(self._score(v))
        out: list[tuple[float | None, list[Arch], np.ndarray]] = [
            (f, levels[f][0], np.array(levels[f][1], dtype=np.float64)) for f in sorted(levels)]
        archs, y = self.observations()
        out.append((None, archs, y))
        return out

    def ranked_archs(self) -> list[Arch]:
        """Every arch with a successful result, best first: full-fidelity results by score, then
        partial ones by their highest fidelity, then score (the deepest curves first, as a
        successive-halving scheduler would promote them)."""
        full = {id(h) for h in self._full_results()}
        rows = [h for h in self._history if h["status"] in ("ok", "partial")]

        def key(h: dict[str, Any]) -> tuple[int, float, float]:
            # several objectives: by the first one (the front is what ranks them; this orders the rest)
            score = float(np.atleast_1d(self._score(h["value"]))[0])
            if id(h) in full:
                return (1, math.inf, score)
            return (0, h["fidelity"], score)

        return [h["arch"] for h in sorted(rows, key=key, reverse=True)]

    def exhausted(self) -> bool:
        """True when every iso class of the pool (or space) was asked or told."""
        return not self._random_unseen_probe()

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume, as a dict (a deep copy) of data: values, arrays and the package's own objects
        (a function among the known constraints cannot be saved: give values or a name instead)."""
        self._wait()
        state = {k: v for k, v in self.__dict__.items() if k not in self._TRANSIENT and k not in ("_known_cache", "_cand_index")}
        for name in self._KNOWN:
            if name in state:  # a function is code, not data: its place is kept, :meth:`attach_known` refills it
                state[name] = {j: None if callable(q) else q for j, q in state[name].items()}
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
        live = {name: dict(self.__dict__.get(name) or {}) for name in self._KNOWN}
        self.__dict__.update(copy.deepcopy(state))
        # saved before fidelities: every result was a full-fidelity one
        self.__dict__.setdefault("max_fidelity", None)
        self.__dict__.setdefault("_top_fidelity", None)
        self.__dict__.setdefault("_n_points", sum(h["status"] == "ok" for h in self._history))
        for h in self._history:
            h.setdefault("fidelity", None)
            h.setdefault("curve", [])
        for name in self._KNOWN:  # functions this object already holds survive loading a state into it
            saved = self.__dict__.get(name)
            if saved:
                self.__dict__[name] = {j: live[name].get(j) if q is None else q for j, q in saved.items()}
        # saved before several objectives and constraints existed: one objective, none
        if "modes" not in state:
            self.modes = (self.mode,)
        self.__dict__.setdefault("_known_constraints", {})
        self.__dict__.setdefault("_n_constraints", None)
        self._restore_known_cache()
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
    def _score(self, value: Any) -> Any:
        """Higher-is-better score(s) of a told value: a float, or an array with several objectives."""
        if self.n_objectives == 1:
            return value if self.modes[0] == "max" else -value
        return np.array([v if m == "max" else -v for v, m in zip(value, self.modes)], dtype=np.float64)

    def _value(self, value: Any) -> Any:
        """A told value checked: a float (one objective) or a tuple, ``None`` for a failure."""
        if self.n_objectives == 1:
            if isinstance(value, (Sequence, np.ndarray)) and not isinstance(value, (str, bytes)) and len(value) == 1:
                value = value[0]  # Optuna's values list of a single-objective study
            return as_value(value)
        return as_values(value, self.n_objectives)

    def _restore_known_cache(self) -> None:
        self._known_cache: dict[Arch, tuple[float, ...]] = {}

    def _known_constraint_values(self, archs: list[Arch]) -> np.ndarray:
        """``(len(archs), n_constraints)``: the known constraints' values (NaN elsewhere), cached."""
        m = self._n_constraints or 0
        missing = [a for a in dict.fromkeys(archs) if a not in self._known_cache]
        if missing:
            cols = np.full((len(missing), m), np.nan)
            index = None if self._candidates is None else self.__dict__.get("_cand_index")
            if index is None and self._candidates is not None:
                index = self.__dict__["_cand_index"] = {a: i for i, a in enumerate(self._candidates)}
            for j, spec in self._known_constraints.items():
                cols[:, j] = known_values(self.space, spec, missing, index, what=f"known constraint {j}")
            for a, row in zip(missing, cols):
                self._known_cache[a] = tuple(row)
        return np.array([self._known_cache[a] for a in archs], dtype=np.float64).reshape(len(archs), m)

    def _constraints(self, arch: Arch, constraints: Any) -> tuple[float, ...] | None:
        """The told constraint vector checked and completed with the known constraints."""
        if constraints is None and not self._known_constraints:
            return None
        if constraints is None:
            vals = [math.nan] * (self._n_constraints or 0)
        else:
            if isinstance(constraints, (str, bytes)) or not isinstance(constraints, (Sequence, np.ndarray)):
                raise TypeError(f"constraints must be a sequence of numbers (<= 0 feasible), got {constraints!r}")
            raw = list(constraints)
            holes = [j for j, c in enumerate(raw) if c is None and j not in self._known_constraints]
            if holes:
                raise ValueError(f"constraint {holes[0]} is None but no known constraint computes it: {raw!r}")
            checked = as_constraints([0.0 if c is None else c for c in raw], self._n_constraints)
            vals = [math.nan if raw[j] is None else v for j, v in enumerate(checked)]
            self._n_constraints = len(vals)
        if self._known_constraints:
            known = self._known_constraint_values([arch])[0]
            for j in self._known_constraints:
                if math.isnan(vals[j]):
                    vals[j] = float(known[j])
        return tuple(float(v) for v in vals)

    def _record(self, arch: Any, value: Any, source: str, fidelity: Any = None, constraints: Any = None) -> None:
        arch = self.space.validate(arch)
        f = check_fidelity("fidelity", fidelity)
        v = self._value(value)
        if f is not None and self.max_fidelity is not None and f >= self.max_fidelity:
            f = None  # at the full fidelity: a final result
        entry = self._history[self._told[arch]] if arch in self._told else None
        if entry is not None and entry["status"] != "partial":
            raise ValueError(f"architecture {self.space.to_string(arch)!r} was already told")
        cons = self._constraints(arch, constraints)
        if f is not None:
            self._record_partial(arch, value, v, f, source, entry, cons)
            return
        if entry is not None:  # the end of a curve: its full-fidelity result (or failure)
            if cons is None:
                cons = entry.get("constraints")
            entry.update(value=v, status="ok" if v is not None else "failed", fidelity=None, constraints=cons,
                         feasible=self._feasible(cons))
            self._n_points += v is not None
            self._observe(arch, None if v is None else self._score(v), entry["source"])
            return
        source = self._admit(arch, source)
        self._told[arch] = len(self._history)
        self._history.append({"arch": arch, "value": v, "status": "ok" if v is not None else "failed",
                              "order": len(self._history), "source": source, "fidelity": None, "curve": [],
                              "constraints": cons, "feasible": self._feasible(cons)})
        self._n_points += v is not None
        self._observe(arch, None if v is None else self._score(v), self._history[-1]["source"])

    def _record_partial(self, arch: Arch, value: Any, v: float | None, f: float, source: str,
                        entry: dict[str, Any] | None, cons: tuple[float, ...] | None = None) -> None:
        if v is None:
            raise ValueError(f"a result below the full fidelity must be a finite number, got {value!r} for "
                             f"{self.space.to_string(arch)!r} at fidelity {f:g}; tell a failed trial at the full "
                             "fidelity (fidelity=None)")
        if entry is not None and f <= entry["fidelity"]:
            raise ValueError(f"{self.space.to_string(arch)!r} was told at fidelity {entry['fidelity']:g} "
                             f"before; a later result needs a higher fidelity, got {f:g}")
        if entry is None:
            source = self._admit(arch, source)
            self._told[arch] = len(self._history)
            entry = {"arch": arch, "value": v, "status": "partial", "order": len(self._history),
                     "source": source, "fidelity": f, "curve": [], "constraints": None, "feasible": True}
            self._history.append(entry)
        if cons is not None:
            entry.update(constraints=cons, feasible=self._feasible(cons))
        entry["curve"].append([f, list(v) if isinstance(v, tuple) else v])
        entry.update(value=v, fidelity=f)
        self._n_points += 1
        if self._top_fidelity is None or f > self._top_fidelity:
            self._top_fidelity = f
        self._observe_partial(arch, self._score(v), f)

    def _admit(self, arch: Arch, source: str) -> str:
        """First result of ``arch``: no longer pending, queued or unseen; returns its source
        (``external`` for an asked-for result of an arch this strategy never proposed)."""
        if arch in self._pending:
            del self._pending[arch]
        else:
            if source == "asked":
                source = "external"
            if arch in self._queue:
                self._queue.remove(arch)
            self._seen.add(self.space.iso_key(arch))
        return source

    @staticmethod
    def _feasible(cons: tuple[float, ...] | None) -> bool:
        """No constraint value above 0 (NaN, unknown, counts as feasible, as Optuna counts it)."""
        return cons is None or not any(c > 0 for c in cons)

    def _discard(self, arch: Arch) -> None:
        """A proposal a known constraint rules out was dropped (subclasses close their own records)."""

    def _accept(self, archs: Sequence[Arch], batch_keys: set[Hashable]) -> list[Arch]:
        out = []
        archs = [self.space.validate(a) for a in archs]
        ok = self.known_feasible(archs)
        for a, feasible in zip(archs, ok):
            key = self.space.iso_key(a)
            if key in self._seen or key in batch_keys:
                continue
            if not feasible:
                self._discard(a)
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
                if key in self._seen or key in exclude or not self._feasible_known(a):
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
            if key in self._seen or key in exclude or key in keys or not self._feasible_known(a):
                continue
            keys.add(key)
            out.append(a)
        return out

    def _feasible_known(self, arch: Arch) -> bool:
        return not self._known_constraints or bool(self.known_feasible([arch])[0])

    def _random_unseen_probe(self) -> bool:
        if self._walkable():
            archs = [self._pool_arch(i) for i in range(self._pool_size())]
            ok = self.known_feasible(archs)
            return any(f and self.space.iso_key(a) not in self._seen for a, f in zip(archs, ok))
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


def _check_known_constraints(spec: Any) -> dict[int, Known]:
    """``known_constraints`` as ``{position: quantity}``: a list gives positions 0, 1, ..."""
    if spec is None:
        return {}
    if isinstance(spec, Mapping):
        items = list(spec.items())
    elif isinstance(spec, (list, tuple)):
        items = list(enumerate(spec))
    else:
        raise TypeError(f"known_constraints must be a list or a dict position -> quantity, got {type(spec).__name__}")
    out: dict[int, Known] = {}
    for j, q in items:
        if isinstance(j, bool) or not isinstance(j, int) or j < 0:
            raise ValueError(f"known_constraints key {j!r} is not a constraint position (an int >= 0)")
        if not (isinstance(q, str) or callable(q) or isinstance(q, (np.ndarray, list, tuple))):
            raise TypeError(f"known constraint {j} must be a name, values or a callable archs -> values, got {q!r}")
        out[j] = q
    return out
