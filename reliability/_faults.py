"""Faults: failing trials, a killed supernet actor, a removed node, unwritable output, kills
mid-write.

Every scenario injects the fault into a real run and checks that the search *completes* with
its budget, records what failed as failed, never re-proposes a failed architecture, and that no
file is left truncated.

>>> from reliability import atomic_write_kill
>>> atomic_write_kill(kills=2).failures
0
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import types
import uuid
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ._core import CaseLog, ScenarioResult

#: fault injected per arch by :func:`fault_of`: a table index modulo 6 picks one
FAULTS = ("raise", "nan", "inf", "ok", "ok", "ok")


def fault_of(bench: Any, arch: Any) -> str:
    """Deterministic fault of ``arch``: a third of the table raises or reports NaN/inf."""
    return FAULTS[bench.index(arch) % len(FAULTS)]


def faulty_table_trainable(config: dict, bench: Any, sleep_s: float = 0.0) -> None:
    """Tune trainable: the table lookup, except that some archs raise or report NaN/inf."""
    from ray import tune

    arch = bench.space.validate(config)
    if sleep_s:
        time.sleep(sleep_s)
    fault = fault_of(bench, arch)
    if fault == "raise":
        raise RuntimeError(f"injected training failure for {bench.space.to_string(arch)}")
    value = {"nan": float("nan"), "inf": float("inf")}.get(fault, bench.lookup(arch))
    tune.report({bench.target_name: value, "arch": bench.space.to_string(arch)})


@contextlib.contextmanager
def shipped_by_value(module: types.ModuleType) -> Iterator[None]:
    """Let Ray pickle ``module``'s functions and classes by value inside the block only.

    The registration is global to the process: left in place, it made every later scenario
    pickle this harness by value, module globals included; ``faults_node``'s callback then
    carried a ``threading.Event`` into ``tuner.pkl`` and failed with ``cannot pickle
    '_thread.lock' object``. A module that was already registered stays registered.
    """
    from ray import cloudpickle

    added = module.__name__ not in cloudpickle.list_registry_pickle_by_value()
    if added:
        cloudpickle.register_pickle_by_value(module)
    try:
        yield
    finally:
        if added and module.__name__ in cloudpickle.list_registry_pickle_by_value():
            cloudpickle.unregister_pickle_by_value(module)


# ====================================================================== failing trials
def asktell_trial_faults(budget: int = 300, batch: int = 8, strategies: tuple[str, ...] = ("random", "rea"),
                         seed: int = 0) -> ScenarioResult:
    """Ask/tell loops where a third of the trials fail (None, NaN, +-inf): recorded, never re-asked."""
    from ray_nasrank.search import make_strategy

    from ._interrupt import reliability_bench

    log = CaseLog("faults_trials_asktell")
    bench = reliability_bench(use_shared=False)
    space = bench.space
    bad_values = {"raise": None, "nan": float("nan"), "inf": float("inf")}
    for name in strategies:
        s = make_strategy(name, space, seed=seed, candidates=bench.archs)
        told = 0
        while told < budget:
            archs = s.ask(min(batch, budget - told))
            for a in archs:
                f = fault_of(bench, a)
                value = bad_values[f] if f != "ok" else bench.lookup(a)
                if f == "inf" and bench.index(a) % 2:
                    value = -value  # -inf too
                with log.case(f"{name}: tell {space.to_string(a)} = {value!r}") as c:
                    s.tell(a, value)
                    status = s.status(a)
                    c.check(status == ("ok" if f == "ok" else "failed"), f"status {status!r} for fault {f!r}")
                told += 1
        with log.case(f"{name}: history after {budget} trials") as c:
            hist = s.history
            keys = [space.iso_key(h["arch"]) for h in hist]
            c.check(len(hist) == budget, f"{len(hist)} trials for a budget of {budget}")
            c.check(len(set(keys)) == len(keys), "a failed arch (or an iso twin) was proposed again")
            n_failed = sum(h["status"] == "failed" for h in hist)
            c.check(n_failed > 0 and all(h["value"] is None for h in hist if h["status"] == "failed"),
                    "failed trials kept a value or none failed")
            c.check(s.best is not None and np.isfinite(s.best[1]), "best is not a finite successful value")
    log.details.update({"budget": budget, "strategies": list(strategies), "fault_mix": list(FAULTS)})
    return log.result()


def tune_trial_faults(budget: int = 12, concurrency: int = 2, strategy: str = "rea", seed: int = 0,
                      storage: str | None = None) -> ScenarioResult:
    """A Tune run whose trials raise or report NaN/inf: the run completes its budget and the
    searcher records those archs as failed and proposes others. Needs a running Ray."""
    import warnings

    from ray import tune

    from ray_nasrank.integrations.tune import NASRankSearcher

    from ._interrupt import reliability_bench

    log = CaseLog("faults_trials_tune")
    bench = reliability_bench(use_shared=False)
    with tempfile.TemporaryDirectory(prefix="rn_rel_faults_") as tmp, \
            log.case(f"tune {strategy}: {budget} trials, a third failing", timeout_s=300) as c:
        # one arch of each fault first, so every fault kind is exercised whatever the proposals
        first = [next(a for a in bench.archs if fault_of(bench, a) == f) for f in ("raise", "nan", "inf")]
        searcher = NASRankSearcher(bench.space, strategy=strategy, metric=bench.target_name, mode=bench.mode, seed=seed,
                                   points_to_evaluate=first,
                                   strategy_kwargs={"candidates": bench.archs, "population": 4, "sample_size": 2}
                                   if strategy == "rea" else {"candidates": bench.archs})
        # Ray workers may not have the repository root on their path: ship this harness's
        # trainable by value instead of by module name, for this run only
        with shipped_by_value(sys.modules[__package__]), warnings.catch_warnings():
            trainable = tune.with_parameters(faulty_table_trainable, bench=bench, sleep_s=0.0)
            warnings.simplefilter("ignore")  # the searcher warns once per failed trial
            results = tune.Tuner(
                trainable, param_space=bench.space.to_tune(),
                tune_config=tune.TuneConfig(search_alg=searcher, num_samples=budget,
                                            max_concurrent_trials=concurrency, reuse_actors=True),
                run_config=tune.RunConfig(name="faults", storage_path=storage or tmp, verbose=0),
            ).fit()
        hist = searcher.strategy.history
        c.check(len(results) == budget, f"{len(results)} trials for a budget of {budget}")
        c.check(len(hist) == budget, f"the searcher recorded {len(hist)} of {budget} trials")
        keys = [bench.space.iso_key(h["arch"]) for h in hist]
        c.check(len(set(keys)) == len(keys), "an arch (or an iso twin) was run twice")
        # without a max_fidelity, a trial that reached the highest training_iteration reported is
        # a full result even while its status reads "partial" (the strategy's fidelity rule)
        top = searcher.strategy.full_fidelity

        def outcome(h: dict) -> str:
            full = h["status"] == "partial" and top is not None and h["fidelity"] >= top
            return "ok" if full else h["status"]

        expected = {h["arch"]: ("ok" if fault_of(bench, h["arch"]) == "ok" else "failed") for h in hist}
        wrong = [bench.space.to_string(h["arch"]) for h in hist if outcome(h) != expected[h["arch"]]]
        c.check(not wrong, f"{len(wrong)} trial(s) with the wrong status, e.g. {wrong[:1]}")
        n_raise = sum(fault_of(bench, h["arch"]) == "raise" for h in hist)
        c.check(len(results.errors) == n_raise, f"{len(results.errors)} errored trials, {n_raise} raised")
        c.check(n_raise + sum(fault_of(bench, h["arch"]) in ("nan", "inf") for h in hist) > 0,
                "no fault was injected (the scenario tested nothing)")
        log.details.update({"failed": sum(h["status"] == "failed" for h in hist), "errored": len(results.errors)})
    log.details.update({"budget": budget, "concurrency": concurrency, "strategy": strategy})
    return log.result()


# ====================================================================== supernet actor
def _labels_frame(bench: Any, archs: list) -> Any:
    import pandas as pd

    # a weak label correlated with the target, as a trained supernet would give
    rng = np.random.default_rng(0)
    return pd.DataFrame({"arch": [bench.space.to_string(a) for a in archs],
                         "weak_acc": [bench.lookup(a) + rng.normal(0, 1) for a in archs]})


def supernet_actor_kill(pool_size: int = 48, budget: int = 6, kill_races: int = 6, seed: int = 0,
                        storage: str | None = None) -> ScenarioResult:
    """Kill the supernet actor: before the searcher asks it (fallback to zero-cost proxies),
    while it answers (fallback, not a crash), and with ``max_restarts`` (it comes back and
    serves the same labels). Each Tune search must complete its budget. Needs a running Ray."""
    import ray
    from ray import tune

    from ray_nasrank.integrations.tune import NASRankSearcher, SupernetActor, make_table_trainable
    from ray_nasrank.integrations.tune._weak import ActorWeakFn, proxy_weak_fn

    from ._interrupt import reliability_bench

    log = CaseLog("faults_supernet_actor")
    bench = reliability_bench(use_shared=False)
    rng = np.random.default_rng(seed)
    pool = [bench.archs[int(i)] for i in rng.choice(len(bench.archs), size=pool_size, replace=False)]
    labels = _labels_frame(bench, pool)
    fallback = proxy_weak_fn(bench.space)
    ns = "ray_nasrank_reliability"

    def actor(restarts: int = 0):
        return SupernetActor.options(name=f"rel-supernet-{uuid.uuid4().hex[:8]}", namespace=ns, num_cpus=0,
                                     max_restarts=restarts).remote(labels=labels)

    # 1. killed with no restart before the search asks: zero-cost fallback, search completes
    with tempfile.TemporaryDirectory(prefix="rn_rel_actor_") as tmp:
        with log.case("actor killed before the searcher asks it: fallback to zero-cost labels", timeout_s=300) as c:
            a = actor()
            c.check(ray.get(a.ready.remote(), timeout=60), "actor never became ready")
            ray.kill(a, no_restart=True)
            searcher = NASRankSearcher(bench.space, strategy="nasrank", metric=bench.target_name, mode=bench.mode, seed=seed,
                                       weak_source=a, strategy_kwargs={"candidates": pool, "batch_size": 2})
            results = tune.Tuner(
                make_table_trainable(bench), param_space=bench.space.to_tune(),
                tune_config=tune.TuneConfig(search_alg=searcher, num_samples=budget, max_concurrent_trials=2,
                                            reuse_actors=True),
                run_config=tune.RunConfig(name="actor_dead", storage_path=storage or tmp, verbose=0),
            ).fit()
            c.check(len(results) == budget and not results.errors, f"{len(results)} trials, {len(results.errors)} errors")
            used = searcher._strategy_kwargs  # the fallback decision is recorded on the weak function
            c.check(used is not None, "searcher lost its configuration")
            c.check(len(searcher.strategy.history) == budget, "the searcher did not record the whole budget")

    # 2. killed at random moments while answering: the weak function falls back, never raises
    sources: dict[str, int] = {}
    for i in range(kill_races):
        with log.case(f"actor killed {i} ms into a weak-label request", timeout_s=120) as c:
            a = actor()
            ray.get(a.ready.remote(), timeout=60)
            fn = ActorWeakFn(a, fallback)
            delay = float(rng.uniform(0.0, 0.05)) if i else 0.0
            killer = threading.Timer(delay, lambda h=a: ray.kill(h, no_restart=True))
            killer.start()
            out = fn(pool[:8])
            killer.join()
            c.check(fn.used in ("actor", "fallback"), f"unknown source {fn.used!r}")
            sources[fn.used] = sources.get(fn.used, 0) + 1
            (vals,) = out.values()
            c.check(len(vals) == 8 and np.all(np.isfinite(vals)), "weak labels missing or not finite")

    # 3. killed with a restart allowed: the actor comes back and serves the same labels
    with log.case("actor killed with max_restarts=1: restarted, same labels", timeout_s=180) as c:
        a = actor(restarts=1)
        before = ray.get(a.weak_labels.remote(pool[:5]), timeout=60)
        ray.kill(a, no_restart=False)
        deadline = time.monotonic() + 90
        after = None
        while time.monotonic() < deadline:
            try:
                if ray.get(a.ready.remote(), timeout=30):
                    after = ray.get(a.weak_labels.remote(pool[:5]), timeout=30)
                    break
            except ray.exceptions.RayActorError:
                time.sleep(0.5)
        c.check(after is not None and np.allclose(before, after), f"restarted actor answered {after!r}, not {before!r}")
        fn = ActorWeakFn(a, None)
        fn(pool[:3])
        c.check(fn.used == "actor", "the restarted actor was not used")
        ray.kill(a, no_restart=True)
    log.details.update({"pool": pool_size, "budget": budget, "kill_races": kill_races, "race_answered_by": sources,
                        "fallback": "zero-cost proxy 'params'"})
    return log.result()


# ====================================================================== node removal
def _removal_callback(event: threading.Event, after: int):
    from ray import tune

    class RemoveNodeAfter(tune.Callback):
        """Sets ``event`` after ``after`` completed trials.

        Tune pickles its callbacks into the experiment's ``tuner.pkl`` when the Tuner is built
        and runs this very object; the event (it holds a lock, which cannot be pickled) is left
        out of the pickle, so a copy restored from it signals nothing.
        """

        def __init__(self, event: threading.Event | None, after: int) -> None:
            # arguments, not a closure: a closure would put the event in the pickled class
            self.event, self.after, self.done = event, after, 0

        def __getstate__(self) -> dict:
            return {**self.__dict__, "event": None}

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.done += 1
            if self.done >= self.after and self.event is not None:
                self.event.set()

    return RemoveNodeAfter(event, after)


def node_removal(cluster: Any, budget: int = 10, remove_after: int = 3, seed: int = 0,
                 storage: str | None = None) -> ScenarioResult:
    """Remove a worker node of a ``ray.cluster_utils.Cluster`` mid-search: trials there are
    retried elsewhere (``FailureConfig(max_failures=2)``) and the search completes its budget."""
    import ray
    from ray import tune

    from ray_nasrank.integrations.tune import NASRankSearcher, make_table_trainable

    from ._interrupt import reliability_bench

    log = CaseLog("faults_node_removal")
    bench = reliability_bench(use_shared=False)
    with tempfile.TemporaryDirectory(prefix="rn_rel_node_") as tmp, \
            log.case(f"worker node removed after {remove_after} of {budget} trials", timeout_s=400) as c:
        worker = cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        ev = threading.Event()
        removed: dict[str, Any] = {}

        def remover() -> None:
            if ev.wait(timeout=300):
                removed["alive_before"] = sum(n["Alive"] for n in ray.nodes())
                cluster.remove_node(worker)
                removed["at"] = time.time()

        th = threading.Thread(target=remover, daemon=True)
        th.start()
        try:
            searcher = NASRankSearcher(bench.space, strategy="random", metric=bench.target_name, mode=bench.mode, seed=seed,
                                       strategy_kwargs={"candidates": bench.archs})
            results = tune.Tuner(
                tune.with_resources(make_table_trainable(bench, sleep_s=1.5), {"cpu": 1}),
                param_space=bench.space.to_tune(),
                tune_config=tune.TuneConfig(search_alg=searcher, num_samples=budget, max_concurrent_trials=3),
                run_config=tune.RunConfig(name="node_removal", storage_path=storage or tmp, verbose=0,
                                          callbacks=[_removal_callback(ev, remove_after)],
                                          failure_config=tune.FailureConfig(max_failures=2)),
            ).fit()
        finally:
            ev.set()
            th.join(timeout=120)
            if worker in cluster.worker_nodes:
                cluster.remove_node(worker)
        df = results.get_dataframe()
        c.check("at" in removed, "the worker node was never removed")
        c.check(len(results) == budget, f"{len(results)} trials for a budget of {budget}")
        c.check(not results.errors, f"{len(results.errors)} trials errored despite retries")
        c.check(df["arch"].nunique() == budget, "an arch ran twice")
        nodes = set(df["node_id"]) if "node_id" in df else set()
        c.check(len(nodes) >= 1, "no node id reported")
        log.details.update({"nodes_used": len(nodes), "trials_finished_after_removal":
                            int((df["finished_at"] > removed.get("at", float("inf"))).sum())})
        c.check(log.details["trials_finished_after_removal"] > 0, "no trial ran after the node was removed")
    log.details.update({"budget": budget, "remove_after": remove_after})
    return log.result()


# ====================================================================== unwritable output
def unwritable_output() -> ScenarioResult:
    """A read-only, not-a-directory or full output location fails at once with a clear error."""
    from ray_nasrank._io import check_writable_dir, os_free_bytes

    log = CaseLog("faults_unwritable_output")
    with tempfile.TemporaryDirectory(prefix="rn_rel_out_") as tmp:
        a_file = Path(tmp) / "a_file"
        a_file.write_text("x")
        ro_candidates = [Path("/proc/rn_nasrank_out"), Path("/sys/rn_nasrank_out")]
        cases: list[tuple[str, Path, dict, type]] = [
            ("output path is a file", a_file, {}, OSError),
            ("output under a file", a_file / "sub", {}, PermissionError),
        ]
        cases += [(f"read-only file system {p.parent}", p, {}, PermissionError) for p in ro_candidates if p.parent.exists()]
        free = os_free_bytes(Path(tmp)) or 0
        cases.append(("disk full (less free space than required)", Path(tmp) / "out", {"min_free_bytes": free + 2**40}, OSError))
        ro = Path(tmp) / "readonly"
        ro.mkdir()
        os.chmod(ro, 0o500)
        if os.geteuid() != 0:  # root ignores permission bits
            cases.append(("directory without write permission", ro / "out", {}, PermissionError))
        for label, path, kw, exc in cases:
            with log.case(label, timeout_s=10) as c:
                t0 = time.perf_counter()
                try:
                    check_writable_dir(path, **kw)
                    c.check(False, f"{path} was accepted")
                except exc as e:
                    c.check(str(path) in str(e), f"message {e} does not name {path}")
                c.check(time.perf_counter() - t0 < 5, "the check was slow")
        os.chmod(ro, 0o700)
    log.details["checks"] = [c[0] for c in cases]
    return log.result()


# ====================================================================== kill mid-write
_WRITER = textwrap.dedent("""
    import sys, pickle
    from ray_nasrank._io import atomic_write_json, atomic_write_bytes
    from ray_nasrank.search import make_strategy
    from ray_nasrank.spaces import NB201Space
    path, kind = sys.argv[1], sys.argv[2]
    big = [{"i": i, "payload": "x" * 200} for i in range(20000)]
    s = make_strategy("random", NB201Space(), seed=0)
    for a in s.ask(50):
        s.tell(a, 1.0)
    print("ready", flush=True)
    k = 0
    while True:
        k += 1
        if kind == "json":
            atomic_write_json(path, {"k": k, "rows": big})
        elif kind == "strategy":
            s.save(path)
        else:  # naive write, to prove the check can see truncation
            with open(path, "w") as f:
                import json
                json.dump({"k": k, "rows": big}, f)
""")


def _intact(path: Path, kind: str) -> tuple[bool, str]:
    if not path.exists():
        return True, "not written yet"
    try:
        if kind == "strategy":
            from ray_nasrank.search import Strategy

            s = Strategy.from_file(path)
            return len(s.history) == 50, f"{len(s.history)} told"
        data = json.loads(path.read_text())
        return len(data["rows"]) == 20000, f"k={data['k']}"
    except Exception as e:  # noqa: BLE001 - any unreadable file is the failure we look for
        return False, f"{type(e).__name__}: {str(e)[:100]}"


def atomic_write_kill(kills: int = 12, kinds: tuple[str, ...] = ("json", "strategy"), seed: int = 0,
                      control: bool = False) -> ScenarioResult:
    """SIGKILL a process that keeps rewriting a results file / a strategy checkpoint at a random
    moment: the file on disk is always the last complete version. ``control=True`` also runs a
    naive writer and reports how often *it* left a truncated file (evidence the check works)."""
    log = CaseLog("faults_atomic_writes")
    rnd = random.Random(seed)
    truncated_naive = 0
    naive_runs = 0
    with tempfile.TemporaryDirectory(prefix="rn_rel_kill_") as tmp:
        script = Path(tmp) / "writer.py"
        script.write_text(_WRITER)
        plan = [(k, False) for k in kinds for _ in range(kills)] + ([("naive", True)] * kills if control else [])
        for i, (kind, is_control) in enumerate(plan):
            target = Path(tmp) / f"out_{i}.{ 'pkl' if kind == 'strategy' else 'json'}"
            proc = subprocess.Popen([sys.executable, str(script), str(target), kind],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            try:
                proc.stdout.readline()  # "ready"
                time.sleep(rnd.uniform(0.05, 0.6))
            finally:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
            ok, info = _intact(target, kind)
            if is_control:
                naive_runs += 1
                truncated_naive += not ok
                continue
            with log.case(f"{kind} writer killed (run {i})") as c:
                c.check(ok, f"{target.name} is corrupt after SIGKILL: {info}")
        leftovers = [p.name for p in Path(tmp).glob(".*.tmp")]
    log.details.update({"kills_per_kind": kills, "kinds": list(kinds),
                        "leftover_temp_files": len(leftovers)})
    if control:
        log.details["naive_writer_truncated"] = f"{truncated_naive}/{naive_runs}"
    return log.result()
