"""Import a script or an example of the checkout by its path (examples are not a package)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]


def load_file(path: Path, name: str) -> ModuleType:
    """The module of the Python file ``path``, imported under ``name``."""
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def load_example(name: str) -> ModuleType:
    """``examples/<name>.py`` as a module."""
    return load_file(REPO / "examples" / f"{name}.py", f"example_{name}")
