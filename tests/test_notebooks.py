"""Every notebook runs top to bottom (nbclient, kernel python3) with small parameters."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def execute(name: str, params: dict, timeout: int = 300):
    """Run notebook ``name`` with ``params`` appended to its ``parameters`` cell; return it executed."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{name} needs exactly one cell tagged 'parameters'"
    tagged[0].source += "\n# test overrides\n" + "\n".join(f"{k} = {v!r}" for k, v in params.items())
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=timeout,
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()
    return nb


def outputs(nb, kind: str) -> list:
    found = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if kind == "stream" and out.output_type == "stream":
                found.append(out.text)
            elif kind != "stream" and kind in out.get("data", {}):
                found.append(out["data"][kind])
    return found


def test_notebooks_are_stored_without_outputs():
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), path.name


@pytest.mark.data
def test_nb201_table_tour(nb201_path):
    nb = execute("01_nb201_table_tour.ipynb", {"DATA": str(Path(nb201_path).resolve()), "BUDGET": 20, "SEEDS": 1,
                                               "STRATEGIES": ["random", "opdist"]})
    text = "\n".join(outputs(nb, "stream") + outputs(nb, "text/plain"))
    assert "15625 cells" in text and "supernet_fewshot_acc" in text
    assert "random (exact expectation)" in text and "opdist" in text
    pngs = outputs(nb, "image/png")
    assert len(pngs) == 3 and all(base64.b64decode(p)[:4] == b"\x89PNG" for p in pngs)


@pytest.mark.ray
def test_end_to_end_notebook(tmp_path):
    # the kernel is a separate process: it starts (and stops) its own small local Ray
    out = tmp_path / "run"
    nb = execute("02_end_to_end_search.ipynb", {"OUT": str(out), "BUDGET": 4, "POOL_SIZE": 24,
                                                "FINALIST_EPOCHS": 1}, timeout=400)
    text = "\n".join(outputs(nb, "stream"))
    assert "best architecture: |" in text and (out / "results.parquet").is_file()
    assert len(outputs(nb, "image/png")) == 3
