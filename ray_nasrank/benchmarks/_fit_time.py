"""Seconds per ranker refit on a whole table (``ray-nasrank bench fit-time``).

The ranker is pretrained once on the table's weak-label columns, then refitted ``refits`` times
on ``labels`` random labelled rows each (the way NASRank refits during a search), with
``threads`` torch threads; every refit also scores all rows. The budget the predictor is held
to: under 2 s per refit for the 15,625 NB201 cells and 100 labels on 2 CPU cores.
"""

from __future__ import annotations

import json
import logging
import shlex
from dataclasses import dataclass
from pathlib import Path

from ray_nasrank._checks import ConfigError, check_int
from ray_nasrank._config import option

from ._config import TableConfig

log = logging.getLogger(__name__)


@dataclass
class FitTimeBenchConfig(TableConfig):
    """One ``bench fit-time`` run: the table (see :class:`TableConfig`) and the refits to time.

    Raises:
        ConfigError: a bad value; the message names its key.

    >>> FitTimeBenchConfig(table="t.csv", target="acc", weak=["proxy"]).labels
    100
    >>> FitTimeBenchConfig(table="t.csv", target="acc", weak=[])
    Traceback (most recent call last):
    ...
    ray_nasrank._checks.ConfigError: weak is empty: the ranker is pretrained on weak-label columns (or --intrinsic ones)
    """

    labels: int = option(100, "labelled rows per refit")
    refits: int = option(5, "refits to time")
    threads: int = option(2, "torch CPU threads")
    out: str | None = option(None, "JSON file to write", required=True)
    predictor_args: dict = option(default_factory=dict, metavar="JSON",
                                  help="PredictorConfig fields as a JSON object, e.g. '{\"trust\": \"off\"}'")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.weak and not self.intrinsic:
            raise ConfigError("`weak` is empty: the ranker is pretrained on weak-label columns (or --intrinsic ones)")
        check_int("labels", self.labels, low=2)
        check_int("refits", self.refits, low=1)
        check_int("threads", self.threads, low=1)
        if not isinstance(self.predictor_args, dict):
            raise ConfigError("`predictor_args` must be a JSON object of PredictorConfig fields")


    def command(self) -> str:
        """The ``ray-nasrank`` command line of this run."""
        parts = ["--table", str(self.table), "--space", self.space, "--target", self.target, "--mode", self.mode]
        parts += ["--arch-cols", ",".join(self.arch_cols)] if self.space == "columns" else ["--arch-col", self.arch_col]
        parts += ["--num-cols", ",".join(self.num_cols)] if self.num_cols else []
        parts += ["--weak", ",".join(self.weak)] if self.weak else []
        parts += self.table_flags()
        parts += ["--labels", str(self.labels), "--refits", str(self.refits),
                  "--threads", str(self.threads), "--out", str(self.out)]
        if self.predictor_args:
            parts += ["--predictor-args", json.dumps(self.predictor_args, sort_keys=True)]
        return "ray-nasrank bench fit-time " + shlex.join(parts)


def bench_fit_time(config: FitTimeBenchConfig) -> dict:
    """Time the refits of ``config`` and write the JSON to ``config.out`` (when set).

    Args:
        config: the run.

    Returns:
        :func:`ray_nasrank.predictor.timing.fit_time`'s dict plus the table settings.
    """

    from ray_nasrank._io import atomic_write_json
    from ray_nasrank.predictor import PredictorConfig
    from ray_nasrank.predictor.timing import fit_time

    from ._config import table_weak_labels

    cfg = config
    bench = cfg.load_table()
    if cfg.labels >= len(bench.archs):
        raise ConfigError(f"`labels` {cfg.labels} must be smaller than the table's {len(bench.archs)} rows")
    try:
        pcfg = PredictorConfig.from_dict(cfg.predictor_args)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"`predictor_args`: {e}") from None
    weak = table_weak_labels(cfg, bench)  # the table's columns (inf as missing), then --intrinsic ones
    result = fit_time(bench.space, bench.archs, weak, bench.targets, labels=cfg.labels, refits=cfg.refits,
                      threads=cfg.threads, config=pcfg, mode=bench.mode)
    result = {"table": str(cfg.table), "target": cfg.target, "weak": list(weak), **result,
              "command": cfg.command()}
    if cfg.out:
        atomic_write_json(Path(cfg.out), result)
    return result


def format_fit_time(result: dict) -> str:
    """One line: median and max wall seconds per refit, CPU seconds, scoring seconds."""
    return (f"fit {result['candidates']} candidates, {result['labels']} labels, {result['threads']} threads: "
            f"median {result['fit_wall_median_s']:.2f} s, max {result['fit_wall_max_s']:.2f} s per refit "
            f"(CPU {result['fit_cpu_median_s']:.2f} s); scoring all: {max(result['score_wall_s']):.2f} s")
