"""Our zero-cost proxies vs a published proxy table (NASLib's) (``ray-nasrank bench proxies``).

For the first ``limit`` architectures of the table (after a seeded shuffle) it computes each
proxy on the NB201 macro (``channels``, ``cells_per_stage``, 3x32x32 input) with one fixed
random-normal batch of ``batch_size`` images and random labels (we have no CIFAR-10 here), then
reports per proxy: Spearman and Kendall tau against the table's column of the same proxy, against
the table's ``target`` (val_acc), the table's own proxy against the target on the same archs,
and seconds per arch. ``shared_synflow`` adds ``shared_synflow``: SynFlow of every arch as a path
of one small weight-sharing supernet (``ray_nasrank.proxies.shared_synflow``, the intrinsic weak
label NASRank pretrains on), compared with the table's ``synflow``. Writes the JSON to ``out``
and the per-arch scores next to it (``<out>_scores.csv``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ray_nasrank._checks import ConfigError, check_int
from ray_nasrank._config import option

#: our proxy name -> NASLib column name where they differ
TABLE_COLUMNS = {"naswot": "nwot"}


@dataclass
class ProxiesBenchConfig:
    """One ``bench proxies`` run (see the module docstring).

    Raises:
        ConfigError: a bad value; the message names its key.

    >>> ProxiesBenchConfig(table="naslib.csv", limit=2)
    Traceback (most recent call last):
    ...
    ray_nasrank._checks.ConfigError: limit must be >= 3 (rank correlations need pairs), got 2
    """

    table: str | None = option(None, "proxy table (parquet/CSV) with an NB201 'arch' column", required=True)
    target: str = option("val_acc", "accuracy column of the table")
    proxies: str = option("params,flops,synflow,snip,grad_norm,naswot,jacov",
                          "comma-separated proxies to compute (see ray_nasrank.proxies.PROXIES)")
    channels: int = option(16, "stem channels of the NB201 macro")
    cells_per_stage: int = option(5, "cells per stage of the NB201 macro")
    batch_size: int = option(64, "images in the proxies' batch")
    limit: int | None = option(None, "number of archs (default: all)")
    seed: int = option(0, "seed of the arch subset, batch and weights")
    threads: int = option(1, "torch CPU threads")
    shared_synflow: bool = option(False, "also compute shared-supernet SynFlow (1 cell per stage, 8x8 input "
                                         "by default)")
    device: str = option("cpu", "torch device")
    out: str | None = option(None, "JSON result file", required=True)

    def __post_init__(self) -> None:
        if not self.table:
            raise ConfigError("`table` is required")
        if self.limit is not None and (check_int("limit", self.limit) < 3):
            raise ConfigError(f"`limit` must be >= 3 (rank correlations need pairs), got {self.limit}")
        check_int("threads", self.threads, low=1)
        for key in ("channels", "cells_per_stage", "batch_size"):
            check_int(key, getattr(self, key), low=1)


def _rank_safe(v):
    """Replace +-inf by values just beyond the finite range (rank-preserving), keep NaN as NaN."""
    import numpy as np

    v = np.asarray(v, dtype=float).copy()
    finite = v[np.isfinite(v)]
    if finite.size:
        v[v == -np.inf] = finite.min() - 1.0
        v[v == np.inf] = finite.max() + 1.0
    return v


def _agreement(a, b) -> dict:
    import numpy as np

    from ray_nasrank.metrics import kendall_tau, spearman

    a, b = _rank_safe(a), _rank_safe(b)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return {"spearman": None, "kendall": None, "n": int(ok.sum())}
    return {"spearman": spearman(a[ok], b[ok]), "kendall": kendall_tau(a[ok], b[ok]), "n": int(ok.sum())}


def bench_proxies(config: ProxiesBenchConfig) -> dict:
    """Compute the proxies of ``config`` and compare them with the table; write JSON and scores CSV.

    Args:
        config: the run.

    Returns:
        The JSON result (``"proxies"``: per proxy its agreement with the table and the target,
        cost and non-finite count); ``"scores_csv"`` names the per-arch scores file.

    Raises:
        ConfigError: a bad value or an unknown proxy name.
        ValueError: the table lacks ``arch`` or ``target``.
    """
    import time

    import numpy as np
    import torch

    from ray_nasrank._io import atomic_write_json, atomic_write_text, check_writable_dir
    from ray_nasrank.proxies import PROXIES, SHARED_SYNFLOW_NET, compute_proxies_many, resolve_names, shared_synflow
    from ray_nasrank.tabular import read_table

    cfg = config
    try:
        names = resolve_names([p.strip() for p in cfg.proxies.split(",") if p.strip()])
    except (KeyError, ValueError) as e:
        raise ConfigError(f"`proxies`: {e.args[0] if e.args else e}") from None
    out = Path(cfg.out)
    check_writable_dir(out.parent if str(out.parent) else ".")
    table = read_table(cfg.table)
    for col in ("arch", cfg.target):
        if col not in table.columns:
            raise ValueError(f"table {cfg.table!r} has no column {col!r}; columns: {list(table.columns)}")
    order = np.random.default_rng(cfg.seed).permutation(len(table))
    sub = table.iloc[order[: cfg.limit] if cfg.limit else order].reset_index(drop=True)

    torch.set_num_threads(cfg.threads)
    t0 = time.perf_counter()
    scores = compute_proxies_many(sub["arch"], names, progress=True, with_timings=True,
                                  channels=cfg.channels, cells_per_stage=cfg.cells_per_stage,
                                  input_shape=(3, 32, 32), num_classes=10, seed=cfg.seed,
                                  batch_size=cfg.batch_size, device=cfg.device)
    if cfg.shared_synflow:
        t1 = time.perf_counter()
        scores["shared_synflow"] = shared_synflow(list(sub["arch"]), seed=cfg.seed, device=cfg.device)
        scores["seconds_shared_synflow"] = (time.perf_counter() - t1) / len(sub)
        names = (*names, "shared_synflow")
    total = time.perf_counter() - t0
    per_proxy = {}
    for name in names:
        col = "synflow" if name == "shared_synflow" else TABLE_COLUMNS.get(name, name)
        ours = scores[name].to_numpy(dtype=float)
        entry = {
            "table_column": col if col in sub.columns else None,
            "data_dependent": False if name == "shared_synflow" else PROXIES[name].data_dependent,
            "seconds_per_arch": float(scores[f"seconds_{name}"].mean()),
            "non_finite": int((~np.isfinite(ours)).sum()),
            "vs_target": _agreement(sub[cfg.target], ours),
        }
        if col in sub.columns:
            entry["vs_table"] = _agreement(sub[col], ours)
            entry["table_vs_target"] = _agreement(sub[cfg.target], sub[col])
        per_proxy[name] = entry
    result = {
        "benchmark": "proxies",
        "table": str(cfg.table),
        "target": cfg.target,
        "num_archs": len(sub),
        "table_rows": len(table),
        "channels": cfg.channels,
        "cells_per_stage": cfg.cells_per_stage,
        "input_shape": [3, 32, 32],
        "batch": f"random normal, {cfg.batch_size} images, uniform random labels, seed {cfg.seed}",
        "seed": cfg.seed,
        "threads": cfg.threads,
        "device": cfg.device,
        "shared_synflow_net": ({**SHARED_SYNFLOW_NET, "input_shape": list(SHARED_SYNFLOW_NET["input_shape"])}
                               if cfg.shared_synflow else None),
        "seconds_total": total,
        "seconds_per_arch": total / len(sub),
        "proxies": per_proxy,
    }
    atomic_write_json(out, result)
    scores_path = out.with_name(out.stem + "_scores.csv")
    atomic_write_text(scores_path, scores.to_csv(index=False))
    return {**result, "scores_csv": str(scores_path)}


def format_proxies_summary(result: dict) -> str:
    """A plain-text table of a :func:`bench_proxies` result: one line per proxy.

    Args:
        result: what :func:`bench_proxies` returned.

    Returns:
        The table.
    """
    def fmt(v):
        return "   -" if v is None else f"{v:.3f}"

    lines = [f"{'proxy':<10} {'rho vs table':>12} {'tau vs table':>12} {'rho vs acc':>10} "
             f"{'table rho':>9} {'s/arch':>7}"]
    for name, e in result["proxies"].items():
        vt = e.get("vs_table", {})
        lines.append(f"{name:<10} {fmt(vt.get('spearman')):>12} {fmt(vt.get('kendall')):>12} "
                     f"{fmt(e['vs_target']['spearman']):>10} {fmt(e.get('table_vs_target', {}).get('spearman')):>9} "
                     f"{e['seconds_per_arch']:>7.3f}")
    return "\n".join(lines)
