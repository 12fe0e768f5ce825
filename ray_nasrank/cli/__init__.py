"""The ``ray-nasrank`` command line.

Each subcommand lives in its own module exposing ``register(subparsers)``; the module's
``run(args) -> int`` does the work and imports heavy libraries only when called, so
``ray-nasrank --help`` stays fast. Bad arguments and bad input end with one line on stderr
and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

#: top-level commands and the modules that define them
COMMANDS: tuple[str, ...] = ("search", "report")
#: ``ray-nasrank bench <name>`` benchmarks
BENCHMARKS: tuple[str, ...] = ("ranking", "supernet", "search", "reliability", "proxies")

EXIT_BAD_INPUT = 2


class UsageError(Exception):
    """Bad arguments or input: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage dump
        raise UsageError(f"{self.prog}: {message} (see '{self.prog} --help')")


def _load(module: str):
    try:
        return importlib.import_module(f"ray_nasrank.cli.{module}")
    except ModuleNotFoundError as e:
        if e.name == f"ray_nasrank.cli.{module}":
            return None
        raise


def build_parser() -> argparse.ArgumentParser:
    from ray_nasrank import __version__

    parser = _Parser(prog="ray-nasrank", description="Learning-to-rank neural architecture search.")
    parser.add_argument("--version", action="version", version=f"ray-nasrank {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS:
        mod = _load(f"cmd_{name}")
        if mod is not None:
            mod.register(sub)
    bench = sub.add_parser("bench", help="benchmarks that write JSON results",
                           description="Benchmarks: each writes its results as JSON (or files) under --out.")
    bsub = bench.add_subparsers(dest="bench", metavar="BENCHMARK", parser_class=_Parser)
    bsub.required = True
    for name in BENCHMARKS:
        mod = _load(f"bench_{name}")
        if mod is not None:
            mod.register(bsub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (ValueError, KeyError, OSError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"ray-nasrank: error: {type(e).__name__}: {msg}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except RuntimeError as e:
        # environment problems found at run time (resources, a dead cluster): say it in one line
        print(f"ray-nasrank: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ray-nasrank: interrupted", file=sys.stderr)
        return 130


def parse_csv_list(text: str) -> list[str]:
    """``"a,b, c"`` -> ``["a", "b", "c"]`` (empty parts dropped)."""
    return [p.strip() for p in text.split(",") if p.strip()]


def parse_int_list(text: str) -> list[int]:
    try:
        return [int(p) for p in parse_csv_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def add_table_args(p: argparse.ArgumentParser, weak_required: bool = False) -> None:
    """The arguments every table-driven benchmark shares."""
    p.add_argument("--table", required=True, help="parquet or CSV table of architectures and targets")
    p.add_argument("--space", default="nb201", choices=["nb201", "columns"],
                   help="nb201: --arch-col holds NB201 strings; columns: --arch-cols are categorical decisions")
    p.add_argument("--arch-col", default="arch", help="column with NB201 strings (space nb201)")
    p.add_argument("--arch-cols", type=parse_csv_list, default=None,
                   help="comma-separated categorical columns (space columns)")
    p.add_argument("--target", required=True, help="column to rank or optimise")
    p.add_argument("--mode", default="max", choices=["max", "min"], help="whether higher or lower target is better")
    p.add_argument("--weak", type=parse_csv_list, default=[], required=weak_required,
                   help="comma-separated weak-label columns (e.g. supernet_oneshot_acc,flops)")


def load_table_from_args(args: argparse.Namespace):
    from ray_nasrank.benchmarks import TabularBenchmark

    if args.space == "columns" and not args.arch_cols:
        raise UsageError("--space columns needs --arch-cols c1,c2,...")
    return TabularBenchmark.from_file(
        args.table, space=args.space, arch_col=args.arch_col, arch_cols=args.arch_cols,
        target=args.target, mode=args.mode, weak=args.weak,
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
