"""Helpers shared by the config dataclasses: ``from_dict`` checks and command-line options.

A config field declared with :func:`option` is also a command-line flag: its name gives the
flag (``pool_size`` -> ``--pool-size``), its default and type the flag's default and parser,
so the library and the command line share one source of defaults and adding a field adds its
flag (see :func:`ray_nasrank.cli.add_options`).
"""

from __future__ import annotations

from dataclasses import MISSING, field, fields
from typing import Any, Callable, Mapping, Sequence

#: ``Field.metadata`` key holding an :func:`option`'s command-line settings
CLI = "cli"


def known_fields(cls: type, d: Mapping[str, Any], what: str) -> dict[str, Any]:
    """``d`` as a plain dict after checking it is a mapping whose keys are all fields of ``cls``.

    Args:
        cls: a dataclass.
        d: the mapping to check.
        what: how errors name the config (``"pipeline config"``).

    Returns:
        ``dict(d)``.

    Raises:
        TypeError: ``d`` is not a mapping.
        ValueError: ``d`` has keys that are not fields of ``cls`` (the error names them).

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class C:
    ...     a: int = 1
    >>> known_fields(C, {"a": 2}, "C")
    {'a': 2}
    >>> known_fields(C, {"b": 2}, "C")
    Traceback (most recent call last):
    ...
    ValueError: unknown C keys ['b']; known: ['a']
    """
    if not isinstance(d, Mapping):
        raise TypeError(f"a {what} must be a dict, got {type(d).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"unknown {what} keys {unknown}; known: {sorted(known)}")
    return dict(d)


def option(default: Any = MISSING, help: str = "", *, default_factory: Callable[[], Any] | Any = MISSING,
           choices: Sequence[Any] | None = None, parse: Callable[[str], Any] | None = None,
           metavar: str | None = None, required: bool = False, group: str | None = None) -> Any:
    """A dataclass field that the command line offers as a flag.

    Args:
        default: the field's default (also the flag's).
        help: the flag's help text; `` (default: ...)`` is appended for optional flags.
        default_factory: instead of ``default``, for mutable defaults.
        choices: the values the flag accepts.
        parse: how the flag's text becomes a value (default: from the field's type: ``int``,
            ``float``, ``str``; comma-separated lists for ``list``/``tuple`` fields; JSON for
            ``dict`` fields; ``bool`` fields are switches).
        metavar: the value's name in ``--help``.
        required: the flag must be given (the field may still default to ``None`` in the library).
        group: the ``--help`` section the flag is listed under.

    Returns:
        A :func:`dataclasses.field`.

    >>> from dataclasses import dataclass, fields
    >>> @dataclass
    ... class C:
    ...     pool_size: int = option(200, "candidate cells")
    >>> fields(C)[0].metadata["cli"]["help"]
    'candidate cells'
    """
    meta = {CLI: {"help": help, "choices": choices, "parse": parse, "metavar": metavar,
                  "required": required, "group": group}}
    return field(default=default, default_factory=default_factory, metadata=meta)


def field_default(f: Any) -> Any:
    """A dataclass field's default value (``MISSING`` when it has none).

    Args:
        f: a :class:`dataclasses.Field`.

    Returns:
        The default, or a fresh one from its factory.
    """
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return MISSING
