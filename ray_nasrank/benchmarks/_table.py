"""Tabular benchmarks: a table of architectures and their measured targets as a query oracle."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ray_nasrank.spaces import Arch, CategoricalSpace, NB201Space, SearchSpace

#: where the project's reference data lives when run from a checkout beside ../shared
DEFAULT_DATA_DIRS = ("../shared/data", "shared/data")


def find_shared_data(name: str = "nb201/nb201_cifar10.parquet") -> Path | None:
    """Locate a file of the shared benchmark data: ``$NASRANK_DATA`` first, then ../shared/data.

    Returns ``None`` when it is absent (tests skip on that).
    """
    roots = []
    if os.environ.get("NASRANK_DATA"):
        roots.append(Path(os.environ["NASRANK_DATA"]))
    here = Path(__file__).resolve().parents[2]
    roots += [Path(d) for d in DEFAULT_DATA_DIRS] + [here / d for d in DEFAULT_DATA_DIRS]
    for root in roots:
        p = root / name
        if p.is_file():
            return p
    return None


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a parquet or CSV file, with an error that names the file."""
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
        if self.mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {self.mode!r}")
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
                   arch_col: str = "arch", arch_cols: Sequence[str] | None = None, mode: str = "max",
                   weak: Sequence[str] = (), keep: Sequence[str] = ()) -> "TabularBenchmark":
        """Build from a DataFrame.

        ``space="nb201"`` reads NB201 strings from ``arch_col``; ``space="columns"`` builds a
        :class:`CategoricalSpace` from ``arch_cols``. ``weak`` names weak-label columns; ``keep``
        names further columns to carry along (e.g. latencies).
        """
        needed = [target, *weak, *keep]
        if isinstance(space, str) and space == "columns":
            if not arch_cols:
                raise ValueError("space 'columns' needs arch_cols (the categorical columns)")
            needed += list(arch_cols)
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
            sp: SearchSpace = CategoricalSpace.from_columns({c: df[c].tolist() for c in arch_cols})  # type: ignore[union-attr]
            archs = [tuple(r) for r in df[list(arch_cols)].itertuples(index=False, name=None)]  # type: ignore[arg-type]
        else:
            sp = NB201Space() if space == "nb201" else space  # type: ignore[assignment]
            if isinstance(sp, str):
                raise ValueError(f"unknown space {sp!r}; use 'nb201', 'columns' or a SearchSpace")
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
        return cls.from_frame(read_table(path), **kwargs)

    @classmethod
    def nb201(cls, path: str | os.PathLike | None = None, target: str = "test_acc",
              weak: Sequence[str] = ("supernet_oneshot_acc", "supernet_fewshot_acc")) -> "TabularBenchmark":
        """The shared NB201 CIFAR-10 table (``$NASRANK_DATA`` or ../shared/data)."""
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
