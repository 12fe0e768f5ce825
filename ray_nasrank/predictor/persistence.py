"""Writing a :class:`~ray_nasrank.predictor.RankPredictor` to a file and reading it back.

Everything that touches the file format lives here, so a change of format stays in one place.
The state holds the settings, the space, the pretraining data, the members' weights and the
blend of the last fit, as plain values, arrays and tensors (:mod:`ray_nasrank._state`): a file
is read with ``torch.load(weights_only=True)`` and names no class but the package's own, so
reading it cannot run code. Reading rebuilds the feature rows from the architectures.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ray_nasrank.spaces import SearchSpace

from .blend import CrossValidatedBlend
from .config import PredictorConfig

if TYPE_CHECKING:
    from .predictor import RankPredictor

#: what :func:`save_predictor` writes (the ``kind`` of the state file)
FILE_KIND = "ray_nasrank.RankPredictor/2"


def predictor_state(predictor: "RankPredictor") -> dict:
    """Config, space, weights, pretraining data and blend of ``predictor`` as plain values, arrays and tensors."""
    ens, blend = predictor.ensemble, predictor.blend
    return {
        "config": asdict(ens.config),
        "space": ens.space,
        "weak_names": list(ens.weak_names),
        "pre_archs": ens.pre_archs,
        "pre_weak": ens.pre_weak,
        "pre_target": ens.pre_target,
        "pre_states": ens.pre_states,
        "states": None if ens.nets is None else [n.state_dict() for n in ens.nets],
        "scale": ens.scale,
        "fitted": ens.fitted,
        "trust": {"blend": None, "scale": None, "tree": None, "mix": None, "mix_scale": None} if blend is None else
                 {"blend": blend.weights, "scale": blend.scale, "tree": blend.tree, "mix": blend.mix,
                  "mix_scale": blend.mix_scale, "top": blend.top,
                  # LightGBM's own text format: data, read back by its parser
                  "boost": None if blend.boost is None else blend.boost.model_to_string()},
    }


def predictor_from_state(state: Any, device: str | None = None) -> "RankPredictor":
    """The predictor :func:`predictor_state` described (optionally onto another ``device``).

    Raises:
        ValueError: a state that is not a predictor's (a wrong or missing field).
    """
    from .predictor import RankPredictor

    if not isinstance(state, dict) or not isinstance(state.get("config"), dict):
        raise ValueError("not the state of a RankPredictor")
    cfg = dict(state["config"])
    if device is not None:
        cfg["device"] = device
    if not isinstance(state.get("space"), SearchSpace):
        raise ValueError("the state of a RankPredictor has no search space")
    p = RankPredictor(state["space"], PredictorConfig.from_dict(cfg))
    ens = p.ensemble
    ens.weak_names = [str(n) for n in state.get("weak_names") or []]
    if state.get("pre_archs") is not None:
        ens.pre_archs = [ens.space.validate(a) for a in state["pre_archs"]]
        ens.pre_rows = ens.rows(ens.pre_archs)
        ens.pre_weak, ens.pre_target = state.get("pre_weak"), state.get("pre_target")
    ens.pre_states = state.get("pre_states")
    if state.get("states") is not None:
        ens.nets = []
        for m, sd in enumerate(state["states"]):
            net = ens.new_net(m)
            net.load_state_dict(sd)
            net.eval()
            ens.nets.append(net)
    ens.scale = state.get("scale")
    ens.fitted = bool(state.get("fitted"))
    if ens.pre_states is not None and ens.pre_rows is not None:
        ens.fill_prior()
    saved = state.get("trust") or {}
    if saved.get("blend") is not None:
        boost = saved.get("boost")
        if boost is not None:
            import lightgbm as lgb

            if not isinstance(boost, str):
                raise ValueError("the blend's boosted trees are not a LightGBM model text")
            boost = lgb.Booster(model_str=boost)
        p.blend = CrossValidatedBlend(weights=saved["blend"], scale=saved["scale"], mix=saved.get("mix"),
                                      mix_scale=saved.get("mix_scale"), tree=saved.get("tree"), boost=boost,
                                      top=saved.get("top"))
    return p


def save_predictor(predictor: "RankPredictor", path: str | os.PathLike) -> Path:
    """Write ``predictor`` to ``path`` atomically as tensors and JSON; returns the path."""
    from ray_nasrank._state import write_torch

    return write_torch(path, FILE_KIND, predictor_state(predictor))


def load_predictor(path: str | os.PathLike, device: str | None = None) -> "RankPredictor":
    """Read a file written by :func:`save_predictor` (optionally onto another ``device``).

    Nothing in the file can run code: it is read with ``torch.load(weights_only=True)`` and
    names no class but the package's own (checked before any object is built).

    Raises:
        ValueError: not a saved RankPredictor, or a corrupt one (the message names the file).
    """
    from ray_nasrank._state import StateError, read_torch

    try:
        return predictor_from_state(read_torch(path, FILE_KIND), device)
    except StateError as e:
        raise ValueError(f"{e}; it is not a saved RankPredictor") from None
    except (ValueError, TypeError, KeyError, RuntimeError) as e:
        raise ValueError(f"{str(path)!r} is not a valid saved RankPredictor ({type(e).__name__}: {e})") from None


__all__ = ["FILE_KIND", "load_predictor", "predictor_from_state", "predictor_state", "save_predictor"]
