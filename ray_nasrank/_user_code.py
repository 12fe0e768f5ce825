"""Importing the user's own code named ``MODULE:FUNCTION`` (a model, a model family, data)."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any, Callable

from ray_nasrank._checks import ConfigError

__all__ = ["load_callable"]


def load_callable(spec: str, what: str = "model") -> Callable[..., Any]:
    """The callable ``MODULE:FUNCTION`` names: an importable module (``pkg.models:build``) or a
    Python file (``models.py:build``); errors name ``what`` (the option) and what is missing.

    A file is imported once per process under a private module name kept in ``sys.modules``,
    so what it defines can be pickled (Ray ships such objects to its workers).
    """
    module_name, _, attr = spec.partition(":")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name).resolve()
            if not path.is_file():
                raise ConfigError(f"`{what}` {spec!r}: no file {module_name}")
            key = "_ray_nasrank_user_" + hashlib.sha1(str(path).encode()).hexdigest()[:12] + "_" + path.stem
            module = sys.modules.get(key)
            if module is None:
                mod_spec = importlib.util.spec_from_file_location(key, path)
                module = importlib.util.module_from_spec(mod_spec)
                sys.modules[key] = module
                try:
                    mod_spec.loader.exec_module(module)  # type: ignore[union-attr]
                except BaseException:
                    del sys.modules[key]
                    raise
        else:
            module = importlib.import_module(module_name)
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 -- any import error, reported with the spec
        raise ConfigError(f"`{what}` {spec!r}: cannot import {module_name}: {type(e).__name__}: {e}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ConfigError(f"`{what}` {spec!r}: {module_name} has no callable {attr!r}")
    return fn
