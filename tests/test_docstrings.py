"""Public APIs document their arguments Google style (``Args:``; ``Returns:``/``Raises:`` where
they apply), as mkdocs.yml declares: checked for the subpackages listed here so far."""

from __future__ import annotations

import dataclasses
import importlib
import inspect

import pytest

from ray_nasrank._config import CLI

#: subpackages whose every public (``__all__``) function and class documents its arguments
DOCUMENTED = ("ray_nasrank.metrics", "ray_nasrank.benchmarks", "ray_nasrank.search", "ray_nasrank.data",
              "ray_nasrank.data_sources", "ray_nasrank.training", "ray_nasrank.report", "ray_nasrank.pipeline",
              "ray_nasrank.integrations.tune", "ray_nasrank.integrations.optuna", "ray_nasrank.integrations.ray",
              "ray_nasrank.spaces", "ray_nasrank.proxies", "ray_nasrank.nn",
              "ray_nasrank.supernet", "ray_nasrank.predictor", "ray_nasrank.encodings")


def _public(package: str):
    module = importlib.import_module(package)
    for name in module.__all__:
        obj = getattr(module, name)
        if (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__.startswith("ray_nasrank"):
            yield f"{package}.{name}", obj


def _takes_arguments(obj) -> bool:
    if inspect.isclass(obj) and not any("__init__" in vars(c) for c in obj.__mro__
                                        if c.__module__.startswith("ray_nasrank")):
        return False  # no constructor of its own (an abstract base, a module without settings)
    target = obj.__init__ if inspect.isclass(obj) else obj
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return False
    return any(p not in ("self", "cls") for p in params)


def _options_only(obj) -> bool:
    """A config dataclass whose fields are all command-line options: their help is their doc."""
    return dataclasses.is_dataclass(obj) and all(CLI in f.metadata for f in dataclasses.fields(obj))


def _undocumented_fields(obj, doc: str) -> list[str]:
    """Fields of a config dataclass that are not command-line options and that its doc never names."""
    if not dataclasses.is_dataclass(obj):
        return []
    return [f.name for f in dataclasses.fields(obj) if CLI not in f.metadata and f"{f.name}:" not in doc]


@pytest.mark.parametrize("qualname, obj", [item for pkg in DOCUMENTED for item in _public(pkg)],
                         ids=lambda v: v if isinstance(v, str) else "")
def test_public_api_documents_its_arguments(qualname, obj):
    doc = inspect.getdoc(obj) or ""
    assert doc, f"{qualname} has no docstring"
    if _takes_arguments(obj) and not _options_only(obj):
        assert "Args:" in doc or "Attributes:" in doc, f"{qualname}: no Args: section"
        assert not _undocumented_fields(obj, doc), f"{qualname}: Args: misses {_undocumented_fields(obj, doc)}"
    if inspect.isfunction(obj) and inspect.signature(obj).return_annotation not in (None, "None", inspect._empty):
        assert "Returns:" in doc or "Yields:" in doc, f"{qualname}: no Returns: section"
