"""``make_strategy``: strategies by name, as the CLI and the integrations refer to them."""

from __future__ import annotations

import importlib
from typing import Any

from ray_nasrank.spaces import SearchSpace

from ._base import Strategy

#: name -> "module:class"; modules are imported on demand so unused strategies cost nothing
STRATEGIES: dict[str, str] = {
    "random": "ray_nasrank.search._random:RandomStrategy",
    "rea": "ray_nasrank.search._rea:REAStrategy",
    "opdist": "ray_nasrank.search._opdist:OpDistStrategy",
    "nasrank": "ray_nasrank.search._nasrank:NASRankStrategy",
    "optuna-tpe": "ray_nasrank.search._tpe:TPEStrategy",
}


def strategy_class(name: str) -> type[Strategy]:
    """The strategy class registered as ``name``.

    Args:
        name: a key of :data:`STRATEGIES`.

    Returns:
        The class.

    Raises:
        ValueError: an unknown name (the error lists the known ones).
    """
    if not isinstance(name, str) or name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; choose from {sorted(STRATEGIES)}")
    module, _, cls = STRATEGIES[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def strategy_accepts(name: str, param: str) -> bool:
    """Whether the strategy registered as ``name`` takes the keyword argument ``param``.

    Args:
        name: a registered strategy name.
        param: a keyword argument name.

    Returns:
        ``True`` when its constructor has that parameter.

    >>> strategy_accepts("nasrank", "weak"), strategy_accepts("random", "weak")
    (True, False)
    """
    import inspect

    return param in inspect.signature(strategy_class(name).__init__).parameters


def make_strategy(name: str, space: SearchSpace, *, seed: int | None = None, **kwargs: Any) -> Strategy:
    """Build the strategy registered as ``name`` (random, rea, opdist, nasrank, optuna-tpe).

    Args:
        name: a key of :data:`STRATEGIES`.
        space: the search space.
        seed: seed of the strategy's random choices.
        **kwargs: the strategy's own arguments (``mode``, ``candidates``, ``weak``, ...).

    Returns:
        The strategy.

    Raises:
        ValueError: an unknown name.

    >>> from ray_nasrank.spaces import NB201Space
    >>> make_strategy("random", NB201Space(), seed=0).name
    'random'
    """
    return strategy_class(name)(space, seed=seed, **kwargs)


def multi_objective_strategies() -> list[str]:
    """The registered strategies that search several objectives at once (``multi_objective``).

    Returns:
        Their registry names, sorted.

    >>> multi_objective_strategies()
    ['nasrank', 'random']
    """
    return sorted(n for n in STRATEGIES if strategy_class(n).multi_objective)
