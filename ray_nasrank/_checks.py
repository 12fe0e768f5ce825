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


def check_int(key: str, value: object, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an ``int`` after checking it is one (not a bool) within ``[low, high]``.

    Args:
        key: the config key, for the error.
        value: the value to check.
        low: smallest allowed value (``None``: no bound).
        high: largest allowed value (``None``: no bound).

    Returns:
        ``int(value)``.

    Raises:
        ConfigError: not an integer, or out of bounds.

    >>> check_int("seeds", 3, low=1)
    3
    >>> check_int("seeds", 0, low=1)
    Traceback (most recent call last):
    ...
    ray_nasrank._checks.ConfigError: seeds must be >= 1, got 0
    """
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"`{key}` must be an integer, got {value!r}")
    if low is not None and value < low:
        raise ConfigError(f"`{key}` must be >= {low}, got {value!r}")
    if high is not None and value > high:
        raise ConfigError(f"`{key}` must be <= {high}, got {value!r}")
    return int(value)
