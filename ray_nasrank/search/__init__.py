"""Search strategies with a plain ask/tell core (no Ray or Optuna needed to import).

>>> from ray_nasrank.spaces import NB201Space
>>> from ray_nasrank.search import make_strategy
>>> s = make_strategy("random", NB201Space(), seed=0)
>>> [arch] = s.ask()
>>> s.tell(arch, 91.5)
>>> s.best == (arch, 91.5)
True

Strategies: ``random`` (:class:`RandomStrategy`), ``rea`` (regularized evolution),
``opdist`` (operation-distribution search), ``nasrank`` (learning-to-rank predictor proposing
the top predicted unseen candidates) and ``optuna-tpe`` (Optuna's TPE through ask/tell).
"""

from ._base import Strategy, as_value, nearest_first
from ._nasrank import NASRankStrategy, default_intrinsic, search_predictor_config
from ._objectives import LinearConstraint, hypervolume, hypervolume_improvement, non_dominated, pareto_ranks
from ._opdist import OpDistModel, OpDistStrategy
from ._random import RandomStrategy
from ._rea import REAStrategy
from ._registry import STRATEGIES, make_strategy, multi_objective_strategies, strategy_accepts, strategy_class
from ._tpe import TPEStrategy
from ._weak import INTRINSIC, WeakLabels, intrinsic_weak, model_weak, pretraining_labels

__all__ = ["Strategy", "RandomStrategy", "REAStrategy", "OpDistStrategy", "OpDistModel", "TPEStrategy", "NASRankStrategy", "search_predictor_config", "default_intrinsic", "intrinsic_weak", "WeakLabels", "model_weak", "pretraining_labels", "INTRINSIC", "make_strategy", "strategy_class", "strategy_accepts", "STRATEGIES", "as_value", "nearest_first", "multi_objective_strategies", "hypervolume", "hypervolume_improvement", "non_dominated", "pareto_ranks", "LinearConstraint"]
