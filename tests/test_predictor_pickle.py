"""A pickled RankPredictor works in another process, whose feature store numbers archs differently."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap

import numpy as np
import torch

from ray_nasrank.predictor import FineTuneConfig, PredictorConfig, PretrainConfig, RankPredictor
from ray_nasrank.predictor.features import feature_store
from ray_nasrank.spaces import NB201Space

torch.set_num_threads(1)

SPACE = NB201Space()
CFG = PredictorConfig(seed=3, ensemble=2, hidden=32, features="onehot+opdist+path", pretrain=PretrainConfig(epochs=3), finetune=FineTuneConfig(epochs=40, patience=10))


def _data():
    archs = SPACE.sample_many(300, rng=5, unique=True)
    weak = np.array([a.count("nor_conv_3x3") + 0.5 * a.count("nor_conv_1x1") for a in archs], dtype=float)
    y = weak + np.array([1.0 if a[3] == "nor_conv_3x3" else 0.0 for a in archs])
    return archs, weak, y


# the child first fills its store with other archs in another order, so every pretraining arch
# gets a different row number there than here
_CHILD = textwrap.dedent("""
    import pickle, sys
    import numpy as np, torch
    torch.set_num_threads(1)
    from ray_nasrank.predictor.features import feature_store
    from ray_nasrank.spaces import NB201Space
    space = NB201Space()
    feature_store(space, "onehot+opdist+path").rows([space.arch_at(i) for i in range(15624, 15000, -1)])
    p, archs, y = pickle.loads(sys.stdin.buffer.read())
    out = {"pretrained": p.score(archs), "fitted": p.clone().fit(archs[:40], y[:40]).score(archs)}
    sys.stdout.buffer.write(pickle.dumps(out))
""")


def test_pretrained_predictor_unpickled_in_another_process_scores_identically():
    archs, weak, y = _data()
    p = RankPredictor(SPACE, CFG).pretrain(archs, {"weak": weak})
    expected = {"pretrained": p.score(archs), "fitted": p.clone().fit(archs[:40], y[:40]).score(archs)}
    blob = pickle.dumps((p, archs, y))
    res = subprocess.run([sys.executable, "-c", _CHILD], input=blob, capture_output=True, timeout=120)
    assert res.returncode == 0, res.stderr.decode()[-2000:]
    got = pickle.loads(res.stdout)
    np.testing.assert_array_equal(expected["pretrained"], got["pretrained"])
    # fitting reads the pretraining rows (score scale), so wrong rows would change these scores
    np.testing.assert_array_equal(expected["fitted"], got["fitted"])


def test_unpickled_predictor_rebuilds_its_pretraining_rows_from_the_archs():
    archs, weak, _ = _data()
    p = RankPredictor(SPACE, CFG).pretrain(archs, {"weak": weak})
    state = p.ensemble.__getstate__()
    assert state["pre_rows"] is None and state["pre_archs"] == [tuple(a) for a in archs]
    q = pickle.loads(pickle.dumps(p))
    store = feature_store(SPACE, CFG.features)
    np.testing.assert_array_equal(store.flat[q.ensemble.pre_rows], store.flat[store.rows(archs)])
