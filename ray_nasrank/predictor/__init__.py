"""Learning-to-rank architecture predictor (pure torch/numpy, no Ray).

>>> from ray_nasrank.predictor import RankPredictor, PredictorConfig, FineTuneConfig
>>> cfg = PredictorConfig(encoder="mlp", ensemble=3, seed=0, finetune=FineTuneConfig(loss="lambdarank"))

``RankPredictor(space, cfg).pretrain(archs, weak).fit(labelled, y)`` then ``.score(archs)``,
``.score_std(archs)``, ``.top_k(candidates, k)``, ``.clone()``, ``.save(path)`` /
``RankPredictor.load(path)``. The settings are in :mod:`~ray_nasrank.predictor.config`, the
members' training in :mod:`~ray_nasrank.predictor.ensemble`, the cross-validated blend with the
weak labels in :mod:`~ray_nasrank.predictor.blend`, the file format in
:mod:`~ray_nasrank.predictor.persistence` and the losses in :mod:`ray_nasrank.predictor.losses`.
"""

from .blend import CrossValidatedBlend
from .config import BlendConfig, FineTuneConfig, PredictorConfig, PretrainConfig
from .losses import (
    LOSSES,
    get_loss,
    lambdarank_loss,
    listmle_loss,
    listnet_loss,
    margin_loss,
    mse_loss,
    ranknet_loss,
)
from .predictor import RankPredictor

__all__ = [
    "RankPredictor",
    "PredictorConfig",
    "PretrainConfig",
    "FineTuneConfig",
    "BlendConfig",
    "CrossValidatedBlend",
    "LOSSES",
    "get_loss",
    "lambdarank_loss",
    "ranknet_loss",
    "listmle_loss",
    "listnet_loss",
    "margin_loss",
    "mse_loss",
]
