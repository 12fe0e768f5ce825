"""NASRankSearcher under Tune's schedulers: every intermediate result is a curve point, and a trial
a scheduler stopped early stays a partial observation, never a final result."""

from __future__ import annotations

import math
import re
import warnings

import pytest

pytest.importorskip("ray.tune")

from ray import tune  # noqa: E402
from ray.tune.schedulers import (  # noqa: E402
    ASHAScheduler,
    HyperBandForBOHB,
    HyperBandScheduler,
    MedianStoppingRule,
)

from ray_nasrank.integrations.tune import NASRankSearcher  # noqa: E402

SPACE = {"k": tune.choice([1, 3, 5, 7]), "w": tune.choice([8, 16, 32, 64])}
EPOCHS = 4


def _curve(config: dict, epoch: int) -> float:
    """A learning curve: wider nets start slower, larger kernels end higher."""
    final = config["k"] * 10 + config["w"] / 8
    return final * (1 - math.exp(-epoch * 8 / config["w"]))


def _searcher(**kw) -> NASRankSearcher:
    kw.setdefault("strategy", "random")
    s = NASRankSearcher(metric="acc", mode="max", seed=0, **kw)
    assert s.set_search_properties(None, None, SPACE, num_samples=100)
    s.wait_until_ready(timeout_s=60)
    return s


# ---------------------------------------------------------------- direct calls (no Ray instance)
def test_intermediate_results_are_a_curve_and_an_early_stop_stays_partial():
    s = _searcher(max_fidelity=EPOCHS)
    a, b = s.suggest("a"), s.suggest("b")
    for epoch in (1, 2):
        s.on_trial_result("a", {"acc": _curve(a, epoch), "training_iteration": epoch})
    # a scheduler's STOP skips on_trial_result: the last result only arrives with the completion
    s.on_trial_complete("a", {"acc": _curve(a, 3), "training_iteration": 3})
    for epoch in range(1, EPOCHS + 1):
        s.on_trial_result("b", {"acc": _curve(b, epoch), "training_iteration": epoch})
    s.on_trial_complete("b", {"acc": _curve(b, EPOCHS), "training_iteration": EPOCHS})
    rec_a = s.strategy.record((a["k"], a["w"]))
    assert rec_a["status"] == "partial" and rec_a["fidelity"] == 3.0
    assert [f for f, _ in rec_a["curve"]] == [1.0, 2.0, 3.0]
    assert s.strategy.best == ((b["k"], b["w"]), pytest.approx(_curve(b, EPOCHS)))
    assert [(c["trial_id"], c["fidelity"]) for c in s.completed] == [("a", 3.0), ("b", None)]


def test_a_stop_criterion_on_time_attr_is_the_full_fidelity():
    # Tune calls set_search_properties(metric, mode, param_space, stop=..., num_samples=...,
    # time_budget_s=...) with RunConfig(stop=...): a trial that reaches it is a full result
    s = NASRankSearcher(metric="acc", mode="max", seed=0, strategy="random")
    assert s.set_search_properties(None, None, SPACE, stop={"training_iteration": EPOCHS}, num_samples=10,
                                   time_budget_s=None)
    s.wait_until_ready(timeout_s=60)
    assert s.strategy.max_fidelity == EPOCHS
    a, b = s.suggest("a"), s.suggest("b")
    s.on_trial_complete("a", {"acc": _curve(a, EPOCHS), "training_iteration": EPOCHS})
    s.on_trial_complete("b", {"acc": _curve(b, 2), "training_iteration": 2})  # a scheduler stopped it
    assert s.strategy.record((a["k"], a["w"]))["status"] == "ok"
    assert s.strategy.record((b["k"], b["w"]))["status"] == "partial"
    # an explicit max_fidelity wins; a stop on another key, or a Stopper object, says nothing
    for kw, stop, want in (({"max_fidelity": 10}, {"training_iteration": EPOCHS}, 10),
                           ({}, {"epoch": EPOCHS}, None), ({}, tune.stopper.MaximumIterationStopper(EPOCHS), None)):
        s = NASRankSearcher(metric="acc", mode="max", seed=0, strategy="random", **kw)
        s.set_search_properties(None, None, SPACE, stop=stop)
        s.wait_until_ready(timeout_s=60)
        assert s.strategy.max_fidelity == want, stop


def test_a_custom_time_attr_is_the_fidelity():
    s = _searcher(time_attr="epoch", max_fidelity=10)
    cfg = s.suggest("t")
    s.on_trial_result("t", {"acc": 1.0, "epoch": 5, "training_iteration": 1})
    s.on_trial_complete("t", {"acc": 2.0, "epoch": 10, "training_iteration": 2})
    rec = s.strategy.record((cfg["k"], cfg["w"]))
    assert rec["status"] == "ok" and rec["curve"] == [[5.0, 1.0]] and rec["value"] == 2.0


@pytest.mark.parametrize("problem, results, message", [
    ("lower", [{"acc": 1.0, "training_iteration": 3}, {"acc": 2.0, "training_iteration": 2},
               {"acc": 2.5, "training_iteration": 1}],
     r"trial t reported training_iteration=2 after 3 .*dropped"),
    ("no time_attr", [{"acc": 1.0, "training_iteration": 1}, {"acc": 2.0}, {"acc": 2.5}],
     r"trial t reported a result without 'training_iteration'.*dropped"),
    ("nan", [{"acc": 1.0, "training_iteration": 1}, {"acc": math.nan, "training_iteration": 2},
             {"acc": math.inf, "training_iteration": 3}],
     r"trial t reported acc=nan at training_iteration=2, not a finite number; that result is dropped"),
])
def test_bad_intermediate_results_get_one_warning_naming_the_trial_and_are_dropped(problem, results, message):
    s = _searcher(max_fidelity=EPOCHS)
    cfg = s.suggest("t")
    with pytest.warns(UserWarning) as caught:
        for r in results:
            s.on_trial_result("t", r)
        s.on_trial_complete("t", results[-1])
    texts = [str(w.message) for w in caught]
    assert len(texts) == 1 and re.search(message, texts[0]), texts
    rec = s.strategy.record((cfg["k"], cfg["w"]))
    assert rec["curve"] == ([[3.0, 1.0]] if problem == "lower" else [[1.0, 1.0]])
    assert rec["status"] == "partial"


def test_paused_trials_free_their_concurrency_slot():
    s = _searcher()
    s.set_max_concurrency(2)
    s.suggest("a"), s.suggest("b")
    assert s.suggest("c") is None
    s.on_pause("a")
    assert s.suggest("c") is not None
    s.on_unpause("a")
    assert s.suggest("d") is None


def test_a_state_saved_before_fidelities_restores(tmp_path):
    s = _searcher()
    s.suggest("a")
    state = s.__getstate__()
    for key in ("_time_attr", "_max_fidelity", "_fidelity", "_paused", "_warned"):
        del state["state"][key]
    r = NASRankSearcher.__new__(NASRankSearcher)
    r.__setstate__(state)
    r.on_trial_result("a", {"acc": 1.0, "training_iteration": 1})
    assert r.strategy.status(r.arch_of("a")) == "partial"


# ---------------------------------------------------------------- real Tune runs with a scheduler
SCHEDULERS = {
    "asha": lambda: ASHAScheduler(max_t=EPOCHS, grace_period=1, reduction_factor=2),
    "hyperband": lambda: HyperBandScheduler(max_t=EPOCHS, reduction_factor=2),
    "median": lambda: MedianStoppingRule(time_attr="training_iteration", grace_period=1, min_samples_required=2),
    "bohb": lambda: HyperBandForBOHB(max_t=EPOCHS, reduction_factor=2),
}
# HyperBand brackets of max_t 4, eta 2 hold 4 + 3 + 3 trials: with fewer, the last bracket never fills and
# its paused trials wait for trials that never come (a Tune limitation whatever the searcher, ray#14500)


@pytest.mark.ray
@pytest.mark.parametrize("name", ["asha", *(pytest.param(n, marks=pytest.mark.slow) for n in SCHEDULERS if n != "asha")])
def test_a_tune_script_with_a_scheduler_records_partial_trials(ray_session, tmp_path, name):
    strategy = "nasrank" if name == "asha" else "random"
    kwargs = {}
    if strategy == "nasrank":
        from ray_nasrank.predictor import FineTuneConfig, PredictorConfig

        cfg = PredictorConfig(ensemble=1, hidden=8, finetune=FineTuneConfig(epochs=10))
        kwargs = {"strategy_kwargs": {"predictor": cfg}}
    searcher = NASRankSearcher(strategy=strategy, seed=0, max_fidelity=EPOCHS, **kwargs)
    epochs = EPOCHS

    class Curve(tune.Trainable):  # a Tune tutorial's class trainable: one step per epoch, checkpointed, so
        def setup(self, config):  # a paused trial (HyperBand) resumes where it stopped (local: pickled by value)
            self.final, self.w, self.epoch = config["k"] * 10 + config["w"] / 8, config["w"], 0

        def step(self):
            self.epoch += 1
            return {"acc": self.final * (1 - math.exp(-self.epoch * 8 / self.w)), "done": self.epoch >= epochs}

        def save_checkpoint(self, checkpoint_dir):
            return {"epoch": self.epoch}

        def load_checkpoint(self, checkpoint):
            self.epoch = checkpoint["epoch"]

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no bad-input warning on a well-formed run
        results = tune.Tuner(
            Curve, param_space=SPACE,
            tune_config=tune.TuneConfig(metric="acc", mode="max", search_alg=searcher, scheduler=SCHEDULERS[name](),
                                        num_samples=10 if name in ("hyperband", "bohb") else 6),
            run_config=tune.RunConfig(name=name, verbose=0, storage_path=str(tmp_path)),
        ).fit()
    assert not results.errors
    df = results.get_dataframe()
    reached = {(r["config/k"], r["config/w"]): int(r["training_iteration"]) for _, r in df.iterrows()}
    history = {h["arch"]: h for h in searcher.strategy.history}
    assert set(history) == set(reached)
    for arch, its in reached.items():
        h = history[arch]
        if its < EPOCHS:  # stopped early by the scheduler: a curve, never a final result
            assert h["status"] == "partial" and h["fidelity"] == its
            assert h["curve"][-1] == [float(its), pytest.approx(_curve(dict(k=arch[0], w=arch[1]), its))]
        else:
            assert h["status"] == "ok" and len(h["curve"]) == EPOCHS - 1
    if name == "asha":
        assert min(reached.values()) < EPOCHS  # the scheduler did stop some trials early
    best_arch, best = searcher.strategy.best
    assert reached[best_arch] == EPOCHS
    assert best == pytest.approx(max(_curve(dict(k=a[0], w=a[1]), EPOCHS) for a, its in reached.items() if its == EPOCHS))
