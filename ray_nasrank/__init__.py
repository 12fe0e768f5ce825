"""ray_nasrank: learning-to-rank neural architecture search.

The core (spaces, encodings, benchmarks, proxies, supernet, predictor, search strategies)
runs without Ray. Ray Tune and Optuna adapters live in :mod:`ray_nasrank.integrations` and
import their libraries lazily.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
