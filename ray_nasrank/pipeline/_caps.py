"""Caps on what the main job trains: ``--max-params``, ``--max-flops`` and ``--max-latency-ms``.

Every candidate of the pool gets the capped quantities of its model *as it is retrained and
tested*, at the full-fidelity input shape, before Ray starts and before anything is trained:

- ``params`` (trainable parameters, as training counts them) and ``flops`` (multiply-accumulates
  of one forward pass of one image, NB201's "FLOPs" convention, counted by
  :class:`torch.utils.flop_counter.FlopCounterMode`) for the whole pool: exact and cheap. A
  family whose space computes them itself (NB201: from five networks) is checked against two
  built models first; any other family builds each model once.
- ``latency_ms``, measured on the machine that runs the search (the driver), for the candidates
  that meet the other caps: the median of :data:`LATENCY_REPEATS` timed forward passes of a
  batch of ``latency_batch_size`` images after :data:`LATENCY_WARMUP` untimed ones, in eval mode
  without gradients, with one torch thread (as each search trial trains) on the run's device
  (:class:`LatencyMethod`, recorded in ``best.json``).

The candidates that miss a cap leave the pool before anything else reads it, so the weak labels,
the ranker's pretraining, the NASRank arm's proposals, the random arm's draws and every
successive-halving rung above them come from what remains: an infeasible candidate is never
trained. For a finite pool this is the core's rule for known constraints (a candidate a known
constraint rules out is never proposed) applied once, for every arm. The values are saved in the
run folder (``costs.json``, checked against the manifest), so a resumed run keeps its pool
instead of measuring the latencies again.

Why every remaining candidate's latency, and not lazily: a cap no candidate meets is refused
with the pool's smallest value, and the random arm draws uniformly from the feasible pool; both
need every value. On 2 shared CPU cores one NB201 candidate (C=8) takes about 30 ms to build and
time: a few seconds for the default pool of 200.

>>> parse_count("1.5M"), parse_count("250k"), parse_count("5e4")
(1500000.0, 250000.0, 50000.0)
>>> LatencyMethod(batch_size=1).describe()
'median of 20 timed forward passes of a batch of 1 (after 5 warm-up passes), eval mode, no gradients, 1 torch thread, on cpu'
"""

from __future__ import annotations

import argparse
import math
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

__all__ = ["Quantity", "QUANTITIES", "LATENCY_WARMUP", "LATENCY_REPEATS", "parse_count", "parse_ms", "caps_of",
           "LatencyMethod", "measure_latency", "model_costs", "PoolCosts", "cap_pool", "constraints_record",
           "caps_line"]

#: untimed forward passes before the latency is timed (caches, allocator, lazy initialisation)
LATENCY_WARMUP = 5
#: timed forward passes; their median is the latency
LATENCY_REPEATS = 20
COSTS_FORMAT = "ray_nasrank.costs/1"


@dataclass(frozen=True)
class Quantity:
    """A quantity the main job can cap.

    Args:
        name: its column in ``costs.json`` and ``best.json`` (``params``, ``flops``, ``latency_ms``).
        key: the :class:`~ray_nasrank.pipeline.PipelineConfig` field holding its cap.
        words: how messages and plots name it.
    """

    name: str
    key: str
    words: str

    @property
    def flag(self) -> str:
        return "--" + self.key.replace("_", "-")

    def show(self, value: float) -> str:
        """``value`` in the quantity's units, for messages.

        >>> QUANTITIES["params"].show(31234.0), QUANTITIES["latency_ms"].show(0.71234)
        ('31,234 parameters', '0.712 ms')
        """
        if self.name == "latency_ms":
            return f"{value:.3g} ms"
        return f"{value:,.0f} {self.words}"


QUANTITIES: dict[str, Quantity] = {q.name: q for q in (
    Quantity("params", "max_params", "parameters"),
    Quantity("flops", "max_flops", "FLOPs"),
    Quantity("latency_ms", "max_latency_ms", "ms latency"),
)}
_SUFFIX = {"k": 1e3, "m": 1e6, "g": 1e9}


def parse_count(text: str) -> float:
    """A cap on a count, as the command line gives it: ``50000``, ``5e4``, ``50k``, ``1.5M``, ``2G``.

    Raises:
        argparse.ArgumentTypeError: not a number, or not a finite number above 0 (argparse
            prints it as one error naming the flag).
    """
    s = str(text).strip()
    scale = _SUFFIX.get(s[-1:].lower(), 1.0) if s and s[-1:].isalpha() else 1.0
    return _positive(s[:-1] if scale != 1.0 else s, text, scale, "a count such as 50000, 5e4, 250k or 1.5M")


def parse_ms(text: str) -> float:
    """A cap in milliseconds, as the command line gives it (``2.5``).

    Raises:
        argparse.ArgumentTypeError: not a finite number above 0.
    """
    return _positive(str(text).strip(), text, 1.0, "milliseconds such as 2.5")


def _positive(number: str, text: str, scale: float, what: str) -> float:
    try:
        value = float(number) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number above 0 ({what}), got {text!r}")
    return value


def caps_of(cfg: Any) -> dict[str, float]:
    """The caps a config sets, ``{quantity name: cap}`` (empty: none).

    >>> from ray_nasrank.pipeline import PipelineConfig
    >>> caps_of(PipelineConfig(dataset="digits", max_params=5e4))
    {'params': 50000.0}
    """
    return {q.name: float(getattr(cfg, q.key)) for q in QUANTITIES.values() if getattr(cfg, q.key) is not None}


@dataclass(frozen=True)
class LatencyMethod:
    """How a latency is measured (recorded in ``best.json`` and shown in the report).

    Args:
        batch_size: images per forward pass.
        warmup: untimed passes first.
        repeats: timed passes.
        threads: torch threads during the measurement (on the CPU).
        device: where the model runs.
        statistic: how the timed passes become one number.
        host: the machine that measured.
    """

    batch_size: int = 1
    warmup: int = LATENCY_WARMUP
    repeats: int = LATENCY_REPEATS
    threads: int = 1
    device: str = "cpu"
    statistic: str = "median"
    host: str = field(default_factory=socket.gethostname, compare=False)

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        return (f"{self.statistic} of {self.repeats} timed forward passes of a batch of {self.batch_size} "
                f"(after {self.warmup} warm-up passes), eval mode, no gradients, {self.threads} torch thread"
                f"{'s' if self.threads != 1 else ''}, on {self.device}")


def measure_latency(model: Any, x: Any, method: LatencyMethod) -> float:
    """The latency of ``model`` on the batch ``x``, in milliseconds, measured as ``method`` says.

    Args:
        model: a ``torch.nn.Module`` (put in eval mode and on ``method.device``).
        x: one input batch (moved to ``method.device``).
        method: the measurement.

    Returns:
        The ``method.statistic`` (median) of the timed passes, in ms.

    >>> import torch
    >>> ms = measure_latency(torch.nn.Linear(8, 2), torch.zeros(1, 8), LatencyMethod(repeats=3, warmup=1))
    >>> 0 < ms < 1000
    True
    """
    import torch

    device = torch.device(method.device)
    net = model.to(device).eval()
    x = x.to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    threads = torch.get_num_threads()
    torch.set_num_threads(method.threads)
    try:
        with torch.inference_mode():
            for _ in range(method.warmup):
                net(x)
            sync()
            times = []
            for _ in range(method.repeats):
                t0 = time.perf_counter()
                net(x)
                sync()
                times.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(threads)
    return float(np.median(times) * 1e3)


def _built_costs(family: Any, arch: Any, shape: Sequence[int]) -> tuple[Any, int, int]:
    """The model of ``arch`` built and run once on one input of ``shape`` (lazy layers sized),
    with its trainable parameters and multiply-accumulates of that pass."""
    import torch

    from ray_nasrank.proxies._measures import multiply_accumulates, trainable_params

    x = torch.zeros((1, *shape))
    net = family.check_input(family.config(arch), x, "the full-fidelity inputs")
    return net, trainable_params(net), int(round(multiply_accumulates(net, x)))


def model_costs(family: Any, archs: Sequence[Any], input_shape: Sequence[int], num_classes: int, *,
                network: dict | None = None, progress: bool | None = False) -> pd.DataFrame:
    """Parameters and FLOPs (multiply-accumulates of one image) of each candidate's model at
    ``input_shape``: one row per arch (columns ``params``, ``flops``).

    A family whose space computes params and FLOPs itself (NB201) gives them for every arch at
    once, from the network options ``network`` (``channels``, ``cells_per_stage``); they are
    checked against two built models and, should they differ, every model is built instead.

    Args:
        family: the :class:`~ray_nasrank.families.ModelFamily`.
        archs: the candidates.
        input_shape: ``(C, H, W)`` of one input.
        num_classes: classes of the data (the network's head).
        network: the network options the family was loaded with.
        progress: show a bar while models are built.

    Returns:
        The table, aligned to ``archs``.
    """
    import torch

    from ray_nasrank.progress import progress as bar

    archs = list(archs)
    shape = tuple(int(s) for s in input_shape)
    with torch.random.fork_rng(devices=[]):  # building models leaves the caller's random state alone
        torch.manual_seed(0)
        names = ("params", "flops")
        if family.intrinsic is None and set(names) <= set(family.intrinsic_names) and archs:
            got = family.intrinsic_weak(archs, names, input_shape=shape, num_classes=int(num_classes),
                                        **(network or {}))
            fast = pd.DataFrame({"params": np.round(got["params"] * 1e6), "flops": np.round(got["flops"] * 1e6)})
            check = sorted({0, int(np.argmax(fast["params"].to_numpy()))})
            if all(_built_costs(family, archs[i], shape)[1:] == (int(fast["params"][i]), int(fast["flops"][i]))
                   for i in check):
                return fast.astype(np.int64)
        rows = [_built_costs(family, a, shape)[1:]
                for a in bar(archs, desc="params and FLOPs of the pool", unit="arch", enabled=progress)]
    return pd.DataFrame(rows, columns=list(names), dtype=np.int64)


@dataclass
class PoolCosts:
    """The capped quantities of a candidate pool and the caps (what ``costs.json`` holds).

    Args:
        table: ``arch`` (string form) and one column per capped quantity (NaN: not measured,
            a latency of a candidate that misses another cap).
        caps: ``{quantity name: cap}``.
        input_shape: ``(C, H, W)`` the quantities were measured at (the full fidelity).
        latency: how latencies were measured (``None``: no latency cap).
    """

    table: pd.DataFrame
    caps: dict[str, float]
    input_shape: tuple[int, ...]
    latency: LatencyMethod | None = None

    def feasible(self) -> np.ndarray:
        """Whether each row meets every cap (an unmeasured value does not)."""
        ok = np.ones(len(self.table), dtype=bool)
        for name, cap in self.caps.items():
            ok &= self.table[name].to_numpy(dtype=np.float64) <= cap  # NaN compares False
        return ok

    def feasible_archs(self) -> set[str]:
        return set(self.table["arch"][self.feasible()])

    def values(self, arch: str) -> dict[str, float | None]:
        """The capped quantities of one candidate of the pool."""
        row = self.table.loc[self.table["arch"] == arch]
        if not len(row):
            raise KeyError(f"{arch!r} is not in the capped pool")
        return {n: _num(row.iloc[0][n]) for n in self.caps}

    def to_json(self) -> dict:
        cols = {n: [_num(v) for v in self.table[n]] for n in self.caps}
        return {"format": COSTS_FORMAT, "caps": dict(self.caps), "input_shape": list(self.input_shape),
                "latency": None if self.latency is None else self.latency.to_dict(),
                "arch": [str(a) for a in self.table["arch"]], **cols}

    @classmethod
    def from_json(cls, doc: Any) -> "PoolCosts":
        """Read what :meth:`to_json` wrote.

        Raises:
            ValueError: not such a document (the message says what is wrong).
        """
        if not isinstance(doc, dict) or doc.get("format") != COSTS_FORMAT or not isinstance(doc.get("caps"), dict):
            raise ValueError(f"not a {COSTS_FORMAT} document")
        caps = {str(k): float(v) for k, v in doc["caps"].items()}
        unknown = [k for k in caps if k not in QUANTITIES]
        if unknown:
            raise ValueError(f"unknown capped quantities {unknown}")
        arch = doc.get("arch")
        if not isinstance(arch, list) or any(not isinstance(doc.get(n), list) or len(doc[n]) != len(arch) for n in caps):
            raise ValueError("its columns are missing or of different lengths")
        table = pd.DataFrame({"arch": [str(a) for a in arch],
                              **{n: np.array([np.nan if v is None else float(v) for v in doc[n]]) for n in caps}})
        lat = doc.get("latency")
        return cls(table=table, caps=caps, input_shape=tuple(int(s) for s in doc.get("input_shape") or ()),
                   latency=None if lat is None else LatencyMethod(**lat))


def _num(v: Any) -> float | None:
    return None if v is None or not np.isfinite(float(v)) else float(v)


def cap_pool(cfg: Any, family: Any, pool: Sequence[Any], input_shape: Sequence[int], num_classes: int,
             device: str, *, path: Path) -> tuple[list[Any], PoolCosts]:
    """The candidates of ``pool`` that meet every cap of ``cfg``, and the pool's costs.

    The quantities come from ``path`` (``costs.json``) where it holds them, measured at the same
    input shape and the same way; the others are computed and the file written. Parameters and
    FLOPs are computed for the whole pool, latencies for the candidates that meet those caps.

    Args:
        cfg: the :class:`~ray_nasrank.pipeline.PipelineConfig` (its caps and ``latency_batch_size``).
        family: the model family.
        pool: the candidate pool.
        input_shape: the full-fidelity input shape ``(C, H, W)``.
        num_classes: classes of the data.
        device: the resolved device the driver runs on (latency is measured there).
        path: where the costs are saved (``costs.json`` in the run folder).

    Returns:
        The feasible candidates (in pool order) and the :class:`PoolCosts`.

    Raises:
        PrecheckError: a cap no candidate of the pool meets (the message gives the smallest
            value in the pool), caps no candidate meets together, or fewer feasible candidates
            than the search trains (both arms draw distinct ones).
    """
    from ray_nasrank._io import atomic_write_json

    from ._prechecks import PrecheckError

    caps = caps_of(cfg)
    space = family.space
    shape = tuple(int(s) for s in input_shape)
    names = [space.to_string(a) for a in pool]
    method = None
    if "latency_ms" in caps:
        method = LatencyMethod(batch_size=int(cfg.latency_batch_size), device=str(device))
    old = _read_costs(path)
    have: dict[str, dict[str, float]] = {}
    if old is not None and old.input_shape == shape:  # what an earlier call of this run computed
        same = old.latency is not None and old.latency == method  # latencies measured the same way
        for row in old.table.itertuples(index=False):
            have[row.arch] = {n: getattr(row, n) for n in old.caps if n != "latency_ms" or same}
        if same:
            method = old.latency  # naming the host that measured them
    table = pd.DataFrame({"arch": names})
    cheap = [n for n in ("params", "flops") if n in caps]
    if cheap:
        todo = [i for i, a in enumerate(names) if any(not _known(have, a, n) for n in cheap)]
        if todo:
            got = model_costs(family, [pool[i] for i in todo], shape, num_classes,
                              network={"channels": cfg.channels, "cells_per_stage": cfg.cells_per_stage},
                              progress=cfg.progress)
            for j, i in enumerate(todo):
                have.setdefault(names[i], {}).update({n: float(got[n][j]) for n in ("params", "flops")})
        for n in cheap:
            table[n] = [have[a][n] for a in names]
    meets = np.ones(len(names), dtype=bool)
    for n in cheap:
        meets &= table[n].to_numpy(dtype=np.float64) <= caps[n]
    if method is not None:
        todo = [i for i in np.flatnonzero(meets) if not _known(have, names[i], "latency_ms")]
        if todo:
            from ray_nasrank.progress import progress as bar

            for i in bar(todo, desc="latency of the pool", unit="arch", enabled=cfg.progress):
                have.setdefault(names[i], {})["latency_ms"] = _latency(family, pool[i], shape, method)
        table["latency_ms"] = [have.get(a, {}).get("latency_ms", np.nan) if ok else np.nan
                               for a, ok in zip(names, meets)]
    costs = PoolCosts(table=table, caps=caps, input_shape=shape, latency=method)
    atomic_write_json(path, costs.to_json())  # also when refused: the values are there to choose caps by
    for n in cheap:
        _refuse_unmet(table, n, caps[n], len(names), PrecheckError)
    if not meets.any():
        raise PrecheckError(f"no candidate of the pool ({len(names):,}) meets {_and(cheap, caps)} together; raise "
                            "one of the caps or --pool-size")
    if method is not None:
        _refuse_unmet(table.loc[meets], "latency_ms", caps["latency_ms"], int(meets.sum()), PrecheckError,
                      among="" if not cheap else f" (those meeting {_and(cheap, caps)})")
    ok = costs.feasible()
    arms = 2 if cfg.baseline == "random" else 1
    need = (1 if cfg.time_budget else cfg.budget) * arms
    if ok.sum() < need:
        raise PrecheckError(
            f"{int(ok.sum()):,} of the pool's {len(names):,} candidates meet {_and(list(caps), caps)}, but the "
            f"search trains {need:,} distinct ones{' (both arms)' if arms == 2 else ''}; raise --pool-size or a "
            f"cap, or lower --budget{' (or --baseline none)' if arms == 2 else ''}")
    return [a for a, k in zip(pool, ok) if k], costs


def _known(have: dict, arch: str, name: str) -> bool:
    v = have.get(arch, {}).get(name)
    return v is not None and np.isfinite(v)


def _and(names: Sequence[str], caps: dict[str, float]) -> str:
    return " and ".join(f"{QUANTITIES[n].flag} {caps[n]:g}" for n in names)


def _refuse_unmet(table: pd.DataFrame, name: str, cap: float, n: int, error: type, among: str = "") -> None:
    vals = table[name].to_numpy(dtype=np.float64)
    if len(vals) and np.nanmin(vals) <= cap:
        return
    q = QUANTITIES[name]
    i = int(np.nanargmin(vals))
    raise error(f"{q.flag} {cap:g}: no candidate of the pool meets it; the smallest of the {n:,} candidates"
                f"{among} is {q.show(vals[i])} ({table['arch'].iloc[i]}). Give {q.flag} {vals[i]:g} or more "
                "(every candidate's value is in costs.json in the output folder)")


def _latency(family: Any, arch: Any, shape: tuple[int, ...], method: LatencyMethod) -> float:
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = _built_costs(family, arch, shape)[0]
        x = torch.randn((method.batch_size, *shape), generator=torch.Generator().manual_seed(0))
    return measure_latency(net, x, method)


def _read_costs(path: Path) -> PoolCosts | None:
    """The saved costs, or ``None`` when there are none (the run's manifest has checked the file)."""
    import json

    if not path.is_file():
        return None
    try:
        return PoolCosts.from_json(json.loads(path.read_text()))
    except ValueError as e:
        raise ValueError(f"{str(path)!r} is not the pool's costs ({e}); delete it to measure them again") from None


def constraints_record(costs: PoolCosts, trained: dict[str, Sequence[str]], winners: dict[str, str]) -> dict:
    """What ``best.json`` records of the caps: the caps, how the quantities were measured, the
    pool, every trained candidate's (each arm's *finalists*) capped quantities and each arm's winner's.

    Args:
        costs: the pool's costs.
        trained: arm -> the archs it trained at the search fidelity.
        winners: arm -> its winner.

    Returns:
        The ``constraints`` entry of ``best.json``.
    """
    ok = costs.feasible()
    smallest = {n: _num(np.nanmin(costs.table[n].to_numpy(dtype=np.float64))) for n in costs.caps}

    def entry(arch: str) -> dict:
        vals = costs.values(arch)
        return {"arch": arch, **vals,
                "meets_caps": all(v is not None and v <= costs.caps[n] for n, v in vals.items())}

    rec = {"caps": dict(costs.caps),
           "measured_at": {"input_shape": list(costs.input_shape), "fidelity": "full (the retrained, tested model)",
                           "params": "trainable parameters", "flops": "multiply-accumulates of one image"},
           "pool": {"candidates": int(len(ok)), "meet_caps": int(ok.sum()), "smallest": smallest},
           "finalists": [{"arm": arm, **entry(a)} for arm, archs in trained.items() for a in archs],
           "winners": {arm: entry(a) for arm, a in winners.items()}}
    if costs.latency is not None:
        rec["latency_method"] = {**costs.latency.to_dict(), "description": costs.latency.describe()}
    return rec


def caps_line(rec: dict, arm: str = "nasrank") -> str:
    """The summary line of the caps: each cap with the winner's value, and whether it meets them all.

    >>> caps_line({"caps": {"params": 5e4}, "winners": {"nasrank": {"params": 31234.0, "meets_caps": True}}})
    'caps: params <= 50,000 parameters (winner: 31,234 parameters): the winner meets every cap'
    """
    win = rec["winners"][arm]
    parts = [f"{n} <= {QUANTITIES[n].show(c)} (winner: "
             f"{'not measured' if win.get(n) is None else QUANTITIES[n].show(win[n])})" for n, c in rec["caps"].items()]
    verdict = "the winner meets every cap" if win["meets_caps"] else "the winner does NOT meet every cap"
    pool = rec.get("pool")
    if pool:
        verdict += f" ({pool['meet_caps']:,} of the pool's {pool['candidates']:,} candidates met them all)"
    method = rec.get("latency_method")
    return "caps: " + ", ".join(parts) + f": {verdict}" + (f"; latency: {method['description']}" if method else "")
