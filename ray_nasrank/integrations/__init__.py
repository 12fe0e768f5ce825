"""Adapters that plug ray_nasrank into Ray Tune and Optuna.

Nothing is imported here on purpose: ``ray_nasrank.integrations.tune`` imports Ray and
``ray_nasrank.integrations.optuna`` imports Optuna, each only when that subpackage is used, so
``import ray_nasrank.integrations`` works on a machine that has neither.

Example::

    from ray_nasrank.integrations.tune import NASRankSearcher      # needs ray[tune]
    from ray_nasrank.integrations.optuna import NASRankSampler     # needs optuna
"""

__all__ = ["tune", "optuna"]
