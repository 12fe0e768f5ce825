"""Score rules of the blend offline on the dumps of ``scripts/ranking_rule_dumps.py``.

    python scripts/ranking_rule_eval.py DUMP.npz [DUMP.npz ...]

Prints, per dump and rule, the seed means of NDCG@10, NDCG@50 and Kendall tau over all rows, next
to the weak labels alone, ``weak_valid`` and the blend as dumped (``dumped``). The rule ``current``
is the shortlist rule before the learned rankers' shortlist (the fine-tuned network's top, 3 % x its
weight); ``learned >= 10 rows`` with the prior-top test is today's default
(``blend.shortlist_from="learned"``, ``shortlist_rows=10``) and should match dumps taken with it.

``DUMP.npz=BASELINES.json`` (a ``bench ranking`` result of the same cell and seeds with the
baselines) adds, per rule, the gap to the best baseline per metric: the mean per-seed difference
and its standard error, listed where it is below zero by more than twice that error. A
development tool.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import numpy as np
from scipy import stats

from ray_nasrank.metrics import ranking_report
from ray_nasrank.predictor.blend import validation_score


def _shortlisted(base: np.ndarray, top: np.ndarray, share: float) -> np.ndarray:
    """``base`` with the top ``share`` of ``top`` placed first, in ``top``'s order (as the blend does)."""
    out = np.arctan(base)
    if share <= 0:
        return out
    cut = np.quantile(top, 1.0 - share)
    short = top >= cut
    out[short] = np.pi + np.arctan(top[short])
    return out


def _upper_tau(d: dict, s: int, score: np.ndarray, frac: float = 0.5) -> tuple[float, int]:
    """Kendall tau of ``score`` against the labels among the labelled rows in the prior's upper ``frac``."""
    idx = d["idx"][s]
    prior = d["prior"][s]
    cut = np.quantile(prior, 1.0 - frac)
    up = idx[prior[idx] >= cut]
    if up.size < 3:
        return float("nan"), int(up.size)
    t = stats.kendalltau(d["y"][up], score[up]).statistic
    return (0.0 if np.isnan(t) else float(t)), int(up.size)


def _wtau(d, s, score: np.ndarray | None = None) -> float:
    """Weighted Kendall tau (hyperbolic weights by the prior's rank) of the prior against the labels."""
    idx = d["idx"][s]
    p = d["prior"][s][idx] if score is None else score
    t = stats.weightedtau(p, d["y"][idx], rank=True).statistic
    return 0.0 if np.isnan(t) else float(t)


def make_wtau(thr: float, lo: float | None = None) -> Callable:
    """No shortlist when the prior's top-weighted tau on the labels exceeds ``thr``; with ``lo``, the
    network's full 3 % at or below it."""
    def rule(d, s):
        t = _wtau(d, s)
        if t > thr:
            return rule_no_short(d, s)
        if lo is not None and t <= lo:
            return _shortlisted(_blend(d, s), d["tuned"][s], 0.03)
        return rule_current(d, s)
    return rule


def make_wgap(margin: float, against: str = "tuned") -> Callable:
    """No shortlist when the prior's top-weighted tau on the labels beats the network's out of fold
    (``against="tuned"``) or every learned ranker's (``"learned"``) by more than ``margin``."""
    def rule(d, s):
        oof = d["oof"][s]
        comps = [0] if against == "tuned" else [0, 2, 3]
        best = max(_wtau(d, s, oof[c]) for c in comps)
        return rule_no_short(d, s) if _wtau(d, s, oof[1]) - best > margin else rule_current(d, s)
    return rule


def rule_current(d, s):
    w = d["weights"][s]
    base = sum(w[c] * d[k][s] for c, k in enumerate(("tuned", "prior", "tree", "boost")))
    return _shortlisted(base, d["tuned"][s], 0.03 * w[0])


def rule_no_short(d, s):
    w = d["weights"][s]
    return sum(w[c] * d[k][s] for c, k in enumerate(("tuned", "prior", "tree", "boost")))


def make_upper(thr: float, frac: float = 0.5, src: str = "blend") -> Callable:
    """No shortlist (or the prior's top) when the prior keeps ordering the labels in its upper part."""
    def rule(d, s):
        t, m = _upper_tau(d, s, d["prior"][s], frac)
        if np.isnan(t) or t <= thr:
            return rule_current(d, s)
        if src == "prior":
            w = d["weights"][s]
            base = sum(w[c] * d[k][s] for c, k in enumerate(("tuned", "prior", "tree", "boost")))
            return _shortlisted(base, d["prior"][s], 0.03 * w[0])
        return rule_no_short(d, s)
    return rule


def make_oof_upper(margin: float, frac: float = 0.5) -> Callable:
    """No shortlist when, on the labels in the prior's upper part, the prior's tau beats the network's out of fold."""
    def rule(d, s):
        idx = d["idx"][s]
        prior = d["prior"][s]
        cut = np.quantile(prior, 1.0 - frac)
        up = prior[idx] >= cut
        if up.sum() < 3:
            return rule_current(d, s)
        y = d["y"][idx][up]
        tp = stats.kendalltau(y, d["oof"][s][1][up]).statistic
        tn = stats.kendalltau(y, d["oof"][s][0][up]).statistic
        tp, tn = np.nan_to_num(tp), np.nan_to_num(tn)
        return rule_no_short(d, s) if tp - tn > margin else rule_current(d, s)
    return rule


def make_valid_gap(margin: float) -> Callable:
    """No shortlist when the prior's validation score on all labels beats the network's out of fold by ``margin``."""
    def rule(d, s):
        idx = d["idx"][s]
        y = d["y"][idx]
        vp = validation_score(y, d["oof"][s][1])
        vn = validation_score(y, d["oof"][s][0])
        return rule_no_short(d, s) if vp - vn > margin else rule_current(d, s)
    return rule


def _blend(d, s) -> np.ndarray:
    w = d["weights"][s]
    return sum(w[c] * d[k][s] for c, k in enumerate(("tuned", "prior", "tree", "boost")))


def _learned(d, s) -> np.ndarray:
    """The rankers that learn from the labels (network and both trees), by their blend weights."""
    w = d["weights"][s]
    v = w[0] * d["tuned"][s] + w[2] * d["tree"][s] + w[3] * d["boost"][s]
    return v / max(w[0] + w[2] + w[3], 1e-9)


def make_sym(hi: float, lo: float, frac: float = 0.5, blind_share: float = 0.03, blind_src: str = "tuned") -> Callable:
    """The prior's upper-part tau on the labels decides the top: above ``hi`` the blend places it (no
    shortlist), at or below ``lo`` the learned rankers' full ``blind_share``, else the current rule."""
    def rule(d, s):
        t, _ = _upper_tau(d, s, d["prior"][s], frac)
        if np.isnan(t):
            return rule_current(d, s)
        if t > hi:
            return rule_no_short(d, s)
        if t <= lo:
            top = d["tuned"][s] if blind_src == "tuned" else _learned(d, s)
            return _shortlisted(_blend(d, s), top, blind_share)
        return rule_current(d, s)
    return rule


def make_top_test(thr: float, vs: str | None = "tuned", margin: float = 0.0) -> Callable:
    """No shortlist when the prior's top-weighted tau on the labels exceeds ``thr`` and (with ``vs``)
    the network's (``tuned``) or every learned ranker's (``learned``) out-of-fold one by ``margin``."""
    def rule(d, s):
        oof = d["oof"][s]
        wp = _wtau(d, s, oof[1])
        ok = wp > thr
        if ok and vs is not None:
            comps = [0] if vs == "tuned" else [0, 2, 3]
            ok = wp - max(_wtau(d, s, oof[c]) for c in comps) > margin
        return rule_no_short(d, s) if ok else rule_current(d, s)
    return rule


def make_two_sided(thr: float, full_margin: float) -> Callable:
    """``make_top_test(thr)``, and the network's full 3 % shortlist when its out-of-fold top-weighted
    tau beats the prior's by more than ``full_margin``."""
    base = make_top_test(thr)

    def rule(d, s):
        oof = d["oof"][s]
        if _wtau(d, s, oof[0]) - _wtau(d, s, oof[1]) > full_margin:
            return _shortlisted(_blend(d, s), d["tuned"][s], 0.03)
        return base(d, s)
    return rule


RULES: dict[str, Callable] = {
    **{f"two-sided thr{t} full>{m}": make_two_sided(t, m) for t in (0.6,) for m in (0.0, 0.1, 0.2)},
    **{f"top thr{t} vs-tuned": make_top_test(t) for t in (0.5, 0.55, 0.6, 0.65, 0.7, 0.75)},
    **{f"top thr{t} vs-learned-{m}": make_top_test(t, "learned", -m) for t in (0.5, 0.6) for m in (0.0, 0.05)},
    **{f"wgap>{m}": make_wgap(m) for m in (0.0, 0.1, 0.2)},
    **{f"wgap>{m} learned": make_wgap(m, "learned") for m in (0.0, 0.1)},
    **{f"wtau>{t}": make_wtau(t) for t in (0.6, 0.7, 0.8)},
    **{f"wtau>{t} lo{lo}": make_wtau(t, lo) for t, lo in ((0.7, 0.3), (0.8, 0.3))},
    "current": rule_current,
    "no_shortlist": rule_no_short,
    **{f"upper_tau>{t}": make_upper(t) for t in (0.0, 0.2, 0.4)},
    **{f"upper_tau>{t} prior-top": make_upper(t, src="prior") for t in (0.2,)},
    **{f"upper30_tau>{t}": make_upper(t, frac=0.3) for t in (0.0, 0.3)},
    **{f"oof_upper>{m}": make_oof_upper(m) for m in (0.0, 0.2)},
    **{f"valid_gap>{m}": make_valid_gap(m) for m in (0.0, 0.1)},
    **{f"sym hi{hi} lo{lo}": make_sym(hi, lo) for hi, lo in ((0.2, -0.2), (0.2, 0.0), (0.4, 0.0), (9, 0.0))},
    **{f"sym hi{hi} lo{lo} learned": make_sym(hi, lo, blind_src="learned") for hi, lo in ((0.2, 0.0), (9, 0.0))},
}


def _learned_top(d, s) -> np.ndarray:
    """The fine-tuned network and the stacked trees, by their blend weights (what orders the shortlist)."""
    w = d["weights"][s]
    return (w[0] * d["tuned"][s] + w[2] * d["tree"][s]) / max(w[0] + w[2], 1e-9)


def _prior_top(d, s) -> bool:
    """The default's prior-top test: fewer than 20 labels, a shortlist share of >= 10 rows, and the
    prior's top-weighted tau on the labels above 0.65 and above the network's out of fold."""
    idx, w = d["idx"][s], d["weights"][s]
    if idx.size >= 20 or 0.03 * w[0] * d["y"].size < 10:
        return False
    wp = _wtau(d, s)
    return wp > 0.65 and wp > _wtau(d, s, d["oof"][s][0])


def make_floor(source: str, rows: int) -> Callable:
    """The shortlist of ``source`` (``learned`` or ``network``), 3 % x the network's weight but at least
    ``rows`` rows, after the prior-top test."""
    def rule(d, s):
        if _prior_top(d, s):
            return rule_no_short(d, s)
        k = max(rows, int(np.ceil(0.03 * d["weights"][s][0] * d["y"].size)))
        top = _learned_top(d, s) if source == "learned" else d["tuned"][s]
        out = np.arctan(_blend(d, s))
        first = np.argsort(-top)[:k]
        out[first] = np.pi + np.arctan(top[first])
        return out
    return rule


RULES.update({f"{src} >= {k} rows": make_floor(src, k) for src in ("network", "learned") for k in (0, 5, 10)})

METRIC_NAMES = ("ndcg@10", "ndcg@50", "kendall_tau")


def baseline_gaps(d: dict, rule: Callable, path: str) -> list[str]:
    """Where ``rule`` trails the best baseline of ``path`` (a ``bench ranking`` JSON) beyond twice the
    standard error of the per-seed gap."""
    import json

    methods = json.loads(Path(path).read_text())["methods"]
    seeds = d["seed"].tolist()
    ours = np.array([metrics(d["y"], rule(d, s)) for s in range(len(seeds))])
    lost = []
    for j, name in enumerate(METRIC_NAMES):
        per = {m: {r["seed"]: r[name] for r in v["per_seed"]} for m, v in methods.items()
               if m not in ("nasrank", "random", "weak_single")}
        best = max(per, key=lambda m: np.mean([per[m][sd] for sd in seeds]))
        gap = ours[:, j] - np.array([per[best][sd] for sd in seeds])
        se = gap.std(ddof=1) / np.sqrt(gap.size)
        if gap.mean() < -2 * se:
            lost.append(f"{name} {gap.mean():+.3f} +- {se:.3f} ({best})")
    return lost


def metrics(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    r = ranking_report(y, s, mode="max", ks=(10, 50))
    return np.array([r["ndcg@10"], r["ndcg@50"], r["kendall_tau"]])


def main(args: list[str]) -> int:
    for arg in args:
        p, _, base = arg.partition("=")
        d = dict(np.load(p))
        seeds = d["seed"].size
        rows = {"weak": np.mean([metrics(d["y"], d["weak"])] * 1, axis=0),
                "weak_valid": np.mean([metrics(d["y"], d["weak_valid"][s]) for s in range(seeds)], axis=0),
                "dumped": np.mean([metrics(d["y"], d["final"][s]) for s in range(seeds)], axis=0)}
        for name, rule in RULES.items():
            rows[name] = np.mean([metrics(d["y"], rule(d, s)) for s in range(seeds)], axis=0)
        ut = [_wtau(d, s) for s in range(seeds)]
        print(f"{Path(p).name} (labels {int(d['labels'])}, seeds {d['seed'][0]}..{d['seed'][-1]}); "
              f"prior weighted tau per seed {np.round(ut, 2).tolist()}")
        for name, v in rows.items():
            print(f"  {name:<26} ndcg@10 {v[0]:.3f}  ndcg@50 {v[1]:.3f}  tau {v[2]:.3f}")
        cur = [metrics(d["y"], rule_current(d, s))[0] for s in range(seeds)]
        flat = [metrics(d["y"], rule_no_short(d, s))[0] for s in range(seeds)]
        print("  per seed ndcg@10 current / no shortlist: "
              + " ".join(f"{c:.2f}/{f:.2f}" for c, f in zip(cur, flat)))
        if base:
            for name, rule in RULES.items():
                print(f"  {name:<26} behind the best baseline: {'; '.join(baseline_gaps(d, rule, base)) or '-'}")
    return 0


def make_big_shortlist_only(rows: float, thr: float = 0.65) -> Callable:
    """``make_top_test(thr)`` only where the network's shortlist would hold at least ``rows`` candidates."""
    base = make_top_test(thr)

    def rule(d, s):
        if 0.03 * d["weights"][s][0] * d["y"].size < rows:
            return rule_current(d, s)
        return base(d, s)
    return rule


RULES.update({f"kept, only shortlists >= {k} rows": make_big_shortlist_only(k) for k in (5, 10, 20)})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
