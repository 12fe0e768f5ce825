"""Bad-input sweep: Hypothesis-generated Tune param spaces, arch strings, tables and CLI argv.

Every case must end in one of two ways: a correct result (checked against invariants), or a
*documented* exception (``ValueError``, ``KeyError``, ``TypeError``, ``FileNotFoundError``; for
the CLI exit code 2 with one line on stderr) whose message names the offending value. Anything
else (another exception, a message that does not say what was wrong, a traceback, a case running
past its time limit) is a counted failure. Cases are generated with ``derandomize=True`` so a
run is reproducible; the property never raises, so Hypothesis explores without shrinking and
the failure count is exact.

>>> from reliability import fuzz_arch_strings
>>> fuzz_arch_strings(20).failures
0
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import string
import tempfile
from pathlib import Path
from typing import Any, Callable

from ._core import CaseLog, ScenarioResult

#: exceptions the public APIs document for bad input
DOCUMENTED = (ValueError, KeyError, TypeError, FileNotFoundError, NotADirectoryError, PermissionError)
#: per-case time limit: a case that runs longer is reported as a hang
CASE_TIMEOUT_S = 20.0


def names_value(message: str, *values: Any) -> bool:
    """Whether ``message`` names one of ``values`` (by ``repr`` or, for non-empty text, by ``str``)."""
    for v in values:
        if repr(v) in message:
            return True
        s = str(v)
        if s and s in message:
            return True
    return False


def _hypothesis_run(name: str, strategy: Any, check: Callable[[Any, Any], None], n: int,
                    label: Callable[[Any], str] = repr) -> ScenarioResult:
    """Run ``check(example, case)`` on ``n`` examples drawn from ``strategy``."""
    from hypothesis import HealthCheck, Phase, given, settings

    log = CaseLog(name)

    @settings(max_examples=n, deadline=None, database=None, derandomize=True,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(strategy)
    def prop(example: Any) -> None:
        with log.case(label(example)[:300], timeout_s=CASE_TIMEOUT_S) as c:
            check(example, c)

    prop()
    return log.result()


def _expect_error(c: Any, err: BaseException, *named: Any) -> None:
    c.check(isinstance(err, DOCUMENTED), f"undocumented exception {type(err).__name__}: {err}")
    msg = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    if named:
        c.check(names_value(msg, *named), f"message {msg!r} does not name any of {named!r}")


# ====================================================================== Tune param spaces
_KEY = string.ascii_lowercase + string.digits + "_"
#: injected bad entries: kind -> (factory of the bad value, whether the key itself is the bad part)
_BAD_KINDS = ("grid_search", "grid_dict", "sample_from", "fn_placeholder", "callable",
              "list_of_domains", "slash_key", "int_key", "empty_randint", "dup_choice", "empty_choice",
              "choice_of_domains", "bad_loguniform")


def _bad_entry(kind: str) -> tuple[Any, Any]:
    """(key, value) of one unsupported entry; the key is what the error must name."""
    from ray import tune

    key: Any = f"bad_{kind}"
    value: Any
    if kind == "fn_placeholder":
        value = ("__fn_ph", "0f1e2d3c")  # what Tune hands a searcher in place of tune.sample_from
    elif kind == "bad_loguniform":
        value = tune.loguniform(1e-4, 1e-1)
        value.lower = 0.0  # a log scale cannot start at 0
    elif kind == "grid_search":
        value = tune.grid_search([1, 2])
    elif kind == "grid_dict":
        value = {"grid_search": [3, 4]}
    elif kind == "sample_from":
        value = tune.sample_from(lambda spec: 1)
    elif kind == "callable":
        value = lambda spec: 2  # noqa: E731 - a bare callable is what users write by mistake
    elif kind == "list_of_domains":
        value = [tune.choice([1, 2]), tune.choice([3, 4])]
    elif kind == "slash_key":
        key, value = "bad/slash", tune.choice([1, 2])
    elif kind == "int_key":
        key, value = 987654, tune.choice([1, 2])
    elif kind == "empty_randint":
        value = tune.randint(7, 7)
    elif kind == "dup_choice":
        value = tune.choice([5, 5, 6])
    elif kind == "empty_choice":
        value = tune.choice([])
    elif kind == "choice_of_domains":
        value = tune.choice([tune.uniform(0, 1), 3])
    else:  # pragma: no cover - _BAD_KINDS lists every branch
        raise ValueError(f"unknown bad kind {kind!r}")
    return key, value


def _tune_spec_strategy():
    from hypothesis import strategies as st

    keys = st.text(_KEY, min_size=1, max_size=6)
    scalars = st.one_of(st.integers(-50, 50), st.text(_KEY, max_size=5), st.booleans(),
                        st.floats(-10, 10, allow_nan=False), st.none())
    choice = st.lists(st.one_of(st.integers(-20, 20), st.text(_KEY, min_size=1, max_size=4)),
                      min_size=1, max_size=6, unique=True).map(lambda xs: ("choice", xs))
    randint = st.tuples(st.integers(-10, 10), st.integers(1, 12)).map(lambda t: ("randint", t))
    qrandint = st.tuples(st.integers(0, 10), st.integers(1, 20), st.integers(1, 4)).map(lambda t: ("qrandint", t))
    lograndint = st.tuples(st.integers(1, 10), st.integers(1, 50_000)).map(lambda t: ("lograndint", t))
    numeric = st.sampled_from(_NUMERIC).map(lambda k: (k, None))
    constant = scalars.map(lambda v: ("const", v))
    const_list = st.lists(scalars, max_size=3).map(lambda v: ("const", v))
    leaf = st.one_of(choice, randint, qrandint, lograndint, numeric, constant, const_list)
    tree = st.recursive(
        st.dictionaries(keys, leaf, min_size=1, max_size=4),
        lambda children: st.dictionaries(keys, st.one_of(leaf, children), min_size=1, max_size=4),
        max_leaves=12,
    )
    bad = st.one_of(st.none(), st.sampled_from(_BAD_KINDS))
    nb201 = st.booleans()
    return st.tuples(tree, bad, st.integers(0, 10**6), nb201)


def _materialise(tree: dict) -> tuple[dict, dict, list]:
    """Plain tree -> (Tune param_space, expected constants, expected [(path, n_choices)])."""
    from ray import tune

    space: dict = {}
    consts: dict = {}
    decisions: list = []

    def walk(node: dict, out: dict, cout: dict, prefix: tuple) -> None:
        for k, v in node.items():
            if isinstance(v, dict):
                sub, csub = {}, {}
                walk(v, sub, csub, prefix + (k,))
                out[k] = sub
                if csub:
                    cout[k] = csub
                continue
            kind, arg = v
            if kind == "choice":
                out[k] = tune.choice(list(arg))
                decisions.append((prefix + (k,), len(arg)))
            elif kind == "randint":
                lo, width = arg
                out[k] = tune.randint(lo, lo + width)
                decisions.append((prefix + (k,), width))
            elif kind == "qrandint":
                lo, width, q = arg
                out[k] = tune.qrandint(lo, lo + width, q)
                decisions.append((prefix + (k,), len(range(lo, lo + width + 1, q))))
            elif kind == "lograndint":
                lo, width = arg
                out[k] = tune.lograndint(lo, lo + width)
                decisions.append((prefix + (k,), width))
            elif kind in _NUMERIC:
                out[k] = _numeric_domain(kind)
                decisions.append((prefix + (k,), 1000 if kind == "qloguniform" else math.inf))  # 1e-3 grid of [1e-3, 1]
            else:
                out[k] = arg
                cout[k] = arg

    walk(tree, space, consts, ())
    return space, consts, decisions


_NUMERIC = ("uniform", "loguniform", "qloguniform", "randn", "qrandn")


def _numeric_domain(kind: str) -> Any:
    from ray import tune

    return {"uniform": lambda: tune.uniform(-1.0, 1.0), "loguniform": lambda: tune.loguniform(1e-4, 1e-1),
            "qloguniform": lambda: tune.qloguniform(1e-3, 1.0, 1e-3), "randn": lambda: tune.randn(0.0, 1.0),
            "qrandn": lambda: tune.qrandn(0.0, 2.0, 0.5)}[kind]()


def _insert_at(space: dict, rnd: int, key: Any, value: Any) -> None:
    """Put ``key: value`` into one of the dicts of ``space`` (chosen by ``rnd``)."""
    dicts = [space]
    stack = [space]
    while stack:
        d = stack.pop()
        for v in d.values():
            if isinstance(v, dict) and "grid_search" not in v:
                dicts.append(v)
                stack.append(v)
    dicts[rnd % len(dicts)][key] = value


def _check_tune_space(example: tuple, c: Any) -> None:
    import numpy as np

    from ray_nasrank.spaces import NB201Space, space_from_tune

    tree, bad, rnd, with_nb201 = example
    param_space, consts, decisions = _materialise(tree)
    if with_nb201 and "cell" not in param_space:
        param_space.update(NB201Space().to_tune())
        decisions += [(("cell", e), 5) for e in ("e1_0", "e2_0", "e2_1", "e3_0", "e3_1", "e3_2")]
    if bad is not None:
        key, value = _bad_entry(bad)
        _insert_at(param_space, rnd, key, value)
    try:
        space, constants = space_from_tune(param_space)
    except Exception as e:  # noqa: BLE001 - classified below
        if bad is not None:
            _expect_error(c, e, key)
        elif not decisions:
            _expect_error(c, e)
            c.check("Tune domain" in str(e), f"no-domain error does not say what is missing: {e}")
        else:
            c.check(False, f"valid param_space rejected: {type(e).__name__}: {e}")
        return
    c.check(bad is None, f"unsupported entry {bad!r} was accepted")
    c.check(decisions, "a param_space without domains was accepted")
    c.check(space.size == math.prod(n for _, n in decisions),
            f"space size {space.size} != product of choices {[n for _, n in decisions]}")
    c.check(sorted(d.path for d in space.decisions) == sorted(p for p, _ in decisions),
            "decision paths differ from the param_space's domains")
    c.check(constants == consts, f"constants {constants!r} != expected {consts!r}")
    arch = space.sample(np.random.default_rng(rnd))
    c.check(space.from_config(space.to_config(arch)) == arch, "to_config/from_config round trip broke")


def fuzz_tune_spaces(n: int = 300) -> ScenarioResult:
    """``space_from_tune`` on random nested Tune param spaces, some with one unsupported entry."""
    return _hypothesis_run("fuzz_tune_spaces", _tune_spec_strategy(), _check_tune_space, n,
                           label=lambda ex: f"tree={ex[0]!r} bad={ex[1]!r}")


# ====================================================================== arch strings
_ARCH_ALPHABET = "|+~0123456789_ abcnortvkpx-"


def _arch_strategy():
    from hypothesis import strategies as st

    from ray_nasrank.spaces import OPS

    arch = st.tuples(*[st.sampled_from(OPS)] * 6)
    edit = st.tuples(st.sampled_from(("insert", "delete", "replace", "swap_op", "strip", "pad")),
                     st.integers(0, 200), st.text(_ARCH_ALPHABET, min_size=1, max_size=3))
    mutated = st.tuples(arch, st.lists(edit, max_size=3)).map(lambda t: ("nb201_text", t))
    noise = st.text(max_size=60).map(lambda t: ("nb201_text_raw", t))
    objects = st.one_of(st.integers(), st.none(), st.floats(allow_nan=True), st.binary(max_size=6),
                        st.lists(st.one_of(st.sampled_from(OPS), st.text(max_size=6)), max_size=8)).map(
        lambda o: ("nb201_object", o))
    config = st.dictionaries(st.sampled_from(("cell", "arch", "cell/e1_0", "x")),
                             st.one_of(st.text(max_size=8), st.integers(),
                                       st.dictionaries(st.sampled_from(("e1_0", "e2_0", "e9_9")),
                                                       st.sampled_from(OPS + ("bogus",)))),
                             max_size=3).map(lambda d: ("nb201_config", d))
    cat_text = st.tuples(st.integers(0, 5), st.lists(edit, max_size=3)).map(lambda t: ("cat_text", t))
    return st.one_of(mutated, noise, objects, config, cat_text)


def _apply_edits(text: str, edits: list) -> str:
    from ray_nasrank.spaces import OPS

    for kind, pos, chunk in edits:
        i = pos % (len(text) + 1)
        if kind == "insert":
            text = text[:i] + chunk + text[i:]
        elif kind == "delete":
            text = text[:i] + text[i + len(chunk):]
        elif kind == "replace":
            text = text[:i] + chunk + text[i + len(chunk):]
        elif kind == "swap_op":
            op = OPS[pos % len(OPS)]
            text = text.replace(op, chunk, 1) if op in text else text + chunk
        elif kind == "strip":
            text = text.strip("|")
        else:
            text = f" {text}\t"
    return text


def _check_arch(example: tuple, c: Any) -> None:
    from ray_nasrank.spaces import CategoricalSpace, NB201Space, arch_to_str, parse_arch

    kind, payload = example
    nb = NB201Space()
    if kind in ("nb201_text", "nb201_text_raw"):
        text = _apply_edits(arch_to_str(payload[0]), payload[1]) if kind == "nb201_text" else payload
        try:
            arch = parse_arch(text)
        except Exception as e:  # noqa: BLE001
            _expect_error(c, e, text)
            return
        c.check(arch_to_str(arch) == text.strip(), f"{text!r} parsed to {arch!r}, which is not its canonical form")
        c.check(nb.validate(arch) == arch, "a parsed arch does not validate")
    elif kind == "nb201_object":
        try:
            arch = nb.validate(payload)
        except Exception as e:  # noqa: BLE001
            bad_ops = [o for o in payload if o not in nb.ops] if isinstance(payload, list) else []
            shown = tuple(payload) if isinstance(payload, (list, bytes)) else payload
            items = list(shown) if isinstance(shown, tuple) else []
            _expect_error(c, e, payload, shown, *bad_ops, *items)
            return
        c.check(isinstance(payload, list) and len(arch) == 6 and all(o in nb.ops for o in arch),
                f"{payload!r} validated to {arch!r}")
    elif kind == "nb201_config":
        try:
            arch = nb.validate(payload)
        except Exception as e:  # noqa: BLE001
            leaves = [payload] + list(payload.keys()) + [v for v in payload.values()]
            for v in payload.values():
                if isinstance(v, dict):
                    leaves += list(v.values()) + list(v.keys())
            _expect_error(c, e, *leaves, "cell/e1_0", "cell/e2_0", "cell/e2_1", "cell/e3_0", "cell/e3_1", "cell/e3_2")
            return
        c.check(len(arch) == 6 and all(o in nb.ops for o in arch), f"{payload!r} validated to {arch!r}")
    else:  # categorical space string form
        seed, edits = payload
        space = CategoricalSpace({"k": [3, 5], "w": ["a", "b c"], "deep": {"f": [0.5, None]}})
        good = space.to_string(space.arch_at(seed % space.size))
        text = _apply_edits(good, edits)
        try:
            arch = space.from_string(text)
        except Exception as e:  # noqa: BLE001
            parts = text.split("|")
            _expect_error(c, e, text, *parts, *[p.partition("=")[2] for p in parts])
            return
        c.check(space.to_string(arch) == text, f"{text!r} read as {arch!r}, not its canonical form")


def fuzz_arch_strings(n: int = 400) -> ScenarioResult:
    """``parse_arch``, ``NB201Space.validate`` and ``CategoricalSpace.from_string`` on bad input."""
    return _hypothesis_run("fuzz_arch_strings", _arch_strategy(), _check_arch, n)


# ====================================================================== tables
_TABLE_BAD = (None, "nan_target", "inf_target", "str_target", "missing_target", "missing_arch",
              "dup_arch", "bad_arch", "int_arch", "str_weak", "missing_weak", "bad_mode", "empty",
              "missing_file", "bad_suffix", "cols_missing")


def _table_strategy():
    from hypothesis import strategies as st

    return st.tuples(st.integers(1, 25), st.integers(0, 10**6), st.sampled_from(_TABLE_BAD),
                     st.sampled_from(("frame", "csv", "parquet")), st.sampled_from(("nb201", "columns")))


def _check_table(example: tuple, c: Any) -> None:
    import numpy as np
    import pandas as pd

    from ray_nasrank.benchmarks import TabularBenchmark
    from ray_nasrank.spaces import NB201Space

    rows, seed, bad, via, space = example
    rng = np.random.default_rng(seed)
    nb = NB201Space()
    if space == "nb201":
        idx = rng.choice(nb.size, size=rows, replace=False)
        df = pd.DataFrame({"arch": [nb.to_string(nb.arch_at(int(i))) for i in idx]})
        kw: dict = {"space": "nb201", "arch_col": "arch"}
    else:
        codes = rng.choice(4 * 3 * 2, size=min(rows, 24), replace=False)
        rows = len(codes)
        df = pd.DataFrame({"k": [int(x) % 4 for x in codes], "w": [f"w{(int(x) // 4) % 3}" for x in codes],
                           "d": [int(x) // 12 for x in codes]})
        kw = {"space": "columns", "arch_cols": ["k", "w", "d"]}
    df["acc"] = rng.normal(70, 5, size=rows)
    df["weak1"] = rng.normal(size=rows)
    kw.update(target="acc", weak=["weak1"], mode="max")
    expect: tuple = ()
    r = int(rng.integers(rows))
    if bad == "nan_target":
        df.loc[r, "acc"] = np.nan
        expect = ("acc", r)
    elif bad == "inf_target":
        df.loc[r, "acc"] = np.inf
        expect = ("acc", r)
    elif bad == "str_target":
        df["acc"] = df["acc"].astype(object)
        df.loc[r, "acc"] = "n/a"
        expect = ("n/a", r)
    elif bad == "missing_target":
        kw["target"] = "accuracy"
        expect = ("accuracy",)
    elif bad == "missing_arch" and space == "nb201":
        kw["arch_col"] = "architecture"
        expect = ("architecture",)
    elif bad == "dup_arch" and rows > 1:
        first = df.columns[0] if space == "nb201" else None
        if first:
            df.loc[r if r else 1, "arch"] = df.loc[0, "arch"]
            expect = (df.loc[0, "arch"],)
        else:
            df.loc[r if r else 1, ["k", "w", "d"]] = df.loc[0, ["k", "w", "d"]].to_numpy()
            k, w, d = df.loc[0, ["k", "w", "d"]]
            expect = (f"k={int(k)}|w={w!r}|d={int(d)}",)
    elif bad == "bad_arch" and space == "nb201":
        df.loc[r, "arch"] = "|nor_conv_3x3~0|+|bogus_op~0|"
        expect = ("|nor_conv_3x3~0|+|bogus_op~0|", r)
    elif bad == "int_arch" and space == "nb201" and via != "parquet":  # parquet cannot store it
        df["arch"] = df["arch"].astype(object)
        df.loc[r, "arch"] = 12345
        expect = (12345, r)
    elif bad == "str_weak":
        df["weak1"] = df["weak1"].astype(object)
        df.loc[r, "weak1"] = "high"
        expect = ("high", "weak1")
    elif bad == "missing_weak":
        kw["weak"] = ["weak1", "flops_missing"]
        expect = ("flops_missing",)
    elif bad == "bad_mode":
        kw["mode"] = "maximise"
        expect = ("maximise",)
    elif bad == "empty":
        df = df.iloc[:0]
        expect = ("no rows", "empty", "0 rows")
    elif bad == "cols_missing" and space == "columns":
        kw["arch_cols"] = ["k", "w", "depth"]
        expect = ("depth",)
    elif bad in ("missing_file", "bad_suffix"):
        via = bad
    else:
        bad = None
    with tempfile.TemporaryDirectory(prefix="rn_fuzz_table_") as tmp:
        try:
            if via == "frame":
                bench = TabularBenchmark.from_frame(df, **kw)
            elif via == "csv":
                p = Path(tmp) / "t.csv"
                df.to_csv(p, index=False)
                bench = TabularBenchmark.from_file(p, **kw)
            elif via == "parquet":
                p = Path(tmp) / "t.parquet"
                df.to_parquet(p, index=False)
                bench = TabularBenchmark.from_file(p, **kw)
            elif via == "missing_file":
                p = Path(tmp) / "no_such_table.parquet"
                expect = (str(p),)
                bench = TabularBenchmark.from_file(p, **kw)
            else:
                p = Path(tmp) / "t.xlsx"
                p.write_bytes(b"not a table")
                expect = (str(p), ".xlsx")
                bench = TabularBenchmark.from_file(p, **kw)
        except Exception as e:  # noqa: BLE001
            if bad is None and via in ("frame", "csv", "parquet"):
                c.check(False, f"valid table rejected: {type(e).__name__}: {e}")
            _expect_error(c, e, *expect)
            return
    c.check(bad is None and via in ("frame", "csv", "parquet"), f"bad table ({bad}, {via}) was accepted")
    c.check(len(bench) == rows, f"{len(bench)} archs for {rows} rows")
    i = int(rng.integers(rows))
    c.check(math.isclose(bench.evaluate(bench.archs[i]), float(df["acc"].iloc[i])), "evaluate returned another row's target")
    c.check(math.isclose(bench.optimum, float(df["acc"].max())), "optimum is not the best target")
    try:
        bench.index("|bogus~0|+|none~0|none~1|+|none~0|none~1|none~2|" if space == "nb201" else (9, "w9", 9))
        c.check(False, "an arch outside the table was found")
    except (KeyError, ValueError) as e:
        _expect_error(c, e, "bogus", "9")


def fuzz_tables(n: int = 200) -> ScenarioResult:
    """``TabularBenchmark.from_frame``/``from_file`` on tables with one injected defect (or none)."""
    return _hypothesis_run("fuzz_tables", _table_strategy(), _check_table, n)


# ====================================================================== CLI arguments
_POISONS = ("unknown_option", "bad_type", "bad_choice", "unknown_command", "missing_value")


def _cli_catalogue() -> list[tuple[list[str], list]]:
    """Every registered (sub)command path with its optional actions."""
    import argparse

    from ray_nasrank.cli import build_parser

    out: list = []

    def walk(parser: argparse.ArgumentParser, path: list[str]) -> None:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if subs:
            out.append((path + [None], [], []))  # the group itself: only a bad subcommand applies
            for name, sub in subs[0].choices.items():
                walk(sub, path + [name])
            return
        opts = [a for a in parser._actions if a.option_strings and not isinstance(a, (argparse._HelpAction, argparse._VersionAction))]
        positionals = [a for a in parser._actions if not a.option_strings]
        out.append((path, opts, positionals))

    walk(build_parser(), [])
    return out


def _cli_strategy(catalogue: list):
    from hypothesis import strategies as st

    token = st.text(string.ascii_letters + string.digits + "_-.,/:=", min_size=1, max_size=12)
    return st.tuples(st.integers(0, len(catalogue) - 1), st.lists(st.tuples(st.integers(0, 999), token), max_size=5),
                     st.sampled_from(_POISONS), st.integers(0, 999), token)


def _cli_argv(example: tuple, catalogue: list) -> tuple[list[str], Any]:
    """argv with random options plus one poison; returns (argv, what the error must name)."""
    cmd, extra, poison, pick, tok = example
    path, opts, positionals = catalogue[cmd]
    if path and path[-1] is None:  # a command group: name an unknown subcommand
        bad = f"nocmd_{tok}"
        return path[:-1] + [bad], bad
    argv = list(path) + [_plausible(a, tok) for a in positionals]
    # every other argument is plausible and the required ones are present, so the poison is the
    # only error and argparse (which reports the first problem it meets) must name it
    picked = [opts[i % len(opts)] for i, _ in extra] if opts else []
    picked += [a for a in opts if a.required and a not in picked]
    values = [v for _, v in extra] + [tok] * len(opts)
    for a, value in zip(picked, values):
        argv.append(a.option_strings[-1])
        if a.nargs != 0:
            argv.append(_plausible(a, value))
    typed = [a for a in opts if a.type in (int, float)]
    choice = [a for a in opts if a.choices]
    valued = [a for a in opts if a.nargs != 0]
    if poison == "bad_type" and typed:
        a = typed[pick % len(typed)]
        bad = f"not-a-number-{tok}"
        argv += [a.option_strings[-1], bad]
        return argv, bad
    if poison == "bad_choice" and choice:
        a = choice[pick % len(choice)]
        bad = f"nochoice_{tok}"
        argv += [a.option_strings[-1], bad]
        return argv, bad
    if poison == "missing_value" and valued:
        a = valued[pick % len(valued)]
        argv.append(a.option_strings[-1])
        return argv, a.option_strings[-1]
    if poison == "unknown_command":
        bad = f"nocmd_{tok}"
        return path[:-1] + [bad] + argv[len(path):], bad
    head = len(path) + len(positionals)
    bad = f"--no-such-option-{tok}"
    # between two options (never between an option and its value) or at the end
    slots = [i for i in range(head, len(argv)) if argv[i].startswith("--")] + [len(argv)]
    argv.insert(slots[pick % len(slots)], bad)
    return argv, bad


def _plausible(action: Any, token: str) -> str:
    """A value argparse accepts for ``action``: a valid choice, a number, or the token."""
    if action.choices:
        choices = list(action.choices)
        return str(choices[len(token) % len(choices)])
    if action.type is not None and action.type is not str:
        return "1"  # int, float and list-of-int parsers all take it
    return token if not token.startswith("-") else "x" + token


def _check_cli(example: tuple, c: Any, catalogue: list) -> None:
    from ray_nasrank.cli import main

    argv, named = _cli_argv(example, catalogue)
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            rc = main(argv)
        except SystemExit as e:  # argparse must never exit the process by itself
            c.check(False, f"SystemExit({e.code}) escaped main({argv!r})")
            return
    text = err.getvalue()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    c.check(rc == 2, f"main({argv!r}) returned {rc}, expected 2; stderr={text[-300:]!r}")
    c.check(len(lines) == 1, f"main({argv!r}) wrote {len(lines)} stderr lines: {text[-400:]!r}")
    c.check("Traceback" not in text, f"traceback for {argv!r}")
    names = named if isinstance(named, tuple) else (named,)
    c.check(names_value(text, *names) or names_value(text, *[n.lstrip("-") for n in names]),
            f"error {text.strip()!r} does not name {named!r}")


def fuzz_cli(n: int = 200) -> ScenarioResult:
    """``ray-nasrank`` argv of every registered command with one bad argument: exit 2, one line."""
    catalogue = _cli_catalogue()
    old = os.getcwd()
    # a fuzzed --out must not litter the caller's directory
    with tempfile.TemporaryDirectory(prefix="rn_fuzz_cli_") as tmp:
        os.chdir(tmp)
        try:
            res = _hypothesis_run("fuzz_cli", _cli_strategy(catalogue),
                                  lambda ex, c: _check_cli(ex, c, catalogue), n,
                                  label=lambda ex: repr(_cli_argv(ex, catalogue)[0]))
        finally:
            os.chdir(old)
    res.details["commands"] = [" ".join(x or "<sub>" for x in p) for p, _, _ in catalogue]
    return res


def fuzz_all(n_total: int = 1100) -> list[ScenarioResult]:
    """The whole bad-input sweep, ``n_total`` cases split across the four input kinds."""
    share = {"tune": 0.27, "arch": 0.36, "table": 0.19, "cli": 0.18}
    return [
        fuzz_tune_spaces(max(1, int(n_total * share["tune"]))),
        fuzz_arch_strings(max(1, int(n_total * share["arch"]))),
        fuzz_tables(max(1, int(n_total * share["table"]))),
        fuzz_cli(max(1, int(n_total * share["cli"]))),
    ]
