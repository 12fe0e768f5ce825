"""The table every table-driven benchmark reads (``bench ranking``, ``bench search``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ray_nasrank._checks import ConfigError, check_mode
from ray_nasrank._config import option
from ray_nasrank._user_code import load_callable

if TYPE_CHECKING:  # pragma: no cover
    from ray_nasrank.families import ModelFamily
    from ray_nasrank.tabular import TabularBenchmark

#: the table's own space: one decision per column (every other ``space`` names a model family)
COLUMNS = "columns"
log = logging.getLogger(__name__)


@dataclass
class TableConfig:
    """Which table a benchmark reads, how its rows name architectures, and its target.

    The fields of this and every benchmark config are :func:`~ray_nasrank._config.option` fields:
    each one's help text is also its command-line flag's (``ray-nasrank bench <name> --help``).

    Args:
        table: parquet or CSV file.
        space: a model family (a built-in name such as ``nb201``, or ``MODULE:FUNCTION``, see
            :mod:`ray_nasrank.families`) whose arch strings ``arch_col`` holds, or ``columns``
            (``arch_cols`` are categorical decisions, ``num_cols`` numeric ones: ``name`` or
            ``name:log``).
        target: the column to rank or optimise; ``mode`` says whether higher is better.
        weak: weak-label columns.

    Raises:
        ConfigError: a missing table or target, an unknown space or mode, ``space="columns"``
            without ``arch_cols``, ``intrinsic`` labels the space's family does not compute.
    """

    table: str | None = option(None, "parquet or CSV table of architectures and targets", required=True)
    space: str = option("nb201", "a model family whose arch strings --arch-col holds (built in: nb201; or "
                                 "MODULE:FUNCTION), or columns: --arch-cols are categorical decisions",
                        metavar="NAME|MODULE:FUNCTION|columns")
    arch_col: str = option("arch", "column with the family's arch strings (e.g. NB201 strings)")
    arch_cols: list[str] | None = option(None, "comma-separated categorical columns (space columns)")
    num_cols: list[str] | None = option(None, "comma-separated numeric columns (space columns), ':log' marks a "
                                        "log-scaled one, e.g. lr:log,wd:log,dropout")
    target: str | None = option(None, "column to rank or optimise", required=True)
    mode: str = option("max", "whether higher or lower target is better", choices=("max", "min"))
    weak: list[str] = option(default_factory=list,
                             help="comma-separated weak-label columns (e.g. supernet_oneshot_acc,flops)")
    intrinsic: list[str] = option(default_factory=list, metavar="NAMES",
                                  help="weak labels the package computes and adds to --weak: with --model any "
                                       "zero-cost proxies of the model (default params,snip); without it the "
                                       "intrinsic labels of the --space family (nb201: params,flops,synflow)")
    model: str | None = option(None, metavar="MODULE:FUNCTION",
                               help="a callable (module path or .py file, then ':' and its name) taking the "
                                    "config dict of a table row (arch and numeric columns by name) and returning "
                                    "an nn.Module; its zero-cost proxies (--intrinsic) become weak labels")
    input_shape: list[int] | None = option(None, metavar="C,H,W",
                                           help="shape of one --model input without the batch dimension")

    def __post_init__(self) -> None:
        for key in ("table", "target"):
            if not getattr(self, key):
                raise ConfigError(f"`{key}` is required")
        family = self.family()
        check_mode(self.mode)
        if self.space == "columns" and not (self.arch_cols or self.num_cols):
            raise ConfigError("`space` columns needs `arch_cols` c1,c2,... (and/or `num_cols` lr:log,...)")
        if self.num_cols and self.space != "columns":
            raise ConfigError("`num_cols` needs `space` columns")
        if self.num_cols:
            from ray_nasrank.tabular import parse_num_cols

            try:
                parse_num_cols(self.num_cols)
            except ValueError as e:
                raise ConfigError(f"`num_cols`: {e}") from None
        self.weak = list(self.weak)
        self.intrinsic = list(self.intrinsic)
        if self.model is not None:
            if not isinstance(self.model, str) or self.model.count(":") != 1 or not all(self.model.split(":")):
                raise ConfigError(f"`model` must be MODULE:FUNCTION (e.g. my_models:build_cnn), got {self.model!r}")
            if not self.input_shape or any(not isinstance(v, int) or isinstance(v, bool) or v < 1
                                           for v in self.input_shape):
                raise ConfigError("`model` needs `input_shape` C,H,W (positive integers: one model input without "
                                  f"the batch dimension), got {self.input_shape!r}")
            from ray_nasrank.proxies import resolve_names

            try:
                resolve_names(self.intrinsic or ["params"])
            except ValueError as e:
                raise ConfigError(f"`intrinsic`: {e}") from None
        elif self.input_shape is not None:
            raise ConfigError("`input_shape` describes the input of `model`; give `model` too")
        elif self.intrinsic:
            names = () if family is None else family.intrinsic_names
            if not names:
                raise ConfigError(f"`intrinsic` without `model` needs a `space` whose model family computes "
                                  f"intrinsic labels (e.g. nb201), not {self.space!r}; give `model` "
                                  "MODULE:FUNCTION to score the table's rows with zero-cost proxies")
            bad = [x for x in self.intrinsic if x not in names]
            if bad:
                raise ConfigError(f"unknown `intrinsic` label(s) {bad}; {self.space} computes {list(names)}, or "
                                  "give `model` for zero-cost proxies of your own model family")
        clash = [x for x in self.intrinsic if x in self.weak]
        if clash:
            raise ConfigError(f"{clash} given both in `weak` and `intrinsic`; keep one")

    def family(self) -> "ModelFamily | None":
        """The model family ``space`` names (``None`` for ``columns``).

        Raises:
            ConfigError: no such family (the message names `space`).
        """
        if self.space == COLUMNS:
            return None
        from ray_nasrank.families import FAMILIES, SpaceError, load_family

        try:
            return load_family(self.space)
        except SpaceError as e:
            raise ConfigError(f"unknown `space` {self.space!r}: choose {COLUMNS!r}, a built-in model family "
                              f"{sorted(FAMILIES)} or MODULE:FUNCTION ({e})") from None

    def intrinsic_labels(self, bench: "TabularBenchmark") -> dict:
        """The weak labels of ``intrinsic``/``model`` for every row of ``bench`` (name -> array):
        the model's zero-cost proxies (NaN for a row whose model fails, logged) or the intrinsic
        labels of the space's family."""
        import time

        import numpy as np

        t0 = time.perf_counter()
        if self.model is not None:
            from ray_nasrank.proxies import MODEL_PROXIES, ModelProxies, drop_missing_columns

            space = bench.space
            proxies = ModelProxies(load_callable(self.model), input_shape=tuple(self.input_shape),
                                   names=self.intrinsic or MODEL_PROXIES)
            out = drop_missing_columns(proxies([{**space.to_config(a), **space.config_extras(a)} for a in bench.archs]))
            if proxies.failures:
                log.warning(f"{len(proxies.failures)} proxy value(s) of --model {self.model} failed (NaN), "
                            f"e.g. {proxies.failures[0]}")
        elif self.intrinsic:
            out = self.family().intrinsic_weak(bench.archs, tuple(self.intrinsic))
        else:
            return {}
        log.info(f"computed weak labels {list(out)} of {len(bench.archs)} rows in {time.perf_counter() - t0:.1f}s")
        return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}

    def table_flags(self) -> list[str]:
        """The command-line flags of the weak labels this config computes (for recorded commands)."""
        parts = []
        if self.intrinsic:
            parts += ["--intrinsic", ",".join(self.intrinsic)]
        if self.model is not None:
            parts += ["--model", self.model, "--input-shape", ",".join(map(str, self.input_shape))]
        return parts

    def load_table(self, keep: Sequence[str] = ()) -> "TabularBenchmark":
        """The table as a :class:`~ray_nasrank.benchmarks.TabularBenchmark` (``keep``: further
        columns to keep in its ``extra``, e.g. learning curves)."""
        from ray_nasrank.tabular import TabularBenchmark

        return TabularBenchmark.from_file(self.table, space=self.space, arch_col=self.arch_col,
                                          arch_cols=self.arch_cols, num_cols=self.num_cols, target=self.target,
                                          mode=self.mode, weak=self.weak, keep=keep)


def table_weak_labels(cfg: TableConfig, bench: TabularBenchmark) -> dict:
    """The weak labels of every row of ``bench``: its weak columns (an inf value, e.g. a proxy
    that overflowed, becomes missing like NaN, with a warning) and then ``cfg``'s intrinsic ones.

    Args:
        cfg: the run's table settings (its ``intrinsic``/``model`` add computed weak labels).
        bench: the table ``cfg.load_table()`` read.

    Returns:
        Column name -> float array, one value per row, NaN where missing.
    """
    import numpy as np

    weak = {}
    for name, col in bench.weak.items():
        col = np.asarray(col, dtype=np.float64)
        bad = np.isinf(col)
        if bad.any():
            log.warning(f"bench: weak column {name!r}: {int(bad.sum())} inf value(s) treated as missing")
            col = np.where(bad, np.nan, col)
        weak[name] = col
    weak.update(cfg.intrinsic_labels(bench))
    return weak
