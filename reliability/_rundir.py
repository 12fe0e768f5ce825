"""The run folder as an adversary and a careless user meet it (issue 22).

- :func:`state_payloads`: a pickle payload (a harmless marker-file writer) planted where the
  ranker, a strategy or the Tune searcher state is read; none may run.
- :func:`run_dir_payloads`: the same payload planted in turn in every file ``ray-nasrank search``
  reads from ``--out``, in a finished folder and in one stopped before the Tune steps ended; the
  re-run must finish with the reference result or stop with one line naming the file, and the
  payload must never run.
- :func:`run_dir_truncation`: every artefact (Tune's own records included) truncated in turn, at
  every step the run can stop after; the re-run recomputes it (a consistent result) or names
  the file and the remedy; never a traceback, never "interrupted".
- :func:`concurrent_runs`: two searches on one ``--out``, started together and a few seconds
  apart: one trains, the other is refused at once naming the first's pid.
- :func:`prechecks`: a family with the wrong number of logits, too little data for a batch (the
  default space and a ``--space`` family alike), a budget larger than the space: each refused
  before any training with one line.
- :func:`optuna_non_finite`: an Optuna objective returning ``inf`` is recorded as failed, with a
  warning, as the Tune searcher does.

The searches run in this process through the command line's ``main`` (its one-line errors and
its exit codes, a traceback surfaces as an exception), on the Ray cluster at ``address``.

>>> optuna_non_finite(trials=6).failures
0
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Iterator, Sequence

from ._cli_resume import TINY_SEARCH_ARGS
from ._core import CaseLog, ScenarioResult

#: the tiny search every scenario resumes (digits, 2 finalists, no random arm)
BUDGET = 2


class Payload:
    """What an attacker plants: unpickling it creates ``marker`` (harmless, but proof it ran)."""

    def __init__(self, marker: str | os.PathLike) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def plant(path: Path, marker: Path) -> None:
    """Replace ``path`` by a pickle payload: a torch checkpoint for ``.pt`` files, a bare pickle otherwise."""
    if path.suffix == ".pt":
        import torch

        torch.save({"format": Payload(marker), "state_dict": Payload(marker)}, path)
    else:
        path.write_bytes(pickle.dumps({"state": Payload(marker)}))


def search(out: Path, address: str | None, *extra: str) -> tuple[int, str, str]:
    """``ray-nasrank search`` on ``out`` in this process: (exit code, stdout, stderr).
    An exception escaping ``main`` (what a user would see as a traceback) propagates."""
    from ray_nasrank.cli import main

    args = ["search", "--out", str(out), "--budget", str(BUDGET), "--concurrency", "2", *TINY_SEARCH_ARGS, *extra]
    if address:
        args += ["--address", address]
    o, e = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e), warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        rc = main(args)
    # the warnings a user sees on stderr (recorded here: a test runner may hold the default hook)
    shown = "".join(f"{w.category.__name__}: {w.message}\n" for w in said)
    return rc, o.getvalue(), shown + e.getvalue()


def consistent(out: Path, space_name: str = "nb201") -> str | None:
    """``None`` when ``out`` holds a finished run whose tables agree with each other and with its
    manifest, else what is wrong."""
    import numpy as np
    import pandas as pd

    from ray_nasrank.pipeline import ARTEFACTS
    from ray_nasrank.pipeline._rundir import Manifest
    from ray_nasrank.spaces import NB201Space

    try:
        res = pd.read_parquet(out / ARTEFACTS["results"])
        best = json.loads((out / ARTEFACTS["best"]).read_text())
        final = pd.read_parquet(out / ARTEFACTS["final"])
    except Exception as e:  # noqa: BLE001 - any unreadable table is the finding
        return f"unreadable tables: {type(e).__name__}: {e}"
    if len(res) != BUDGET:
        return f"results.parquet has {len(res)} rows for a budget of {BUDGET}"
    if not np.isfinite(res["valid_acc"].to_numpy(dtype=float)).all():
        return "a result without a finite valid_acc"
    if space_name == "nb201" and len({NB201Space().iso_key(a) for a in res["arch"]}) != len(res):
        return "iso-duplicate architectures"
    if not np.isfinite(final[["valid_acc", "test_acc"]].to_numpy(dtype=float)).all() or final["error"].notna().any():
        return f"the full-fidelity retraining has no accuracy or an error: {final.to_dict('records')}"
    top = str(res.loc[res["valid_acc"].idxmax(), "arch"])
    if best.get("arch") != top or str(final.loc[final["arm"] == "nasrank", "arch"].iloc[0]) != top:
        return f"best.json/final.parquet name {best.get('arch')!r}, the results' best is {top!r}"
    m = Manifest.open(out, ARTEFACTS)
    bad = {n: m.problem(n) for n in ARTEFACTS.values() if "." in n and m.problem(n)}
    return f"artefacts differ from the manifest: {bad}" if bad else None


def _one_line_naming(err: str, name: str) -> str | None:
    lines = [ln for ln in err.splitlines() if ln.startswith("ray-nasrank: error") or ln.startswith("error:")]
    if "Traceback" in err:
        return f"a traceback: {err[-400:]}"
    if len(lines) != 1:
        return f"expected one error line, got {len(lines)}: {err[-400:]}"
    if name not in lines[0]:
        return f"the error does not name {name!r}: {lines[0][:300]}"
    return None


def _stopped_before(out: Path, step: str) -> None:
    """Make the finished folder ``out`` look like a run stopped after ``step`` (the later
    artefacts removed and forgotten by the manifest, as if never written); ``final``: finished."""
    from ray_nasrank.pipeline import ARTEFACTS
    from ray_nasrank.pipeline._rundir import Manifest

    order = ["data", "weak_labels", "ranker", "tune", "final"]
    later = {"data": ["supernet", "weak_labels", "ranker", "tune", "tune_random", "tune_final"],
             "weak_labels": ["ranker", "tune", "tune_random", "tune_final"],
             "ranker": ["tune", "tune_random", "tune_final"], "tune": ["tune_final"], "final": []}[step]
    assert step in order
    gone = later + ([] if step == "final" else ["results", "random", "final", "best", "report"])
    m = Manifest.open(out, ARTEFACTS)
    for key in gone:
        p = out / ARTEFACTS[key]
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    m.forget(*(ARTEFACTS[k] for k in gone))
    m.entries = {k: v for k, v in m.entries.items() if k.split("/")[0] not in {ARTEFACTS[g] for g in gone}}
    m.save()


def _read_files(out: Path) -> list[Path]:
    """Every file a resumed search reads from ``out``: the artefacts, the manifest, and the
    records of the Tune experiments (``tuner.pkl``, trial ``params.pkl``, the state files)."""
    from ray_nasrank.pipeline import ARTEFACTS
    from ray_nasrank.pipeline._rundir import MANIFEST_FILE, _ray_pickles

    files = [out / v for v in ARTEFACTS.values() if "." in v and (out / v).is_file()] + [out / MANIFEST_FILE]
    for exp in ("tune", "tune_random", "tune_final"):
        files += _ray_pickles(out / ARTEFACTS[exp])  # Tune's records (pickles that Ray reads) and the searcher's
    return files


def _reference(address: str | None, root: Path) -> Path:
    """The finished tiny search the cases start from (reused when ``root`` holds one)."""
    ref = root / "reference"
    if (ref / "best.json").is_file() and consistent(ref) is None:
        return ref
    rc, _, err = search(ref, address)
    if rc != 0 or consistent(ref):
        raise RuntimeError(f"the reference search failed (rc {rc}): {consistent(ref) or err[-500:]}")
    return ref


def state_payloads() -> ScenarioResult:
    """A payload where the ranker, each strategy and the Tune searcher state are read."""
    import torch

    from ray_nasrank.predictor import RankPredictor
    from ray_nasrank.search import Strategy, make_strategy
    from ray_nasrank.spaces import NB201Space

    log = CaseLog("security_state_files")
    with tempfile.TemporaryDirectory(prefix="rn_rel_sec_") as tmp:
        marker = Path(tmp) / "payload-ran"
        ranker = Path(tmp) / "ranker.pt"
        torch.save({"format": Payload(marker)}, ranker)
        with log.case("RankPredictor.load of a planted torch pickle") as c:
            try:
                RankPredictor.load(ranker)
                c.check(False, "loaded")
            except ValueError as e:
                c.check("ranker.pt" in str(e), f"the error does not name the file: {e}")
            c.check(not marker.exists(), "the payload ran")
        state = Path(tmp) / "state.npz"
        state.write_bytes(pickle.dumps({"class": "ray_nasrank.search._random:RandomStrategy", "s": Payload(marker)}))
        for label, load in (("Strategy.from_file", lambda: Strategy.from_file(state)),
                            ("RandomStrategy.load", lambda: make_strategy("random", NB201Space(), seed=0).load(state))):
            with log.case(f"{label} of a planted pickle") as c:
                try:
                    load()
                    c.check(False, "loaded")
                except ValueError as e:
                    c.check("state.npz" in str(e), f"the error does not name the file: {e}")
                c.check(not marker.exists(), "the payload ran")
        with log.case("NASRankSearcher.restore of a planted pickle") as c:
            from ray_nasrank.integrations.tune import NASRankSearcher

            try:
                NASRankSearcher(strategy="random").restore(str(state))
                c.check(False, "restored")
            except ValueError as e:
                c.check("state.npz" in str(e), f"the error does not name the file: {e}")
            c.check(not marker.exists(), "the payload ran")
    return log.result()


def _stopped_folders(address: str | None, root: Path, workdir: str | os.PathLike | None,
                     states: Sequence[str]) -> Iterator[tuple[str, Path, Path]]:
    """``(state, file, folder)`` for every file a resumed search reads, in a copy of the reference
    run stopped after each step of ``states`` (the reference is kept in ``workdir`` when given)."""
    ref = _reference(address, Path(workdir) if workdir else root)
    for state in states:
        base = root / f"base-{state}"
        shutil.copytree(ref, base)
        _stopped_before(base, state)
        for f in _read_files(base):
            yield state, f.relative_to(base), base


def _fresh_copy(base: Path, root: Path) -> Path:
    """A fresh copy of ``base`` for one case (the previous case's copy removed)."""
    out = root / "case"
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(base, out)
    return out


def _outcome(rc: int, err: str) -> str:
    """How a resumed search ended, in a few words: went on, or its exit code and last line."""
    return "went on" if rc == 0 else f"exit {rc}: " + (err.strip().splitlines() or [""])[-1][:160]


def run_dir_payloads(address: str | None, states: Sequence[str] = ("final", "tune"),
                     workdir: str | os.PathLike | None = None) -> ScenarioResult:
    """A payload planted in turn in every file a resumed search reads, in folders stopped after
    each step of ``states`` (``final``: finished). ``workdir``: where the reference run is kept
    (and reused) and the cases run (default: a temporary folder)."""
    log = CaseLog("security_run_dir")
    ran = 0
    seen: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="rn_rel_secdir_", dir=workdir) as tmp:
        root = Path(tmp)
        for state, rel, base in _stopped_folders(address, root, workdir, states):
            with log.case(f"payload in {rel} (stopped after {state})", timeout_s=600) as c:
                out = _fresh_copy(base, root)
                marker = root / "payload-ran"
                plant(out / rel, marker)
                rc, _, err = search(out, address)
                seen[f"{state}:{rel}"] = _outcome(rc, err)
                if marker.exists():
                    ran += 1
                    marker.unlink()
                    c.check(False, "the payload ran")
                if rc == 0:
                    problem = consistent(out)
                    c.check(problem is None, f"finished with a wrong result: {problem}")
                else:
                    c.check(rc == 2, f"exit {rc}: {err[-300:]}")
                    problem = _one_line_naming(err, rel.name)
                    c.check(problem is None, problem or "")
    log.details.update({"payloads_run": ran, "states": list(states), "by_file": seen})
    return log.result()


def run_dir_truncation(address: str | None,
                       states: Sequence[str] = ("data", "weak_labels", "ranker", "tune", "final"),
                       workdir: str | os.PathLike | None = None) -> ScenarioResult:
    """Every file a resumed search reads, truncated to half in turn, in folders stopped after each
    step (``workdir`` as for :func:`run_dir_payloads`)."""
    log = CaseLog("truncated_artefacts")
    outcomes: dict[str, Any] = {"recomputed": 0, "refused": 0}
    with tempfile.TemporaryDirectory(prefix="rn_rel_trunc_", dir=workdir) as tmp:
        root = Path(tmp)
        for state, rel, base in _stopped_folders(address, root, workdir, states):
            with log.case(f"{rel} truncated (stopped after {state})", timeout_s=900) as c:
                out = _fresh_copy(base, root)
                data = (out / rel).read_bytes()
                (out / rel).write_bytes(data[: len(data) // 2])
                rc, _, err = search(out, address)
                outcomes.setdefault("by_file", {})[f"{state}:{rel}"] = _outcome(rc, err)
                if rc == 0:
                    outcomes["recomputed"] += 1
                    problem = consistent(out)
                    c.check(problem is None, f"finished with a wrong result: {problem}")
                    c.check(rel.name in err or rel.parts[0].startswith("tune"),
                            f"{rel} was replaced without a word: {err[-300:]}")
                else:
                    outcomes["refused"] += 1
                    c.check(rc == 2, f"exit {rc}: {err[-300:]}")
                    problem = _one_line_naming(err, rel.name)
                    c.check(problem is None, problem or "")
                    c.check("--out" in err or "delete" in err, f"no remedy in: {err[-300:]}")
    log.details.update({"states": list(states), **outcomes})
    return log.result()


def concurrent_runs(address: str | None, delays: Sequence[float] = (0.0, 5.0),
                    timeout_s: float = 900.0) -> ScenarioResult:
    """Two searches on one fresh ``--out``, the second started ``delay`` seconds after the first."""
    log = CaseLog("concurrent_out")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled", "TQDM_DISABLE": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(Path(__file__).resolve().parents[1]),
                                                     os.environ.get("PYTHONPATH")) if p)}
    with tempfile.TemporaryDirectory(prefix="rn_rel_conc_") as tmp:
        for delay in delays:
            out = Path(tmp) / f"run-{delay:g}"
            cmd = [sys.executable, "-m", "ray_nasrank", "search", "--out", str(out), "--budget", str(BUDGET),
                   "--concurrency", "2", *TINY_SEARCH_ARGS] + (["--address", address] if address else [])
            with log.case(f"two searches on one --out, {delay:g} s apart", timeout_s=None) as c:
                procs, errs, started = [], [], []
                for i in range(2):
                    if i:
                        time.sleep(delay)
                    err = tempfile.TemporaryFile(mode="w+")
                    errs.append(err)
                    started.append(time.monotonic())
                    procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env))
                ended = [None, None]
                deadline = time.monotonic() + timeout_s
                while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
                    for i, p in enumerate(procs):
                        if ended[i] is None and p.poll() is not None:
                            ended[i] = time.monotonic()
                    time.sleep(0.2)
                for i, p in enumerate(procs):
                    if p.poll() is None:
                        p.kill()
                        p.wait()
                    if ended[i] is None:
                        ended[i] = time.monotonic()
                texts = []
                for e in errs:
                    e.seek(0)
                    texts.append(e.read())
                    e.close()
                rcs = [p.returncode for p in procs]
                c.check(sorted(rcs) == [0, 1], f"exit codes {rcs}: {[t[-300:] for t in texts]}")
                if sorted(rcs) == [0, 1]:
                    win, lose = rcs.index(0), rcs.index(1)
                    c.check(f"pid {procs[win].pid}" in texts[lose],
                            f"the refusal does not name the running search: {texts[lose][-300:]}")
                    c.check("Traceback" not in texts[lose], f"a traceback: {texts[lose][-300:]}")
                    c.check(ended[lose] - started[lose] < 60,
                            f"refused only after {ended[lose] - started[lose]:.0f} s")
                    trials = [p for p in (out / "tune").iterdir() if p.is_dir()]
                    c.check(len(trials) == BUDGET, f"{len(trials)} trial folders in tune/ for a budget of {BUDGET}")
                    c.check(consistent(out) is None, f"wrong result: {consistent(out)}")
    return log.result()


_FAMILY = '''
from torch import nn


def logits(in_channels=1, num_classes=10, extra=5):
    return {"width": [4, 8]}, lambda c: nn.Sequential(nn.Flatten(), nn.LazyLinear(c["width"]), nn.ReLU(),
                                                      nn.Linear(c["width"], num_classes + extra))


def one_logit(in_channels=1, num_classes=10):
    return {"width": [4, 8]}, lambda c: nn.Sequential(nn.Flatten(), nn.LazyLinear(c["width"]), nn.ReLU(),
                                                      nn.Linear(c["width"], 1))


def good(in_channels=1, num_classes=10):
    return {"width": [4, 8, 12]}, lambda c: nn.Sequential(nn.Flatten(), nn.LazyLinear(c["width"]), nn.ReLU(),
                                                          nn.Linear(c["width"], num_classes))
'''


def prechecks() -> ScenarioResult:
    """Input no run can finish right with, each refused before any training (no Ray is started)."""
    import numpy as np

    log = CaseLog("prechecks")
    with tempfile.TemporaryDirectory(prefix="rn_rel_pre_") as tmp:
        root = Path(tmp)
        (root / "fam.py").write_text(_FAMILY)
        rng = np.random.default_rng(0)
        for n, name in ((90, "three.npz"), (30, "thirty.npz")):
            np.savez(root / name, x=rng.random((n, 8, 8)).astype(np.float32), y=np.arange(n) % 3,
                     x_test=rng.random((12, 8, 8)).astype(np.float32), y_test=np.arange(12) % 3)
        small = ("--train-size", "0", "--valid-size", "0", "--test-size", "0", "--image-size", "0",
                 "--pool-size", "4", "--budget", "2", "--rounds", "1", "--baseline", "none", "--no-progress",
                 "--batch-size", "32")
        cases = [
            ("a family returning 8 logits for 3 classes", ["--data", str(root / "three.npz"), "--space",
                                                            f"{root / 'fam.py'}:logits", *small], "8 logits"),
            ("a family returning 1 logit for 3 classes", ["--data", str(root / "three.npz"), "--space",
                                                          f"{root / 'fam.py'}:one_logit", *small], "1 logit"),
            ("30 images, batch 32, the default space", ["--data", str(root / "thirty.npz"), *small], "batch"),
            ("30 images, batch 32, a --space family", ["--data", str(root / "thirty.npz"), "--space",
                                                       f"{root / 'fam.py'}:good", *small], "batch"),
            ("--budget 100000 --pool-size 0", ["--dataset", "digits", "--budget", "100000", "--pool-size", "0",
                                               "--no-progress"], "would take"),
        ]
        from ray_nasrank.cli import main

        for label, args, expect in cases:
            with log.case(label, timeout_s=300) as c:
                out = root / "run"
                shutil.rmtree(out, ignore_errors=True)
                o, e = io.StringIO(), io.StringIO()
                t0 = time.perf_counter()
                with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e):
                    rc = main(["search", "--out", str(out), *args])
                err = e.getvalue()
                c.check(rc == 2, f"exit {rc}: {err[-300:]}")
                c.check(expect in err, f"the error does not say {expect!r}: {err[-300:]}")
                c.check("Traceback" not in err and len(err.strip().splitlines()) == 1, f"not one line: {err[-300:]}")
                c.check(not (out / "supernet.pt").exists() and not (out / "tune").exists(), "training started")
                log.details[label] = round(time.perf_counter() - t0, 1)
    return log.result()


def optuna_non_finite(trials: int = 12) -> ScenarioResult:
    """An objective returning ``inf`` on every third trial: each such trial is recorded as failed
    with a warning, none is re-proposed, the best is a finite value."""
    import math

    import optuna

    from ray_nasrank.integrations.optuna import NASRankSampler
    from ray_nasrank.spaces import NB201Space

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    log = CaseLog("optuna_non_finite")
    space = NB201Space()
    with log.case(f"{trials} trials, every third returns inf") as c:
        study = optuna.create_study(direction="maximize", sampler=NASRankSampler(space, strategy="random", seed=0))

        def objective(trial):
            arch = space.from_config({k: trial.suggest_categorical(k, v.choices)
                                      for k, v in space.to_optuna().items()})
            return math.inf if trial.number % 3 == 0 else float(arch.count("nor_conv_3x3"))

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            study.optimize(objective, n_trials=trials)
        infs = [t.number for t in study.trials if t.values and math.isinf(t.values[0])]
        said = [w for w in caught if "not a finite number" in str(w.message)]
        c.check(len(said) == len(infs), f"{len(said)} warnings for {len(infs)} inf trials")
        hist = study.sampler.strategy.history
        c.check(sum(h["status"] == "failed" for h in hist) == len(infs), "inf trials not recorded as failed")
        c.check(study.sampler.strategy.best is not None and math.isfinite(study.sampler.strategy.best[1]),
                "the best is not finite")
        keys = [space.iso_key(h["arch"]) for h in hist]
        c.check(len(set(keys)) == len(keys), "an architecture was proposed twice")
    return log.result()


__all__ = ["Payload", "concurrent_runs", "consistent", "optuna_non_finite", "plant", "prechecks", "run_dir_payloads",
           "run_dir_truncation", "search", "state_payloads"]
