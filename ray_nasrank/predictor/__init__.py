"""Learning-to-rank architecture predictor (pure torch/numpy, no Ray).

>>> from ray_nasrank.predictor import RankPredictor, PredictorConfig
>>> cfg = PredictorConfig(encoder="mlp", loss="lambdarank", ensemble=3, seed=0)

``RankPredictor(space, cfg).pretrain(archs, weak).fit(labelled, y)`` then ``.score(archs)``,
``.score_std(archs)``, ``.top_k(candidates, k)``, ``.clone()``, ``.save(path)`` /
``RankPredictor.load(path)``. Losses live in :mod:`ray_nasrank.predictor.losses`.
"""

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
from .predictor import PredictorConfig, RankPredictor

__all__ = [
    "RankPredictor",
    "PredictorConfig",
    "LOSSES",
    "get_loss",
    "lambdarank_loss",
    "ranknet_loss",
    "listmle_loss",
    "listnet_loss",
    "margin_loss",
    "mse_loss",
]
