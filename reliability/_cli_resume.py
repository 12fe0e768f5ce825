"""``ray-nasrank search`` interrupted (Ctrl-C) at every 10 % of its budget and re-run on its
output directory until done.

The command runs in a child process connected to an existing Ray cluster (``--address``); a
watcher counts the finalist trials that finished (``tune/*/result.json`` with ``done: true``)
and sends SIGINT once a mark is reached, exactly what a user's Ctrl-C does. The same command is
then started again on the same ``--out``. At the end ``results.parquet`` must hold exactly the
budget, no two isomorphic archs, and every trial that had finished before an interruption with
the same accuracy; one more re-run must train nothing.

>>> # needs a Ray cluster address and a few minutes:
>>> # cli_search_interrupt(address=cluster.address, budget=4).failures
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

from ._core import CaseLog, ScenarioResult
from ._interrupt import EVERY_10_PERCENT, checkpoints

#: a demo-scale run of the search command (digits data, tiny networks, seconds per trial)
TINY_SEARCH_ARGS = ("--dataset", "digits", "--rounds", "2", "--pool-size", "24", "--train-size", "400",
                    "--valid-size", "200", "--test-size", "200", "--channels", "4", "--batch-size", "64",
                    "--supernet-epochs", "1", "--finalist-epochs", "1", "--ranker-epochs", "5", "--no-progress",
                    "--no-html", "--baseline", "none", "--final-epochs", "1", "--min-steps", "0")


def _session_dir() -> Path | None:
    """This process's Ray session folder (shared by every driver of the cluster), if connected."""
    try:
        import ray

        if not ray.is_initialized():
            return None
        return Path(ray._private.worker._global_node.get_session_dir_path())
    except Exception:  # noqa: BLE001 - a private API; without it the watcher reads --out only
        return None


def finished_trials(out: Path, session: Path | None = None) -> dict[str, float]:
    """Trial folder -> final ``valid_acc`` of the trials under ``out/tune`` that finished.

    With ``session`` (a Ray session folder) the driver's staging copies count too: Tune writes
    results there at once and syncs them to ``--out`` only at its periodic checkpoints.
    """
    done: dict[str, float] = {}
    files = list((out / "tune").glob("*/result.json")) if (out / "tune").is_dir() else []
    if session is not None:
        # only trials of this experiment (Tune creates their folders under --out when they start)
        ours = {p.parent.name for p in files} | ({p.name for p in (out / "tune").iterdir() if p.is_dir()}
                                                 if (out / "tune").is_dir() else set())
        files += [p for p in session.glob("artifacts/*/tune/driver_artifacts/*/result.json") if p.parent.name in ours]
    for res in files:
        try:
            lines = [ln for ln in res.read_text().splitlines() if ln.strip()]
        except OSError:
            continue
        for ln in lines:
            try:
                r = json.loads(ln)
            except json.JSONDecodeError:  # a line being written right now
                continue
            if r.get("done") and "valid_acc" in r:
                done[res.parent.name] = float(r["valid_acc"])
    return done


def _run_until(cmd: list[str], out: Path, stop_at: int | None, timeout_s: float, env: dict,
               session: Path | None = None) -> tuple[int, str, bool]:
    """Run ``cmd``; SIGINT it once ``stop_at`` trials finished. Returns (rc, stderr tail, interrupted)."""
    with tempfile.TemporaryFile(mode="w+") as err:
        # a background job inherits SIGINT ignored; give the child the default Ctrl-C behaviour
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        interrupted = False
        deadline = time.monotonic() + timeout_s
        try:
            while proc.poll() is None:
                if time.monotonic() > deadline:
                    proc.kill()
                    proc.wait()
                    raise TimeoutError(f"{' '.join(cmd[-6:])} ran past {timeout_s} s")
                if stop_at is not None and not interrupted and len(finished_trials(out, session)) >= stop_at:
                    proc.send_signal(signal.SIGINT)
                    interrupted = True
                time.sleep(0.2)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        err.seek(0)
        tail = err.read()[-1500:]
    return proc.returncode, tail, interrupted


def cli_search_interrupt(address: str, budget: int = 4, concurrency: int = 2,
                         fractions: Sequence[float] = EVERY_10_PERCENT, out: str | None = None,
                         run_timeout_s: float = 600.0) -> ScenarioResult:
    """``ray-nasrank search`` SIGINT-ed at every 10 % of ``budget``, re-run on its ``--out``."""
    import pandas as pd

    from ray_nasrank.spaces import NB201Space

    log = CaseLog("interrupt_cli_search")
    stops = checkpoints(budget, fractions)
    own = tempfile.TemporaryDirectory(prefix="rn_rel_cli_") if out is None else None
    out_dir = Path(out or own.name) / "run"
    cmd = [sys.executable, "-m", "ray_nasrank", "search", "--out", str(out_dir), "--budget", str(budget),
           "--concurrency", str(concurrency), "--address", address, *TINY_SEARCH_ARGS]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled", "TQDM_DISABLE": "1"}
    session = _session_dir()
    snapshots: list[dict[str, float]] = []
    runs = []
    try:
        with log.case(f"search budget {budget}: Ctrl-C at {stops}, re-run on --out", timeout_s=None) as c:
            for stop in stops + [None]:
                already = len(finished_trials(out_dir))
                if stop is not None and already >= stop:
                    continue  # trials finishing together passed this mark too
                rc, tail, interrupted = _run_until(cmd, out_dir, stop, run_timeout_s, env, session)
                runs.append({"stop_at": stop, "rc": rc, "interrupted": interrupted,
                             "finished": len(finished_trials(out_dir))})
                if stop is not None:
                    c.check(interrupted, f"the run ended before {stop} trials finished (rc {rc}): {tail[-300:]}")
                    # 130: stopped by the Ctrl-C; 0: every trial had finished before it landed
                    # (Tune syncs result files with a lag, so the watcher may see them late)
                    c.check(rc in (0, 130), f"interrupted run exited {rc}: {tail[-300:]}")
                    snapshots.append(finished_trials(out_dir))
                    if rc == 0:
                        break
                else:
                    c.check(rc == 0, f"the final run exited {rc}: {tail[-500:]}")
            c.check(any(r["rc"] == 130 for r in runs), f"no run was actually stopped by Ctrl-C: {runs}")
            res = pd.read_parquet(out_dir / "results.parquet")
            c.check(len(res) == budget, f"results.parquet has {len(res)} rows for a budget of {budget}")
            nan = res[res["valid_acc"].isna()]
            c.check(nan.empty, f"{len(nan)} result(s) without valid_acc: "
                               + "; ".join(f"{r.trial_id} error={r.error!r}" for r in nan.itertuples()))
            space = NB201Space()
            keys = {space.iso_key(a) for a in res["arch"]}
            c.check(len(keys) == len(res), f"{len(res) - len(keys)} iso-duplicate arch(s)")
            final = finished_trials(out_dir)
            by_trial = dict(zip(res["trial_id"], res["valid_acc"]))
            for snap in snapshots:
                for folder, acc in snap.items():
                    c.check(final.get(folder) == acc, f"trial {folder} lost or changed after a re-run")
                    tid = next((t for t in by_trial if f"_{t}_" in folder), None)
                    c.check(tid is not None and abs(by_trial[tid] - acc) < 1e-9,
                            f"finished trial {folder} missing from results.parquet or changed")
            rc, tail, _ = _run_until(cmd, out_dir, None, run_timeout_s, env)
            c.check(rc == 0, f"re-run on the finished folder exited {rc}: {tail[-300:]}")
            c.check(len(pd.read_parquet(out_dir / "results.parquet")) == budget, "re-run changed the results")
    finally:
        if own is not None:
            own.cleanup()
    log.details.update({"budget": budget, "interrupt_at": stops, "runs": runs})
    return log.result()
