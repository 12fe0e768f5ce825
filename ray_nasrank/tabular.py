"""Tabular benchmarks: a table of architectures and their measured targets as a query oracle.

The data type only (no benchmark runner): the Tune trainables, the strategies' table runs and the
``ray-nasrank bench`` commands all import it from here, so none of them imports another.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ray_nasrank._checks import check_mode
from ray_nasrank.spaces import Arch, CategoricalSpace, SearchSpace

#: where the project's reference data lives when run from a checkout beside ../shared
DEFAULT_DATA_DIRS = ("../shared/data", "shared/data")


def find_shared_data(name: str = "nb201/nb201_cifar10.parquet") -> Path | None:
    """Locate a file of the shared benchmark data: ``$NASRANK_DATA`` first, then ../shared/data.

    Args:
        name: the file's path below the data folder.

    Returns:
        Its path, or ``None`` when it is absent (tests skip on that).
    """
    roots = []
    if os.environ.get("NASRANK_DATA"):
        roots.append(Path(os.environ["NASRANK_DATA"]))
    here = Path(__file__).resolve().parents[1]  # the checkout's root (ray_nasrank/..)
    roots += [Path(d) for d in DEFAULT_DATA_DIRS] + [here / d for d in DEFAULT_DATA_DIRS]
    for root in roots:
        p = root / name
        if p.is_file():
            return p
    return None


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a parquet or CSV (or TSV) file, with an error that names the file.

    Args:
        path: a ``.parquet``/``.pq``, ``.csv``/``.txt`` or ``.tsv`` file.

    Returns:
        The table.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: an unsupported suffix.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"table {str(p)!r} does not exist")
    suffix = p.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(p)
    if suffix in (".csv", ".tsv", ".txt"):
        return pd.read_csv(p, sep="\t" if suffix == ".tsv" else ",")
    raise ValueError(f"table {str(p)!r}: unsupported format {suffix!r}; use .parquet or .csv")


@dataclass
class TabularBenchmark:
    """Architectures with a measured target: an oracle that counts its queries.

    Build it with :meth:`from_frame` or :meth:`from_file`:

    Attributes:
        space: the search space of the rows.
        archs: one architecture per row.
        targets: the measured target of each row.
        mode: ``max`` when a higher target is better, ``min`` when lower is.
        target_name: the target column's name.
        weak: weak-label columns by name, aligned to ``archs``.
        extra: further columns kept along (``keep=``).
        queries: how many times :meth:`evaluate` was called since the last :meth:`reset`.

    Raises:
        ValueError: an unknown mode, archs and targets of different lengths, no rows, or an
            architecture listed twice (the error names it and both rows).

    >>> import pandas as pd
    >>> df = pd.DataFrame({"k": [3, 5, 3, 5], "w": [8, 8, 16, 16], "acc": [0.5, 0.6, 0.7, 0.9]})
    >>> bench = TabularBenchmark.from_frame(df, space="columns", arch_cols=["k", "w"], target="acc")
    >>> bench.evaluate((5, 16)), bench.queries
    (0.9, 1)
    """

    space: SearchSpace
    archs: list[Arch]
    targets: np.ndarray
    mode: str = "max"
    target_name: str = "target"
    weak: dict[str, np.ndarray] = field(default_factory=dict)
    extra: pd.DataFrame | None = None
    queries: int = 0

    def __post_init__(self) -> None:
        check_mode(self.mode)
        self.targets = np.asarray(self.targets, dtype=np.float64)
        if len(self.archs) != len(self.targets):
            raise ValueError(f"{len(self.archs)} archs but {len(self.targets)} targets")
        if len(self.archs) == 0:
            raise ValueError("the table has no rows (no architectures to rank)")
        self._index = {}
        for i, a in enumerate(self.archs):
            if a in self._index:
                raise ValueError(
                    f"the table lists architecture {self.space.to_string(a)!r} more than once "
                    f"(rows {self._index[a]} and {i})"
                )
            self._index[a] = i

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_frame(cls, df: pd.DataFrame, *, space: str | SearchSpace = "nb201", target: str,
                   arch_col: str = "arch", arch_cols: Sequence[str] | None = None,
                   num_cols: Sequence[str] | None = None, mode: str = "max",
                   weak: Sequence[str] = (), keep: Sequence[str] = ()) -> "TabularBenchmark":
        """Build from a DataFrame.

        ``space="columns"`` builds a space from ``arch_cols`` (categorical decisions) and
        ``num_cols`` (numeric ones, ``name`` or ``name:log``: an integer column is an integer
        decision, any other a float one, over the column's range). Table values are the
        configurations as they are (a float matches its row exactly).

        Args:
            df: one row per architecture.
            space: a :class:`SearchSpace` or a model family's name (``"nb201"``, ``MODULE:FUNCTION``,
                :func:`ray_nasrank.families.load_family`) whose arch strings ``arch_col`` holds;
                ``"columns"`` builds a space from ``arch_cols`` and ``num_cols``.
            target: the column to rank or optimise.
            arch_col: the column of arch strings (e.g. NB201 strings).
            arch_cols: the categorical decision columns (``space="columns"``).
            num_cols: the numeric decision columns, ``name`` or ``name:log`` (``space="columns"``).
            mode: ``max`` when a higher target is better, ``min`` when lower is.
            weak: weak-label columns.
            keep: further columns to carry along (e.g. latencies).

        Returns:
            The benchmark.

        Raises:
            ValueError: a missing column, a malformed or duplicate architecture, a missing or NaN
                value in a decision column or the target (the error names the row and column).
        """
        needed = [target, *weak, *keep]
        numeric = parse_num_cols(num_cols or [])
        if isinstance(space, str) and space == "columns":
            if not arch_cols and not numeric:
                raise ValueError("space 'columns' needs arch_cols (categorical columns) or num_cols (numeric ones)")
            needed += list(arch_cols or []) + [c for c, _ in numeric]
        else:
            needed.append(arch_col)
        missing = [c for c in needed if c not in df.columns]
        if missing:
            raise ValueError(f"table has no column(s) {missing}; available: {list(df.columns)}")
        if len(df) == 0:
            raise ValueError("the table has no rows (no architectures to rank)")
        for col in [target, *weak]:
            values = pd.to_numeric(df[col], errors="coerce")
            bad = values.isna() & df[col].notna()
            if bad.any():
                raise ValueError(f"column {col!r} has non-numeric value {df[col][bad].iloc[0]!r} at row {int(np.flatnonzero(bad)[0])}")
        y = df[target].to_numpy(dtype=np.float64)
        if not np.all(np.isfinite(y)):
            rows = np.flatnonzero(~np.isfinite(y))
            raise ValueError(
                f"target column {target!r} has {rows.size} NaN/inf value(s), first at row {int(rows[0])}; "
                "drop or fill those rows first"
            )
        if isinstance(space, str) and space == "columns":
            sp, archs = _columns_space(df, list(arch_cols or []), numeric)
        else:
            if isinstance(space, str):
                from ray_nasrank.families import load_family

                sp = load_family(space).space  # an unknown name: SpaceError (a ValueError) naming it
            elif isinstance(space, SearchSpace):
                sp = space
            else:
                raise TypeError(f"space must be a SearchSpace, a model family's name or 'columns', got "
                                f"{type(space).__name__}")
            archs = []
            for i, a in enumerate(df[arch_col].tolist()):
                try:
                    archs.append(sp.validate(a))
                except ValueError as e:
                    raise ValueError(f"row {i} of column {arch_col!r}: {e}") from None
        weak_arrays = {}
        for col in weak:
            w = df[col].to_numpy(dtype=np.float64)
            weak_arrays[col] = w
        extra = df[list(keep)].reset_index(drop=True) if keep else None
        return cls(space=sp, archs=archs, targets=y, mode=mode, target_name=target, weak=weak_arrays, extra=extra)

    @classmethod
    def from_file(cls, path: str | os.PathLike, **kwargs: Any) -> "TabularBenchmark":
        """Build from a parquet or CSV file (see :func:`read_table` and :meth:`from_frame`).

        Args:
            path: the table file.
            **kwargs: the arguments of :meth:`from_frame`.

        Returns:
            The benchmark.
        """
        return cls.from_frame(read_table(path), **kwargs)

    @classmethod
    def nb201(cls, path: str | os.PathLike | None = None, target: str = "test_acc",
              weak: Sequence[str] = ("supernet_oneshot_acc", "supernet_fewshot_acc")) -> "TabularBenchmark":
        """The shared NB201 CIFAR-10 table (``$NASRANK_DATA`` or ../shared/data).

        Args:
            path: the table (default: found by :func:`find_shared_data`).
            target: the target column.
            weak: the weak-label columns.

        Returns:
            The benchmark.

        Raises:
            FileNotFoundError: the table is not there (the error says how to point to it).
        """
        p = Path(path) if path else find_shared_data()
        if p is None:
            raise FileNotFoundError(
                "NB201 table not found: pass its path, or set NASRANK_DATA to the folder holding "
                "nb201/nb201_cifar10.parquet"
            )
        return cls.from_file(p, space="nb201", target=target, weak=weak)

    # ------------------------------------------------------------------ oracle
    def __len__(self) -> int:
        return len(self.archs)

    def index(self, arch: Any) -> int:
        a = self.space.validate(arch)
        try:
            return self._index[a]
        except KeyError:
            raise KeyError(f"architecture {self.space.to_string(a)!r} is not in the table") from None

    def evaluate(self, arch: Any) -> float:
        """The target of ``arch``; counts one query."""
        value = float(self.targets[self.index(arch)])
        self.queries += 1
        return value

    def lookup(self, arch: Any) -> float:
        """The target of ``arch`` without counting a query (for reports)."""
        return float(self.targets[self.index(arch)])

    def weak_label(self, name: str, archs: Sequence[Any] | None = None) -> np.ndarray:
        if name not in self.weak:
            raise KeyError(f"no weak label {name!r}; loaded: {sorted(self.weak)}")
        w = self.weak[name]
        if archs is None:
            return w
        return w[[self.index(a) for a in archs]]

    def reset(self) -> None:
        self.queries = 0

    @property
    def optimum(self) -> float:
        return float(self.targets.max() if self.mode == "max" else self.targets.min())

    def better(self, a: float, b: float) -> bool:
        return a > b if self.mode == "max" else a < b

    def signed(self, values: np.ndarray | float) -> np.ndarray | float:
        """Values turned so that higher is better."""
        return values if self.mode == "max" else -np.asarray(values)

    def frame(self) -> pd.DataFrame:
        df = pd.DataFrame({"arch": [self.space.to_string(a) for a in self.archs], self.target_name: self.targets})
        for k, v in self.weak.items():
            df[k] = v
        if self.extra is not None:
            df = pd.concat([df, self.extra], axis=1)
        return df


def parse_num_cols(specs: Sequence[str]) -> list[tuple[str, bool]]:
    """``["lr:log", "dropout"]`` -> ``[("lr", True), ("dropout", False)]``.

    >>> parse_num_cols(["lr:log", "dropout"])
    [('lr', True), ('dropout', False)]
    """
    out = []
    for spec in specs:
        name, sep, scale = str(spec).partition(":")
        if not name or (sep and scale != "log"):
            raise ValueError(f"numeric column {spec!r}: write 'name' or 'name:log'")
        out.append((name, scale == "log"))
    names = [n for n, _ in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"numeric column(s) {dup} given twice")
    return out


def _columns_space(df: pd.DataFrame, cat_cols: list[str], numeric: list[tuple[str, bool]]) -> tuple[SearchSpace, list]:
    """The space of a table's decision columns and its rows as configurations."""
    from ray_nasrank.spaces import Decision, Float, Integer

    both = sorted(set(cat_cols) & {c for c, _ in numeric})
    if both:
        raise ValueError(f"column(s) {both} are given both as categorical and as numeric")
    for col in [*cat_cols, *(c for c, _ in numeric)]:
        missing = df[col].isna().to_numpy()
        if missing.any():
            raise ValueError(f"row {int(np.flatnonzero(missing)[0])} has no value in decision column {col!r} "
                             f"({int(missing.sum())} row(s) in all); fill or drop them first")
    if not numeric:
        sp: SearchSpace = CategoricalSpace.from_columns({c: df[c].tolist() for c in cat_cols})
        return sp, [tuple(r) for r in df[cat_cols].itertuples(index=False, name=None)]
    decisions = [Decision((str(c),), tuple(sorted(set(df[c].tolist()), key=lambda v: (str(type(v)), v))))
                 for c in cat_cols]
    columns: list[list] = [df[c].tolist() for c in cat_cols]
    for col, log in numeric:
        values = pd.to_numeric(df[col], errors="coerce")
        bad = values.isna().to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"row {i} of numeric column {col!r} holds {df[col].iloc[i]!r}, not a number")
        arr = values.to_numpy()
        if not np.all(np.isfinite(arr)):
            i = int(np.flatnonzero(~np.isfinite(arr))[0])
            raise ValueError(f"row {i} of numeric column {col!r} holds {arr[i]!r}, not a finite number")
        if log and arr.min() <= 0:
            i = int(np.argmin(arr))
            raise ValueError(f"numeric column {col!r} is marked ':log' but row {i} holds {arr[i]!r} (must be > 0)")
        if pd.api.types.is_integer_dtype(values):
            dom = Integer(int(arr.min()), int(arr.max()), log=log)
            columns.append([int(v) for v in arr])
        else:
            dom = Float(float(arr.min()), float(arr.max()), log=log)
            columns.append([float(v) for v in arr])  # the table's own floats: rows match exactly
        decisions.append(Decision((str(col),), dom))
    return SearchSpace(decisions, name="columns"), [tuple(r) for r in zip(*columns)]
