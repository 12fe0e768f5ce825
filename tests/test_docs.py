"""The docs site builds with warnings as errors (what CI checks), and README's commands are real."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("mkdocs") is None and not (Path(sys.executable).parent / "mkdocs").exists(),
                    reason="mkdocs not installed (pip install -e '.[docs]')")
def test_docs_build_strict(tmp_path):
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert (tmp_path / "site" / "index.html").is_file()
    assert (tmp_path / "site" / "benchmarks" / "ranking" / "index.html").is_file()


def test_readme_quickstart_matches_ci_and_makefile():
    readme = (REPO / "README.md").read_text()
    block = re.search(r"## Quickstart.*?```bash\n(.*?)```", readme, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make demo", "make test"]
    assert "make test" in (REPO / ".ci" / "run").read_text()
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)


@pytest.mark.ray
def test_readme_tune_snippet_runs_end_to_end(ray_session, tmp_path, monkeypatch, capsys):
    readme = (REPO / "README.md").read_text()
    code = re.search(r"## Use it from Tune.*?```python\n(.*?)```", readme, re.S).group(1)
    assert "get_best_result()" in code and "NASRankSearcher(" in code
    monkeypatch.chdir(tmp_path)
    # the snippet as written, with a smaller budget and Tune's output kept to the test's storage
    code = code.replace("num_samples=20", "num_samples=6").replace(
        "max_concurrent_trials=4),", f"max_concurrent_trials=2),\n    run_config=tune.RunConfig(verbose=0, storage_path={str(tmp_path)!r}),")
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    best = eval(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(best["cell"]) == {"e1_0", "e2_0", "e2_1", "e3_0", "e3_1", "e3_2"} and 1e-4 <= best["lr"] <= 1e-1
