"""The ``ray-nasrank`` command line.

Each subcommand lives in its own module exposing ``register(subparsers)``; its
``run(args) -> int`` only parses, calls a library function and prints. The flags of a
command are the :func:`~ray_nasrank._config.option` fields of its config dataclass
(:func:`add_options`), so both share one source of defaults. Heavy libraries are imported
only when a command runs, so ``ray-nasrank --help`` stays fast. Bad arguments and bad input
end with one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import json
import logging
import sys
import types
import typing
from typing import Any, Iterator, Sequence, TextIO

from ray_nasrank._checks import ConfigError
from ray_nasrank._config import CLI, field_default

#: top-level commands and the modules that define them
COMMANDS: tuple[str, ...] = ("search", "report")
#: ``ray-nasrank bench <name>`` benchmarks (the reliability scenarios are a harness of the source
#: checkout, not of the package: ``python -m reliability`` from the repository root runs them)
BENCHMARKS: tuple[str, ...] = ("ranking", "supernet", "search", "proxies", "fit-time", "overhead", "objectives")

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
        mod = _load(f"bench_{name.replace('-', '_')}")
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
    except ConfigError as e:  # a config key is a flag here
        print(f"error: {e.render(flag)}", file=sys.stderr)
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


def flag(key: str) -> str:
    """The command-line flag of a config key: ``pool_size`` -> ``--pool-size``."""
    return "--" + key.replace("_", "-")


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def _parser_for(kind: Any):
    origin = typing.get_origin(kind) or kind
    if origin in (list, tuple):
        args = [a for a in typing.get_args(kind) if a is not Ellipsis]
        return parse_int_list if args and args[0] is int else parse_csv_list
    if origin is dict:
        return json.loads
    return kind if kind in (int, float, str) else str


def add_options(parser: argparse.ArgumentParser, cls: type, exclude: Sequence[str] = ()) -> None:
    """One flag per :func:`~ray_nasrank._config.option` field of the dataclass ``cls``.

    Args:
        parser: the (sub)command's parser.
        cls: a config dataclass.
        exclude: fields the command sets itself.
    """
    hints = typing.get_type_hints(cls)
    groups: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        spec = f.metadata.get(CLI)
        if spec is None or f.name in exclude:
            continue
        target = parser
        if spec["group"]:
            target = groups.setdefault(spec["group"], parser.add_argument_group(spec["group"]))
        kind = hints[f.name]
        if typing.get_origin(kind) in (typing.Union, types.UnionType):
            kind = next(a for a in typing.get_args(kind) if a is not type(None))
        default = field_default(f)
        help_text = spec["help"]
        kwargs: dict[str, Any] = {"dest": f.name, "default": default}
        if kind is bool:
            kwargs["action"] = "store_true"
        else:
            kwargs["type"] = spec["parse"] or _parser_for(kind)
            if spec["choices"] is not None:
                kwargs["choices"] = list(spec["choices"])
            if spec["metavar"]:
                kwargs["metavar"] = spec["metavar"]
            if spec["required"]:
                kwargs["required"] = True
            elif default not in (None, "", (), [], {}):
                help_text += f" (default: {_show(default)})"
        kwargs["help"] = help_text.replace("%", "%%")
        target.add_argument(flag(f.name), **kwargs)


def options_from_args(cls: type, args: argparse.Namespace, **values: Any):
    """The config ``cls`` built from the parsed flags of :func:`add_options` (plus ``values``).

    Args:
        cls: the config dataclass.
        args: parsed arguments.
        **values: fields the command sets itself.

    Returns:
        ``cls(...)``; a bad value raises the config's :class:`~ray_nasrank._checks.ConfigError`.
    """
    for f in dataclasses.fields(cls):
        if CLI in f.metadata and f.name not in values and hasattr(args, f.name):
            values[f.name] = getattr(args, f.name)
    return cls(**values)


@contextlib.contextmanager
def log_to(stream: TextIO, verbose: bool = True) -> Iterator[None]:
    """Print the package's log messages on ``stream`` while a command runs.

    Args:
        stream: where (``sys.stderr`` for progress, ``sys.stdout`` where a command's log is its output).
        verbose: ``False``: warnings only (``--quiet``).
    """
    logger = logging.getLogger("ray_nasrank")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    level = logger.level
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)



def register_bench(subparsers, name: str, help: str, cls: type, module: str, run: str, fmt: str) -> None:
    """Add a ``bench NAME`` command that only parses, calls and prints.

    Args:
        subparsers: the ``bench`` subparsers.
        name: the command's name.
        help: one line for ``--help``.
        cls: the benchmark's config dataclass; its option fields become the flags.
        module: the module holding the benchmark (imported when the command runs); its
            docstring's second paragraph is the command's description.
        run: the name of the function taking the config and returning the result.
        fmt: the name of the function turning the result into the printed summary.
    """

    def _run(args: argparse.Namespace) -> int:
        mod = importlib.import_module(module)
        cfg = options_from_args(cls, args)
        with log_to(sys.stderr):
            result = getattr(mod, run)(cfg)
        print(getattr(mod, fmt)(result))
        return 0

    doc = importlib.import_module(module).__doc__ or ""
    paragraphs = doc.split("\n\n")
    description = (paragraphs[1] if len(paragraphs) > 1 else paragraphs[0]).replace("\n", " ")
    p = subparsers.add_parser(name, help=help, description=description + " Writes one JSON file (--out).")
    add_options(p, cls)
    p.set_defaults(func=_run)

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
