"""How long one refit of the ranker takes: the cost a search pays every time labels arrive.

:func:`fit_time` pretrains a :class:`RankPredictor` once, then times ``refits`` fine-tunings
(``clone().fit``, the way NASRank refits) on ``labels`` random labelled candidates each, plus the
scoring of every candidate, with ``threads`` torch threads. Wall-clock and process CPU seconds
are both reported: on a shared machine wall time grows with the load, CPU time much less.

>>> from ray_nasrank.spaces import NB201Space
>>> import numpy as np
>>> space = NB201Space()
>>> archs = space.sample_many(100, rng=0, unique=True)
>>> y = np.array([a.count("nor_conv_3x3") + 0.1 * a.count("skip_connect") for a in archs])
>>> from ray_nasrank.predictor import BlendConfig, FineTuneConfig, PretrainConfig
>>> cfg = PredictorConfig(ensemble=1, pretrain=PretrainConfig(epochs=1), finetune=FineTuneConfig(epochs=5),
...                       blend=BlendConfig(mode="off"))
>>> r = fit_time(space, archs, {"convs": y}, y, labels=20, refits=2, config=cfg)
>>> len(r["fit_wall_s"]), r["labels"], r["fit_wall_max_s"] >= r["fit_wall_median_s"]
(2, 20, True)
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Sequence

import numpy as np
import torch

from ray_nasrank.spaces import SearchSpace

from .config import PredictorConfig
from .predictor import RankPredictor
from .weak import WeakInput


def fit_time(space: SearchSpace, candidates: Sequence[Any], weak: WeakInput, y: Sequence[float] | np.ndarray,
             labels: int = 100, refits: int = 5, threads: int = 2, config: PredictorConfig | None = None,
             seed: int = 0, mode: str = "max") -> dict[str, Any]:
    """Seconds per refit (and per scoring of all ``candidates``) of a ranker pretrained on ``weak``.

    Refit ``i`` labels ``labels`` candidates drawn with seed ``seed + i`` and uses their ``y``.
    Returns a dict of per-refit lists (``fit_wall_s``, ``fit_cpu_s``, ``score_wall_s``), their
    medians and maxima, the pretraining time, the blend each refit chose and the settings.
    """
    cands = list(candidates)
    y = np.asarray(y, dtype=np.float64).ravel()
    if y.size != len(cands):
        raise ValueError(f"fit_time: {len(cands)} candidates but {y.size} labels")
    if not 2 <= labels < len(cands):
        raise ValueError(f"fit_time: labels must be in [2, {len(cands)}), got {labels}")
    if refits < 1 or threads < 1:
        raise ValueError(f"fit_time: refits and threads must be >= 1, got {refits} and {threads}")
    cfg = config if config is not None else PredictorConfig()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        t0 = time.perf_counter()
        base = RankPredictor(space, cfg).pretrain(cands, weak)
        pretrain_s = time.perf_counter() - t0
        warm = np.random.default_rng(seed + 10_000).choice(len(cands), size=labels, replace=False)
        base.clone().fit([cands[i] for i in warm], y[warm], mode=mode)  # first-call costs (iso classes, torch)
        fit_wall, fit_cpu, score_wall, blends = [], [], [], []
        for i in range(refits):
            idx = np.random.default_rng(seed + i).choice(len(cands), size=labels, replace=False)
            w0, c0 = time.perf_counter(), time.process_time()
            q = base.clone().fit([cands[j] for j in idx], y[idx], mode=mode)
            fit_wall.append(time.perf_counter() - w0)
            fit_cpu.append(time.process_time() - c0)
            w0 = time.perf_counter()
            q.score(cands)
            score_wall.append(time.perf_counter() - w0)
            blends.append(q.blend_weights)
    finally:
        torch.set_num_threads(before)
    return {
        "candidates": len(cands), "labels": labels, "refits": refits, "threads": threads,
        "pretrain_s": round(pretrain_s, 3),
        "fit_wall_s": [round(v, 3) for v in fit_wall], "fit_cpu_s": [round(v, 3) for v in fit_cpu],
        "score_wall_s": [round(v, 3) for v in score_wall],
        "fit_wall_median_s": round(float(np.median(fit_wall)), 3), "fit_wall_max_s": round(max(fit_wall), 3),
        "fit_cpu_median_s": round(float(np.median(fit_cpu)), 3),
        "trust_weights": blends, "predictor": dataclasses.asdict(cfg),
    }


__all__ = ["fit_time"]
