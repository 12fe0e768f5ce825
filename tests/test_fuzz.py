"""Bad-input sweep (issue 7): >= 1,000 Hypothesis cases over Tune param spaces, arch strings,
tables and CLI argv; every case ends in a correct result or a documented exception naming the
bad value, never a hang."""

from __future__ import annotations

import time

import pytest

from reliability import CaseLog, CaseTimeout, fuzz_all, time_limit
from reliability._fuzz import _expect_error, names_value

pytest.importorskip("hypothesis")


def test_bad_input_sweep_has_1000_cases_and_no_failure():
    pytest.importorskip("ray.tune")
    results = fuzz_all(1100)
    total = sum(r.cases for r in results)
    assert total >= 1000, [r.summary() for r in results]
    for r in results:
        assert r.cases > 0, r.summary()
        assert r.failures == 0, r.summary() + "\n" + "\n".join(r.examples)


def test_checker_flags_undocumented_errors_and_anonymous_messages():
    # the sweep is only as good as its checker: it must fail on the outcomes it forbids
    log = CaseLog("meta")
    with log.case("zero division") as c:
        _expect_error(c, ZeroDivisionError("boom"))
    with log.case("anonymous") as c:
        _expect_error(c, ValueError("something is wrong"), "bad_key")
    with log.case("named") as c:
        _expect_error(c, ValueError("param_space['a/bad_key'] is a Tune Float domain"), "bad_key")
    with log.case("keyerror") as c:
        _expect_error(c, KeyError("no weak label 'flops'"), "flops")
    r = log.result()
    assert (r.cases, r.failures) == (4, 2)
    assert "ZeroDivisionError" in r.examples[0] and "bad_key" in r.examples[1]
    assert names_value("unknown value 3 for 'a'", 3) and not names_value("bad input", 3)


def test_a_hanging_case_is_reported_not_waited_for(monkeypatch):
    monkeypatch.setattr("reliability._core.load_factor", lambda: 1.0)
    log = CaseLog("hang")
    t0 = time.perf_counter()
    with log.case("sleeps", timeout_s=0.3):
        time.sleep(5)
    assert time.perf_counter() - t0 < 2
    r = log.result()
    assert r.failures == 1 and "CaseTimeout" in r.examples[0]
    with pytest.raises(CaseTimeout):
        with time_limit(0.2, "spin"):
            while True:
                pass


def test_time_limits_stretch_with_load_and_name_a_timeout_a_c_call_rewrapped(monkeypatch):
    import reliability._core as core

    assert core.load_factor() >= 1.0
    monkeypatch.setattr(core, "load_factor", lambda: 8.0)  # a machine 8x slower than idle
    log = CaseLog("loaded")
    with log.case("0.4 s of work under a 0.1 s idle limit", timeout_s=0.1):
        time.sleep(0.4)
    assert log.result().failures == 0
    monkeypatch.setattr(core, "load_factor", lambda: 1.0)
    log = CaseLog("wrapped")
    with log.case("alarm inside a C call", timeout_s=0.1):
        try:
            time.sleep(2)
        except CaseTimeout as e:  # what Ray's Cython wait does with an exception from a handler
            raise SystemError("<cyfunction CoreWorker.wait> returned a result with an exception set") from e
    r = log.result()
    assert r.failures == 1 and "CaseTimeout" in r.examples[0] and "surfaced as SystemError" in r.examples[0]


def test_fuzzed_mixed_and_conditional_configs_and_metrics_through_every_front_end():
    from reliability import fuzz_mixed_configs

    r = fuzz_mixed_configs(200)
    assert r.cases == 200 and r.failures == 0, "\n".join(r.examples)
