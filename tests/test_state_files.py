"""State files (ranker, strategy, Tune searcher) hold data only: reading a planted pickle payload,
a class from outside the package or a corrupt file is one clear error, and no code runs."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from ray_nasrank._state import StateError, decode, encode, read_npz, write_npz
from ray_nasrank.predictor import FineTuneConfig, PredictorConfig, PretrainConfig, RankPredictor
from ray_nasrank.search import Strategy, make_strategy
from ray_nasrank.spaces import NB201Space

SPACE = NB201Space()


class Payload:
    """What an attacker plants: unpickling it would write ``marker`` (harmless, but proof it ran)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_planted_ranker_payload_is_refused_without_running(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "ranker.pt"
    torch.save({"format": Payload(marker)}, path)
    with pytest.raises(ValueError, match="ranker.pt.*not a saved RankPredictor"):
        RankPredictor.load(path)
    assert not marker.exists()


def test_a_planted_strategy_payload_is_refused_without_running(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "s.npz"
    path.write_bytes(pickle.dumps({"class": "ray_nasrank.search._random:RandomStrategy", "x": Payload(marker)}))
    with pytest.raises(ValueError, match="s.npz.*not a saved strategy state"):
        Strategy.from_file(path)
    with pytest.raises(ValueError, match="not a saved strategy state"):
        make_strategy("random", SPACE, seed=0).load(path)
    assert not marker.exists()


def test_a_planted_searcher_payload_is_refused_without_running(tmp_path):
    pytest.importorskip("ray")
    from ray_nasrank.integrations.tune import NASRankSearcher

    marker = tmp_path / "ran"
    path = tmp_path / "searcher-state.pkl"
    path.write_bytes(pickle.dumps({"version": 1, "state": Payload(marker)}))
    with pytest.raises(ValueError, match="searcher-state.pkl.*not a NASRankSearcher state"):
        NASRankSearcher(strategy="random").restore(str(path))
    assert not marker.exists()


@pytest.mark.parametrize("cls", ["subprocess:Popen", "os:system", "ray_nasrank._io:atomic_write",
                                 "ray_nasrank.search._base:Strategy", "ray_nasrank.spaces:Arch"])
def test_a_class_the_package_does_not_save_is_refused_before_anything_is_built(cls):
    doc = {"$t": "obj", "cls": cls, "state": {"$t": "dict", "v": [["args", ["touch", "/tmp/x"]]]}}
    with pytest.raises(StateError, match="refusing class|not a class"):
        decode(doc, {})


def test_writing_refuses_code_and_names_where_it_is():
    with pytest.raises(TypeError, match=r"\[1\]\['f'\]: cannot save a builtins.function"):
        encode([1, {"f": lambda x: x}])


def test_trees_of_data_round_trip_exactly():
    rng = np.random.default_rng(3)
    rng.random(5)
    tree = {(1, "a"): {frozenset({2}), None}, "arr": np.arange(6).reshape(2, 3), "s": np.array(["x", "yz"]),
            "g": rng, "n": np.float32(1.5), "t": torch.ones(2, dtype=torch.float64), "inf": float("inf"),
            "space": SPACE}
    back = decode(*encode(tree))
    assert back[(1, "a")] == {frozenset({2}), None} and back["space"] == SPACE
    assert back["arr"].tolist() == [[0, 1, 2], [3, 4, 5]] and back["s"].tolist() == ["x", "yz"]
    assert back["g"].random() == rng.random() and back["n"].dtype == np.float32 and back["inf"] == float("inf")
    assert torch.equal(back["t"], tree["t"])


def test_a_saved_ranker_scores_the_same_and_its_file_is_plain_tensors(tmp_path):
    archs = SPACE.sample_many(120, rng=0, unique=True)
    weak = np.array([a.count("nor_conv_3x3") + 0.1 * a.count("skip_connect") for a in archs])
    p = RankPredictor(SPACE, PredictorConfig(ensemble=2, pretrain=PretrainConfig(epochs=3), finetune=FineTuneConfig(epochs=20))).pretrain(
        archs, {"convs": weak}).fit(archs[:30], weak[:30] + np.linspace(0, 1, 30))
    path = p.save(tmp_path / "ranker.pt")
    payload = torch.load(path, weights_only=True)  # what the loader reads: no object but tensors and text
    assert set(payload) == {"format", "kind", "json", "tensors"} and isinstance(json.loads(payload["json"]), dict)
    back = RankPredictor.load(path)
    assert p.blend.tree is not None and type(back.blend.tree).__name__ == "TreeEnsemble"  # the blend's tree, as arrays
    assert np.array_equal(back.score(archs), p.score(archs))


def test_a_truncated_state_file_names_itself(tmp_path):
    s = make_strategy("random", SPACE, seed=0)
    for a in s.ask(3):
        s.tell(a, 1.0)
    path = tmp_path / "s.npz"
    s.save(path)
    assert Strategy.from_file(path).history == s.history
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="s.npz"):
        Strategy.from_file(path)
    write_npz(tmp_path / "other.npz", "something-else", {"a": 1})
    with pytest.raises(StateError, match="holds 'something-else'"):
        read_npz(tmp_path / "other.npz", Strategy.FILE_KIND)
