"""One check shared by the config dataclasses' ``from_dict``."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Mapping


def known_fields(cls: type, d: Mapping[str, Any], what: str) -> dict[str, Any]:
    """``d`` as a plain dict after checking it is a mapping whose keys are all fields of ``cls``.

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
