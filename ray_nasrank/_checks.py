"""Input checks shared by the configs and functions of the package.

Every check raises one error that names the key, the bad value and what is allowed. A
message written with a key in backquotes (```labels` must be >= 2``) is a :class:`ConfigError`:
the library prints the key as ``labels``, the command line as its flag ``--labels``.
"""

from __future__ import annotations

import re
from typing import Callable

_KEY = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)`")


class ConfigError(ValueError):
    """A bad configuration value; the message names the key(s) in backquotes.

    Args:
        message: the problem, each config key written as ```key```.

    >>> e = ConfigError("`labels` must be >= 2, got 1")
    >>> str(e)
    'labels must be >= 2, got 1'
    >>> e.render(lambda key: "--" + key.replace("_", "-"))
    '--labels must be >= 2, got 1'
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def render(self, key: Callable[[str], str] = lambda k: k) -> str:
        """The message with every ```key``` written as ``key(name)``.

        Args:
            key: how to print a config key (identity by default; the CLI passes its flag form).

        Returns:
            The message.
        """
        return _KEY.sub(lambda m: key(m.group(1)), self.message)

    def __str__(self) -> str:
        return self.render()


class ConfigTypeError(ConfigError, TypeError):
    """A config value of the wrong type (caught as ``TypeError`` and as ``ValueError``)."""


def check_mode(mode: object) -> str:
    """``mode`` after checking it is ``"max"`` or ``"min"``.

    Args:
        mode: whether higher (``max``) or lower (``min``) values are better.

    Returns:
        ``mode``.

    Raises:
        ConfigError: any other value.

    >>> check_mode("min")
    'min'
    """
    if mode not in ("max", "min"):
        raise ConfigError(f"`mode` must be 'max' or 'min', got {mode!r}")
    return mode  # type: ignore[return-value]


def check_int(key: str, value: object, low: int | None = None, high: int | None = None,
              optional: bool = False) -> int | None:
    """``value`` as an ``int`` after checking it is one (not a bool) within ``[low, high]``.

    Args:
        key: the config key, for the error.
        value: the value to check.
        low: smallest allowed value (``None``: no bound).
        high: largest allowed value (``None``: no bound).
        optional: ``None`` is allowed (and returned).

    Returns:
        ``int(value)`` (or ``None``).

    Raises:
        ConfigTypeError: not an integer.
        ConfigError: out of bounds.

    >>> check_int("seeds", 3, low=1)
    3
    >>> check_int("seeds", 0, low=1)
    Traceback (most recent call last):
    ...
    ray_nasrank._checks.ConfigError: seeds must be >= 1, got 0
    """
    import numbers

    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigTypeError(f"`{key}` must be an integer{' or None' if optional else ''}, got {value!r}")
    _check_bounds(key, value, low, high, False, False)
    return int(value)


def check_number(key: str, value: object, low: float | None = None, high: float | None = None, *,
                 low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a ``float`` after checking it is a finite real number within the bounds.

    Args:
        key: the config key, for the error.
        value: the value to check.
        low: lower bound (``None``: none); excluded when ``low_open``.
        high: upper bound (``None``: none); excluded when ``high_open``.

    Returns:
        ``float(value)``.

    Raises:
        ConfigTypeError: not a real number (a bool is not one).
        ConfigError: not finite, or out of bounds.

    >>> check_number("lr", 0.1, 0, low_open=True)
    0.1
    >>> check_number("valid_fraction", 1.0, 0, 1, low_open=True, high_open=True)
    Traceback (most recent call last):
    ...
    ray_nasrank._checks.ConfigError: valid_fraction must be in (0, 1), got 1.0
    """
    import math
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigTypeError(f"`{key}` must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"`{key}` must be a finite number, got {value!r}")
    _check_bounds(key, value, low, high, low_open, high_open)
    return float(value)


def _check_bounds(key: str, value, low, high, low_open: bool, high_open: bool) -> None:
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if not (too_low or too_high):
        return
    if low is not None and high is not None:
        allowed = f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    elif low is not None:
        allowed = f"{'>' if low_open else '>='} {low}"
    else:
        allowed = f"{'<' if high_open else '<='} {high}"
    raise ConfigError(f"`{key}` must be {allowed}, got {value!r}")
