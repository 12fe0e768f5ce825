"""What ``pip install .`` ships: the package, not its test harness (reliability/, tests/)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_ships_the_package_only_and_hypothesis_is_no_runtime_requirement(tmp_path):
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          str(ROOT), "-w", str(tmp_path)], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    (wheel,) = tmp_path.glob("ray_nasrank-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"ray_nasrank", wheel.name.split("-py")[0] + ".dist-info"}
    assert not [n for n in names if "/reliability/" in n or n.startswith(("tests/", "reliability/"))]
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("/METADATA"))).decode()
    runtime = [ln for ln in meta.splitlines() if ln.startswith("Requires-Dist:") and "extra ==" not in ln]
    assert runtime and not [ln for ln in runtime if "hypothesis" in ln]


def test_the_shipped_cli_has_no_reliability_command_and_never_edits_sys_path(capsys):
    from ray_nasrank.cli import main

    assert main(["bench", "reliability", "--help"]) == 2  # the harness is not a command of the package
    assert "invalid choice: 'reliability'" in capsys.readouterr().err
    cli = ROOT / "ray_nasrank" / "cli"
    assert not [p for p in cli.glob("*.py") if "sys.path" in p.read_text()]


def test_the_harness_runs_as_its_own_script_from_the_checkout():
    out = subprocess.run([sys.executable, "-m", "reliability", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and "--scenarios" in out.stdout and "--keep-passed" in out.stdout


def test_the_package_does_not_import_the_harness():
    # the whole parser is built, so every command module is imported
    code = ("import sys, ray_nasrank.cli as c; c.build_parser(); "
            "sys.exit('reliability' in sys.modules or 'hypothesis' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0
