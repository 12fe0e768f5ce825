"""The table every table-driven benchmark reads (``bench ranking``, ``bench search``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ray_nasrank._checks import ConfigError, check_mode
from ray_nasrank._config import option

if TYPE_CHECKING:  # pragma: no cover
    from ._table import TabularBenchmark

SPACES = ("nb201", "columns")


@dataclass
class TableConfig:
    """Which table a benchmark reads, how its rows name architectures, and its target.

    The fields of this and every benchmark config are :func:`~ray_nasrank._config.option` fields:
    each one's help text is also its command-line flag's (``ray-nasrank bench <name> --help``).

    Args:
        table: parquet or CSV file.
        space: ``nb201`` (``arch_col`` holds NB201 strings) or ``columns`` (``arch_cols`` are
            categorical decisions, ``num_cols`` numeric ones: ``name`` or ``name:log``).
        target: the column to rank or optimise; ``mode`` says whether higher is better.
        weak: weak-label columns.

    Raises:
        ConfigError: a missing table or target, an unknown space or mode, ``space="columns"``
            without ``arch_cols``.
    """

    table: str | None = option(None, "parquet or CSV table of architectures and targets", required=True)
    space: str = option("nb201", "nb201: --arch-col holds NB201 strings; columns: --arch-cols are "
                        "categorical decisions", choices=SPACES)
    arch_col: str = option("arch", "column with NB201 strings (space nb201)")
    arch_cols: list[str] | None = option(None, "comma-separated categorical columns (space columns)")
    num_cols: list[str] | None = option(None, "comma-separated numeric columns (space columns), ':log' marks a "
                                        "log-scaled one, e.g. lr:log,wd:log,dropout")
    target: str | None = option(None, "column to rank or optimise", required=True)
    mode: str = option("max", "whether higher or lower target is better", choices=("max", "min"))
    weak: list[str] = option(default_factory=list,
                             help="comma-separated weak-label columns (e.g. supernet_oneshot_acc,flops)")

    def __post_init__(self) -> None:
        for key in ("table", "target"):
            if not getattr(self, key):
                raise ConfigError(f"`{key}` is required")
        if self.space not in SPACES:
            raise ConfigError(f"unknown `space` {self.space!r}; choose from {list(SPACES)}")
        check_mode(self.mode)
        if self.space == "columns" and not (self.arch_cols or self.num_cols):
            raise ConfigError("`space` columns needs `arch_cols` c1,c2,... (and/or `num_cols` lr:log,...)")
        if self.num_cols and self.space != "columns":
            raise ConfigError("`num_cols` needs `space` columns")
        if self.num_cols:
            from ._table import parse_num_cols

            try:
                parse_num_cols(self.num_cols)
            except ValueError as e:
                raise ConfigError(f"`num_cols`: {e}") from None
        self.weak = list(self.weak)

    def load_table(self) -> "TabularBenchmark":
        """The table as a :class:`~ray_nasrank.benchmarks.TabularBenchmark`."""
        from ._table import TabularBenchmark

        return TabularBenchmark.from_file(self.table, space=self.space, arch_col=self.arch_col,
                                          arch_cols=self.arch_cols, num_cols=self.num_cols, target=self.target,
                                          mode=self.mode,
                                          weak=self.weak)

