"""Dump each seed's rankers of one ``bench ranking`` cell, to score rules of the blend offline.

    python scripts/ranking_rule_dumps.py OUT.npz -- BENCH RANKING FLAGS (as ``ray-nasrank bench ranking``)

Per seed it fits ``nasrank`` exactly as ``bench ranking`` does (same labelled rows, same
pretrained predictor, ``--pretrain-cache`` honoured) and keeps, for every row of the table, the
standardised score of each ranker of the blend (fine-tuned network, prior, stacked trees, boosted
trees), the blend's final score, the blend weights, the out-of-fold matrix the weights were chosen
on and the labelled rows. A rule of the blend (which ranker places the top, how far to shrink) is
then scored on these arrays in seconds (``scripts/ranking_rule_eval.py``) instead of refitting.
A development tool: the arrays are written with ``numpy.savez`` (no pickles).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


def main(argv: list[str]) -> int:
    import ray_nasrank.predictor.blend as blend_mod
    from ray_nasrank.benchmarks._ranking import (
        RankingBenchConfig,
        _cache_path,
        table_weak_labels,
        weak_baseline_scores,
        weak_valid_score,
    )
    from ray_nasrank.cli import add_options, options_from_args
    from ray_nasrank.predictor import RankPredictor

    if "--" not in argv:
        raise SystemExit(__doc__)
    out, flags = argv[0], argv[argv.index("--") + 1:]
    parser = argparse.ArgumentParser(prog="ranking_rule_dumps")
    add_options(parser, RankingBenchConfig)
    cfg = options_from_args(RankingBenchConfig, parser.parse_args([*flags, "--out", out]))
    bench = cfg.load_table()
    n = len(bench.archs)
    weak = table_weak_labels(cfg, bench)
    pcfg = cfg.predictor_config()
    cache = _cache_path(cfg, pcfg, n) if cfg.pretrain_cache else None
    if cache is not None and cache.is_file():
        pre = RankPredictor.load(cache, device=cfg.device)
    else:
        pre = RankPredictor(bench.space, pcfg).pretrain(bench.archs, weak)
        if cache is not None:
            pre.save(cache)

    calls: list[tuple[np.ndarray, np.ndarray]] = []
    original = blend_mod.choose_weights

    def recording(oof, y, *a, **k):
        calls.append((np.array(oof), np.array(y)))
        return original(oof, y, *a, **k)

    blend_mod.choose_weights = recording
    y = np.asarray(bench.targets, dtype=np.float64)
    ys = y if bench.mode == "max" else -y
    signed_weak = weak if bench.mode == "max" else {k: -v for k, v in weak.items()}
    keep: dict[str, list] = {k: [] for k in ("seed", "idx", "tuned", "prior", "tree", "boost", "final", "weights",
                                             "oof", "mix", "weak_valid")}
    for seed in range(cfg.first_seed, cfg.first_seed + cfg.seeds):
        idx = np.sort(np.random.default_rng(seed).choice(n, size=cfg.labels, replace=False))
        q = pre.clone()
        q.config = pcfg.updated({"seed": 0})
        calls.clear()
        q.fit([bench.archs[i] for i in idx], y[idx], mode=bench.mode)
        b, ens = q.blend, q.ensemble
        rows = ens.rows(bench.archs)
        s = ens.member_scores(rows)
        mean, std = s.mean(axis=0), s.std(axis=0)
        sc = b.scale
        prior, wk = ens.prior_inputs(rows)
        if b.mix is not None:
            prior = blend_mod._mixed(wk, b.mix, b.mix_scale)
        comp = {"tuned": (mean - sc[0, 0]) / sc[0, 1], "prior": (prior - sc[1, 0]) / sc[1, 1]}
        x = blend_mod._tree_x(ens, rows, wk)
        comp["tree"] = (b.tree.predict(x) - sc[2, 0]) / sc[2, 1] if b.tree is not None else np.zeros(n)
        comp["boost"] = ((blend_mod.boost_score(b.boost, np.column_stack([x, comp["prior"]]), comp["prior"])
                          - sc[3, 0]) / sc[3, 1]) if b.boost is not None else np.zeros(n)
        final = b.score(ens, rows, mean, std)[0]
        oof, _ = calls[-1]
        keep["seed"].append(seed)
        keep["idx"].append(idx)
        for k, v in comp.items():
            keep[k].append(v.astype(np.float32))
        keep["final"].append(final.astype(np.float32))
        keep["weights"].append(np.asarray(b.weights))
        keep["oof"].append(oof)
        keep["mix"].append(np.zeros(0) if b.mix is None else np.asarray(b.mix))
        keep["weak_valid"].append(weak_valid_score(signed_weak, idx, ys)[1].astype(np.float32))
        print(f"seed {seed}: weights {np.round(b.weights, 2).tolist()}", flush=True)
    np.savez(out, y=ys, labels=cfg.labels, weak=weak_baseline_scores(signed_weak),
             **{k: np.stack(v) for k, v in keep.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
