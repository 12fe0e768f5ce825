"""The main job on scikit-learn's digits under a time budget, with a 3-block choice-module CNN family.

Writes the digits as an ``.npz`` (``make_digits_npz``), then runs, as a user would::

    ray-nasrank search --data DIGITS.npz --space scripts/bench_time_budget.py:family \\
        --time-budget 300 --concurrency 2 --out OUT/seed<s> --no-progress

once per seed and writes a JSON with each run's wall time (the whole command, process start
included), its test accuracy, the random arm's, the plan it followed and the machine's load
average before and after. The target of issue 20: at least 90 % test accuracy and a wall time
within the budget plus 20 %.

    python scripts/bench_time_budget.py --seeds 0 --budget 300 --out runs/bench_time_budget \\
        --json results/main_job/digits_time_budget.json

The family (``family``): three conv-BN-ReLU blocks whose kernel (``k1``..``k3``: 3x3, 5x5,
1x1) and width (``w1``..``w3``: 16, 32, 64) are chosen; the second block halves the
resolution, and global average pooling before the linear head takes any image size. 729 configs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from torch import nn

from ray_nasrank.nn import ChoiceSupernet, OpChoice, SlimBatchNorm2d, SlimConv2d, SlimLinear, WidthChoice


def _block(c_in, c_out: WidthChoice, label: str, stride: int = 1) -> nn.Sequential:
    """conv (kernel chosen under ``label``) -> BN -> ReLU."""
    convs = {f"conv{k}": SlimConv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=False) for k in (3, 5, 1)}
    return nn.Sequential(OpChoice(convs, label=label), SlimBatchNorm2d(c_out), nn.ReLU())


def family(in_channels: int = 1, num_classes: int = 10) -> ChoiceSupernet:
    """The 3-block CNN family as one weight-sharing supernet (space: ``k1, w1, k2, w2, k3, w3``)."""
    w1, w2, w3 = (WidthChoice(f"w{i}", [16, 32, 64]) for i in (1, 2, 3))
    return ChoiceSupernet(nn.Sequential(
        _block(in_channels, w1, "k1"), _block(w1, w2, "k2", stride=2), _block(w2, w3, "k3"),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), SlimLinear(w3, num_classes)))


def make_digits_npz(path: str | os.PathLike) -> Path:
    """scikit-learn's 8x8 digits as an ``.npz`` for ``--data``: ``x`` uint8 ``[1797, 8, 8]`` (the
    0-16 intensities scaled to 0-255), ``y`` the digits, ``classes`` their names; without
    ``x_test`` the search holds a fixed 20 % out as its test split."""
    import numpy as np
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)
    np.savez(path, x=x, y=d.target.astype(np.int64), classes=np.array([str(i) for i in range(10)]))
    return Path(path)


def run_one(npz: Path, out: Path, budget: str, seed: int, concurrency: int, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "ray_nasrank", "search", "--data", str(npz), "--space",
           f"{Path(__file__).resolve()}:family", "--time-budget", budget, "--concurrency", str(concurrency),
           "--seed", str(seed), "--out", str(out), "--no-progress", *extra]
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    row = {"seed": seed, "command": " ".join(cmd[2:]), "returncode": proc.returncode, "wall_s": round(wall, 1),
           "load_before": [round(v, 2) for v in load_before], "load_after": [round(v, 2) for v in os.getloadavg()],
           "stdout": proc.stdout.strip().splitlines()[-12:]}
    if proc.returncode != 0:
        row["stderr"] = proc.stderr.strip().splitlines()[-15:]
        return row
    best = json.loads((out / "best.json").read_text())
    rnd = best.get("random_baseline") or {}
    row.update({"test_acc": best["test_acc"], "arch": best["arch"], "random_test_acc": rnd.get("test_acc"),
                "plan": best.get("plan"), "fidelity": best.get("fidelity"), "step_seconds": best.get("step_seconds")})
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--budget", default="300", help="--time-budget of each run")
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--out", type=Path, required=True, help="one folder per seed goes in here (must not exist)")
    ap.add_argument("--json", type=Path, required=True)
    ap.add_argument("extra", nargs="*", help="more ray-nasrank search flags (after --)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    npz = make_digits_npz(args.out / "digits.npz")
    rows = []
    for seed in args.seeds:
        row = run_one(npz, args.out / f"seed{seed}", args.budget, seed, args.concurrency, args.extra)
        rows.append(row)
        print(json.dumps({k: row.get(k) for k in ("seed", "returncode", "wall_s", "test_acc", "random_test_acc",
                                                  "load_before")}), flush=True)
    from ray_nasrank.pipeline._budget import parse_duration

    limit = parse_duration(args.budget)
    done = [r for r in rows if r["returncode"] == 0]
    summary = {"time_budget_s": limit, "runs": len(rows), "finished": len(done),
               "test_acc_at_least_90": sum(r["test_acc"] >= 90 for r in done),
               "within_budget_plus_20pct": sum(r["wall_s"] <= 1.2 * limit for r in done),
               "cpus": os.cpu_count(), "rows": rows}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=1) + "\n")
    return 0 if len(done) == len(rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
