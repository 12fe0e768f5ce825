"""The default run (``make demo``) over several seeds: NASRank's final best against the random arm's.

Each seed is one ``run_search(PipelineConfig(seed=s))`` into ``OUT/seed<s>`` (the demo's
settings, random arm on), resumable like the CLI: a finished seed is only read back. The JSON
lists per seed both arms' retrained winners (full-fidelity valid/test accuracy), the search-fidelity
accuracies, each weak label's Kendall tau against the trained cells' true accuracy and the step
times, then the mean over the finished seeds and how many seeds NASRank won.

Usage (seeds may run in separate processes; a last call with every seed writes the table)::

    python scripts/bench_main_job.py --seeds 0 1 2 3 4 --out runs/bench_main_job \
        --json results/main_job/seeds.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def seed_row(out: Path) -> dict | None:
    """The finished seed's figures, or ``None`` when ``out`` holds no finished run."""
    import pandas as pd

    from ray_nasrank.pipeline._steps import intrinsic_columns
    from ray_nasrank.report import weak_taus

    if not (out / "best.json").is_file() or not (out / "final.parquet").is_file():
        return None
    best = json.loads((out / "best.json").read_text())
    final = pd.read_parquet(out / "final.parquet").set_index("arm")
    trained = [pd.read_parquet(out / "results.parquet")]
    if (out / "random.parquet").is_file():
        trained.append(pd.read_parquet(out / "random.parquet"))
    trained = pd.concat(trained, ignore_index=True)
    if "weak_params" not in trained.columns:  # a run from before the tables carried them
        trained = trained.assign(**intrinsic_columns(trained["arch"].tolist()))
    row = {"seed": json.loads((out / "config.json").read_text())["seed"]}
    for arm in final.index:
        f = final.loc[arm]
        row[arm] = {"arch": f["arch"], "test_acc": round(float(f["test_acc"]), 2),
                    "valid_acc": round(float(f["valid_acc"]), 2),
                    "search_valid_acc": round(float(f["search_valid_acc"]), 2),
                    "found_at_training": int(f["found_at_training"])}
    row["weak_label_tau"] = weak_taus(trained)
    row["step_seconds"] = best.get("step_seconds", {})
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", required=True)
    ap.add_argument("--out", type=Path, required=True, help="one folder per seed goes in here")
    ap.add_argument("--json", type=Path, default=None, help="write the table here (all seeds finished or not)")
    ap.add_argument("--only-collect", action="store_true", help="read finished seeds, run nothing")
    args = ap.parse_args(argv)
    from ray_nasrank.pipeline import PipelineConfig, run_search

    rows = []
    for s in args.seeds:
        out = args.out / f"seed{s}"
        if not args.only_collect:
            t0 = time.perf_counter()
            run_search(PipelineConfig(seed=s, progress=False), out)
            print(f"seed {s}: {time.perf_counter() - t0:.0f} s", flush=True)
        row = seed_row(out)
        if row is not None:
            rows.append(row)
    done = [r for r in rows if "random" in r]
    summary = {
        "command": "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
        "config": {k: v for k, v in PipelineConfig().to_dict().items() if k not in ("seed", "progress")},
        "seeds": rows,
        "finished_seeds": len(done),
    }
    if done:
        import numpy as np

        n = np.array([r["nasrank"]["test_acc"] for r in done])
        r = np.array([r["random"]["test_acc"] for r in done])
        summary["mean_test_acc"] = {"nasrank": round(float(n.mean()), 2), "random": round(float(r.mean()), 2)}
        summary["nasrank_wins"] = int((n > r).sum())
        summary["ties"] = int((n == r).sum())
    text = json.dumps(summary, indent=2)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
