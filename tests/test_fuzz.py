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


def test_a_hanging_case_is_reported_not_waited_for():
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
