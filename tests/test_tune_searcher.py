"""NASRankSearcher driven directly through Tune's Searcher API (no Ray instance needed)."""

from __future__ import annotations

import contextlib
import logging
import math
import warnings

import pytest

pytest.importorskip("ray.tune")

from ray import tune  # noqa: E402
from ray.tune.search import Searcher  # noqa: E402

from ray_nasrank.integrations.tune import NASRankSearcher  # noqa: E402
from ray_nasrank.search import make_strategy  # noqa: E402
from ray_nasrank.spaces import OPS, CategoricalSpace, NB201Space  # noqa: E402

SMALL = {"k": tune.choice([1, 3, 5]), "w": tune.choice([8, 16]), "epochs": 3, "opt": {"lr": 0.1}}


def _value(cfg: dict) -> float:
    return cfg["k"] * 10 + cfg["w"]


def _searcher(**kw) -> NASRankSearcher:
    kw.setdefault("strategy", "random")
    kw.setdefault("seed", 0)
    s = NASRankSearcher(metric="acc", mode="max", **kw)
    return s


def _setup(s: NASRankSearcher, space=SMALL, num_samples=100) -> None:
    assert s.set_search_properties(None, None, space, num_samples=num_samples) is True


def _suggest(s: NASRankSearcher, tid: str):
    s.wait_until_ready(timeout_s=60)
    return s.suggest(tid)


def test_configs_merge_constants_and_space_is_exhausted_without_repeats():
    s = _searcher()
    _setup(s)
    seen = []
    for i in range(6):
        cfg = _suggest(s, f"t{i}")
        assert cfg["epochs"] == 3 and cfg["opt"] == {"lr": 0.1}
        seen.append((cfg["k"], cfg["w"]))
        s.on_trial_complete(f"t{i}", {"acc": _value(cfg)})
    assert len(set(seen)) == 6
    assert s.suggest("t6") == Searcher.FINISHED
    assert [c["arch"] for c in s.completed] == seen
    assert s.strategy.best == ((5, 16), 66.0)


def test_nb201_config_carries_the_arch_string():
    # NB201 is named (space=), and the Tuner's param_space may write the same cell as Tune domains
    s = _searcher(space=NB201Space())
    _setup(s, {**NB201Space().to_tune(), "epochs": 1})
    cfg = _suggest(s, "a")
    arch = NB201Space().from_config({"cell": cfg["cell"]})
    assert cfg["arch"] == NB201Space().to_string(arch)
    assert set(cfg["cell"]) == {"e1_0", "e2_0", "e2_1", "e3_0", "e3_1", "e3_2"}
    assert all(op in OPS for op in cfg["cell"].values())


def test_the_nb201_shape_alone_is_a_plain_categorical_space():
    s = _searcher()
    _setup(s, {**NB201Space().to_tune(), "epochs": 1})
    cfg = _suggest(s, "a")
    assert type(s.space) is CategoricalSpace and "arch" not in cfg and set(cfg) == {"cell", "epochs"}


def test_errors_missing_and_nonfinite_metrics_are_failures_with_a_warning():
    s = _searcher()
    _setup(s)
    cfgs = {t: _suggest(s, t) for t in ("err", "missing", "nan", "inf", "ok")}
    with pytest.warns(UserWarning, match="trial err errored"):
        s.on_trial_complete("err", None, error=True)
    with pytest.warns(UserWarning, match=r"trial missing finished without reporting metric 'acc'.*loss"):
        s.on_trial_complete("missing", {"loss": 1.0})
    with pytest.warns(UserWarning, match="trial nan reported acc=nan"):
        s.on_trial_complete("nan", {"acc": math.nan})
    with pytest.warns(UserWarning, match="trial inf reported"):
        s.on_trial_complete("inf", {"acc": math.inf})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s.on_trial_complete("ok", {"acc": 1.5})
    status = {h["arch"]: h["status"] for h in s.strategy.history}
    for t, cfg in cfgs.items():
        assert status[(cfg["k"], cfg["w"])] == ("ok" if t == "ok" else "failed")
    # failed archs are never proposed again: one arch is left in the 6-arch space
    last = _suggest(s, "next")
    assert (last["k"], last["w"]) not in {(c["k"], c["w"]) for c in cfgs.values()}
    assert s.suggest("after") is None  # 'next' is live and could still fail; nothing else to give
    s.on_trial_complete("next", {"acc": 0.0})
    assert s.suggest("after") == Searcher.FINISHED


def test_bad_spaces_modes_metrics_and_strategies_fail_clearly():
    with pytest.raises(ValueError, match=r"'f'.*sample_from"):
        _searcher().set_search_properties("acc", "max", {"k": tune.choice([1, 2]), "f": tune.sample_from(lambda _: 1)})
    with pytest.raises(ValueError, match="grid_search"):
        _searcher().set_search_properties("acc", "max", {"k": tune.grid_search([1, 2])})
    with pytest.raises(ValueError, match="mode must be 'min' or 'max'"):
        NASRankSearcher(metric="acc", mode="maximum")
    with pytest.raises(TypeError, match="metric must be a string"):
        NASRankSearcher(metric=3, mode="max")
    with pytest.raises(ValueError, match="unknown strategy 'bogus'"):
        NASRankSearcher(metric="acc", mode="max", strategy="bogus")
    with pytest.raises(ValueError, match="evaluated_rewards has 1 values for 2"):
        NASRankSearcher(points_to_evaluate=[{"k": 1, "w": 8}, {"k": 3, "w": 8}], evaluated_rewards=[1.0])
    s = NASRankSearcher(strategy="random")
    s.set_search_properties(None, None, SMALL)
    with pytest.raises(RuntimeError, match="needs metric and mode"):
        s.suggest("x")
    with pytest.raises(RuntimeError, match="no search space"):
        NASRankSearcher(metric="acc", mode="max").suggest("x")
    bad_point = _searcher(points_to_evaluate=[{"k": 7, "w": 8}])
    _setup(bad_point)
    with pytest.raises(ValueError, match=r"points_to_evaluate\[0\].*unknown value 7"):
        _suggest(bad_point, "x")


def test_own_space_refuses_tuner_domains_and_strategy_instance_is_used():
    space = CategoricalSpace({"k": [1, 3, 5], "w": [8, 16]})
    strat = make_strategy("random", space, seed=1)
    s = NASRankSearcher(space=space, metric="acc", mode="max", strategy=strat)
    other = {**SMALL, "w": tune.choice([8, 16, 32])}
    assert s.set_search_properties("acc", "max", other) is False  # Tune then raises on the domains
    assert s.set_search_properties("acc", "max", SMALL) is True  # the same space written for Tune
    assert s.set_search_properties("acc", "max", {"epochs": 3}) is True
    cfg = _suggest(s, "a")
    assert strat.pending == {(cfg["k"], cfg["w"])}
    with pytest.raises(ValueError, match="strategy searches"):
        NASRankSearcher(space=NB201Space(), strategy=make_strategy("random", space))


def test_concurrency_batches_fill_the_allowed_slots_and_respect_the_budget():
    s = _searcher()
    _setup(s, num_samples=5)
    assert s.set_max_concurrency(3) is True
    cfgs = [_suggest(s, f"t{i}") for i in range(3)]
    assert all(isinstance(c, dict) for c in cfgs)
    assert len(s.strategy.pending) == 3  # one ask of 3, not three asks of 1
    assert s.suggest("t3") is None  # 3 live trials
    s.on_trial_complete("t0", {"acc": 1.0})
    assert isinstance(s.suggest("t3"), dict)
    s.on_trial_complete("t1", {"acc": 1.0})
    assert isinstance(s.suggest("t4"), dict)
    # 5 suggested = num_samples: the strategy is never asked beyond the budget
    assert len(s.strategy.pending) + len(s.strategy.history) == 5
    with pytest.raises(ValueError, match="positive int"):
        s.set_max_concurrency(0)


def test_points_to_evaluate_come_first_and_rewarded_points_warm_start():
    pts = [{"k": 5, "w": 16}, {"k": 1, "w": 8}]
    s = _searcher(points_to_evaluate=pts)
    _setup(s)
    got = [_suggest(s, "a"), _suggest(s, "b")]
    assert [(c["k"], c["w"]) for c in got] == [(5, 16), (1, 8)]
    warm = _searcher(points_to_evaluate=pts, evaluated_rewards=[66.0, float("nan")])
    _setup(warm)
    first = _suggest(warm, "a")
    assert (first["k"], first["w"]) not in {(5, 16), (1, 8)}
    hist = {h["arch"]: (h["status"], h["source"]) for h in warm.strategy.history}
    assert hist == {(5, 16): ("ok", "warm"), (1, 8): ("failed", "warm")}
    s.add_evaluated_point({"k": 3, "w": 16}, 46.0)
    assert s.strategy.status((3, 16)) == "ok"


def test_save_restore_resumes_without_losing_or_repeating(tmp_path):
    def run(s, ids, live_after):
        out = []
        for t in ids:
            cfg = _suggest(s, t)
            out.append((cfg["k"], cfg["w"]))
            if t not in live_after:
                s.on_trial_complete(t, {"acc": _value(cfg)})
        return out

    ref = _searcher(seed=3)
    _setup(ref)
    ref_archs = run(ref, ["a", "b", "c"], live_after={"c"})
    ref.on_trial_complete("c", {"acc": 1.0})
    ref_archs += run(ref, ["d", "e", "f"], live_after=set())

    s = _searcher(seed=3)
    _setup(s)
    got = run(s, ["a", "b", "c"], live_after={"c"})
    path = tmp_path / "searcher.pkl"
    s.save(str(path))
    fresh = NASRankSearcher(strategy="random")  # what Tune builds from tuner.pkl
    _setup(fresh)
    fresh.restore(str(path))
    assert fresh.metric == "acc" and fresh.arch_of("c") == got[2]
    fresh.on_trial_complete("c", {"acc": 1.0})  # the trial live at the interruption resumes
    fresh.on_trial_complete("zzz", {"acc": 1.0})  # an id this state never saw: ignored
    got += run(fresh, ["d", "e", "f"], live_after=set())
    assert got == ref_archs and len(set(got)) == 6
    assert len(fresh.strategy.history) == 6


MIXED_TUNE = {"net": {"act": tune.choice(["relu", "gelu"]), "depth": tune.randint(1, 4)},
              "lr": tune.loguniform(1e-4, 1e-1), "wd": tune.qloguniform(1e-5, 1e-2, 1e-5),
              "dropout": tune.quniform(0.0, 0.5, 0.1), "noise": tune.randn(0.0, 1.0), "batch": tune.qrandint(16, 64, 16),
              "epochs": 2}


@pytest.mark.parametrize("strategy", ["random", "rea", "nasrank", "optuna-tpe"])
def test_every_tune_domain_is_searched_and_filled(strategy):
    kw = {}
    if strategy == "nasrank":
        from ray_nasrank.predictor import FineTuneConfig, PredictorConfig

        kw = {"strategy_kwargs": {"predictor": PredictorConfig(ensemble=1, hidden=16, finetune=FineTuneConfig(epochs=10))}}
    s = _searcher(strategy=strategy, **kw)
    _setup(s, MIXED_TUNE, num_samples=12)
    seen = set()
    for i in range(12):
        cfg = _suggest(s, f"t{i}")
        assert cfg["epochs"] == 2 and cfg["net"]["act"] in ("relu", "gelu") and 1 <= cfg["net"]["depth"] <= 3
        assert 1e-4 <= cfg["lr"] <= 1e-1 and 1e-5 <= cfg["wd"] <= 1e-2 and cfg["batch"] in (16, 32, 48, 64)
        assert round(cfg["dropout"] * 10) == cfg["dropout"] * 10 and isinstance(cfg["noise"], float)
        key = s.space.validate(cfg)
        assert key not in seen
        seen.add(key)
        s.on_trial_complete(f"t{i}", {"acc": -abs(math.log10(cfg["lr"]) + 2) + cfg["net"]["depth"]})


def test_sample_from_and_grid_search_are_one_error_naming_every_key():
    ps = {"l1": ("__fn_ph", "88716175"), "l2": ("__fn_ph", "b60ef777"), "lr": tune.loguniform(1e-4, 1e-1),
          "bs": tune.grid_search([2, 4])}
    with pytest.raises(ValueError) as e:
        _searcher().set_search_properties("acc", "max", ps)
    msg = str(e.value)
    assert "'l1'" in msg and "'l2'" in msg and "'bs'" in msg and "'lr'" not in msg
    assert "tune.choice" in msg
    # only placeholders, no domain at all: still named, not skipped
    with pytest.raises(ValueError, match="'l1'"):
        _searcher().set_search_properties("acc", "max", {"l1": ("__fn_ph", "88716175"), "epochs": 3})
    own = _searcher(space=CategoricalSpace({"k": [1, 2]}))
    with pytest.raises(ValueError, match="'net/l1'.*sample them outside the search"):
        own.set_search_properties("acc", "max", {"net": {"l1": ("__fn_ph", "88716175")}, "epochs": 3})


@contextlib.contextmanager
def searcher_log(caplog, level="INFO"):
    """The searcher's log records: it logs under Tune's ``ray`` logger, which does not propagate."""
    logger = logging.getLogger("ray.tune.search.nasrank")
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(level, logger=logger.name):
            yield caplog
    finally:
        logger.removeHandler(caplog.handler)


def test_metric_only_on_the_searcher_says_how_to_get_the_best_result(caplog):
    s = _searcher()
    with searcher_log(caplog, "WARNING"):
        _setup(s)
    assert "get_best_result() will need metric='acc'" in caplog.text
    assert caplog.text.count("NASRankSearcher") == 1


def test_a_finite_space_that_runs_out_ends_the_search_with_one_info_line(caplog):
    s = _searcher()
    s.set_search_properties("acc", "max", SMALL, num_samples=20)  # metric from TuneConfig: no warning
    with searcher_log(caplog):
        for i in range(6):
            cfg = _suggest(s, f"t{i}")
            s.on_trial_complete(f"t{i}", {"acc": _value(cfg)})
        assert [s.suggest(f"t{i}") for i in range(6, 20)] == [Searcher.FINISHED] * 14
    assert [r.levelname for r in caplog.records] == ["INFO"]
    assert caplog.records[0].name.startswith("ray.tune.")  # shown by Ray's handler, like Tune's own lines
    assert "every configuration of the space was tried (6 trials)" in caplog.text


def test_refits_run_with_one_torch_thread_by_default():
    import torch

    from ray_nasrank.predictor import FineTuneConfig, PredictorConfig

    before = torch.get_num_threads()
    s = _searcher(strategy="nasrank", strategy_kwargs={"predictor": PredictorConfig(ensemble=1, hidden=8, finetune=FineTuneConfig(epochs=5))})
    _setup(s, MIXED_TUNE, num_samples=20)
    _suggest(s, "t0")
    assert s.strategy.torch_threads == 1 and torch.get_num_threads() == before
    with pytest.raises(ValueError, match="torch_threads"):
        NASRankSearcher(torch_threads=0)
