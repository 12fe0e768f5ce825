"""docs/architecture.md stays true: every module it cites exists, and the steps it calls core
import neither Ray nor Optuna."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "architecture.md"
TEXT = DOC.read_text()
MODULES = sorted(set(re.findall(r"`(ray_nasrank(?:\.\w+)*)`", TEXT)))


def test_the_page_cites_the_pipeline_modules():
    assert len(MODULES) >= 15
    for step in ("space", "weak labels", "ranker", "strategy", "Tune", "Optuna", "CLI"):
        assert step in TEXT


@pytest.mark.parametrize("name", MODULES)
def test_every_cited_name_exists(name):
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name != name:
            raise
        module, _, attr = name.rpartition(".")  # a name defined in a module, e.g. _config.option
        assert hasattr(importlib.import_module(module), attr), f"{name} cited in {DOC.name} does not exist"


def test_the_core_rows_import_neither_ray_nor_optuna():
    core = []
    for row in TEXT.split("## Measuring it")[0].splitlines():
        cells = [c.strip() for c in row.strip("|").split("|")]
        if len(cells) == 4 and cells[3].startswith("core"):
            core += re.findall(r"`(ray_nasrank(?:\.\w+)*)`", cells[2])
    assert len(core) >= 8
    code = ("import sys\n" + "".join(f"import {m}\n" for m in core)
            + "bad = sorted(m for m in ('ray', 'optuna') if m in sys.modules)\nsys.exit(str(bad) if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]


def _imported(package: Path) -> dict[str, set[str]]:
    """Every module each file of ``package`` imports, at the top or inside a function."""
    import ast

    out = {}
    for path in package.rglob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        out[str(path.relative_to(package.parent.parent))] = names
    return out


def test_the_tune_integration_does_not_import_the_benchmarks():
    # benchmarks/ runs searches through Tune (lazily); the integration needs only the table type
    pkg = DOC.parent.parent / "ray_nasrank"
    bad = {f: sorted(n for n in names if n.startswith("ray_nasrank.benchmarks"))
           for f, names in _imported(pkg / "integrations").items()}
    assert not {f: n for f, n in bad.items() if n}
    code = "import sys, ray_nasrank.benchmarks, ray_nasrank.tabular; sys.exit('ray' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
