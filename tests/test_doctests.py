"""Every docstring example of the package (and of the reliability harness) runs and passes.

This is ``--doctest-modules`` inside ``make test``: one test per module, so a failure names it.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import ray_nasrank
import reliability


def _modules() -> list[str]:
    names = []
    for pkg in (ray_nasrank, reliability):
        names.append(pkg.__name__)
        names += [m.name for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + ".")]
    return sorted(n for n in names if not n.endswith("__main__"))  # __main__ runs a command on import


MODULES = _modules()


def test_the_package_has_docstring_examples():
    assert len(MODULES) > 40


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    failed, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert failed == 0, f"{failed} docstring example(s) of {name} failed (printed above)"
