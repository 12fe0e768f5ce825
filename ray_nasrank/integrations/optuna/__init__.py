"""Optuna integration: :class:`NASRankSampler` (importing this subpackage imports Optuna).

The package is named ``optuna`` inside ``ray_nasrank.integrations``; with absolute imports
(``from __future__`` default in Python 3) ``import optuna`` inside it still gets the real Optuna.

Example::

    import optuna
    from ray_nasrank.spaces import NB201Space
    from ray_nasrank.integrations.optuna import NASRankSampler

    study = optuna.create_study(direction="maximize",
                                sampler=NASRankSampler(NB201Space(), strategy="nasrank", seed=0))
"""

from ._sampler import NASRankSampler, domain_of, infer_space

__all__ = ["NASRankSampler", "infer_space", "domain_of"]
