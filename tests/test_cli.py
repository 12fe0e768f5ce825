import subprocess
import sys

import pandas as pd
import pytest

from ray_nasrank.cli import main


def run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_top_level_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "bench" in out


@pytest.mark.parametrize("bench", ["ranking", "search"])
def test_bench_help_exists(capsys, bench):
    with pytest.raises(SystemExit) as e:
        main(["bench", bench, "--help"])
    assert e.value.code == 0
    assert "--table" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["bench"], "required"),
        (["bench", "ranking"], "required"),
        (["bench", "ranking", "--table", "t.csv", "--target", "y", "--labels", "many"], "invalid int value: 'many'"),
        (["bench", "ranking", "--table", "t.csv", "--target", "y", "--mode", "up"], "invalid choice: 'up'"),
    ],
)
def test_bad_arguments_one_line_exit_2(capsys, argv, needle):
    rc, out, err = run(capsys, *argv)
    assert rc == 2
    assert needle in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_bad_input_file_is_one_line_exit_2(capsys, tmp_path):
    rc, _, err = run(capsys, "bench", "ranking", "--table", str(tmp_path / "missing.parquet"),
                     "--target", "test_acc", "--out", str(tmp_path / "r.json"))
    assert rc == 2 and "does not exist" in err and len(err.strip().splitlines()) == 1
    df = pd.DataFrame({"arch": ["|none~0|+|none~0|none~1|+|none~0|none~1|bogus~2|"], "y": [1.0]})
    df.to_csv(tmp_path / "t.csv", index=False)
    rc, _, err = run(capsys, "bench", "ranking", "--table", str(tmp_path / "t.csv"), "--target", "y",
                     "--out", str(tmp_path / "r.json"))
    assert rc == 2 and "bogus" in err and len(err.strip().splitlines()) == 1


def test_console_script_entry_point():
    out = subprocess.run([sys.executable, "-m", "ray_nasrank", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("ray-nasrank ")
