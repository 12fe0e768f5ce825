"""The random-search baseline: expected best after ``n`` trainings, exactly, from a finite table.

Random search without replacement over ``N`` architectures whose metric values are known (a
tabular benchmark such as NB201) has an exact expected best after ``n`` draws: with the values
sorted ascending, the ``i``-th smallest (1-based) is the best of ``n`` draws with probability
``C(i-1, n-1) / C(N, n)``. No simulation noise, so plots compare against the true expectation.

>>> expected_random_best([1.0, 2.0, 3.0], 3).round(4).tolist()
[2.0, 2.6667, 3.0]
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln

from ray_nasrank._checks import check_mode

__all__ = ["expected_random_best"]


def expected_random_best(values, n_max: int, mode: str = "max") -> np.ndarray:
    """``E[best of n uniform draws without replacement]`` for ``n = 1..n_max``.

    Args:
        values: the metric of every architecture random search draws from.
        n_max: the largest number of draws (at most ``len(values)``).
        mode: ``"max"`` or ``"min"``: which direction is better.

    Returns:
        Array of length ``n_max``: the expected best after ``1, 2, ..., n_max`` draws.

    Raises:
        ValueError: ``values`` is empty or holds NaN/inf, ``n_max`` is not a positive integer or
            exceeds ``len(values)``, or an unknown ``mode``.
    """
    check_mode(mode)
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise ValueError("need at least one value to compute a random-search baseline")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"values hold {int((~np.isfinite(v)).sum())} NaN/inf entries; drop them first")
    if isinstance(n_max, bool) or not isinstance(n_max, (int, np.integer)) or n_max < 1:
        raise ValueError(f"n_max must be a positive integer, got {n_max!r}")
    if n_max > v.size:
        raise ValueError(f"n_max={n_max} exceeds the {v.size} architectures available")
    s = np.sort(v if mode == "max" else -v)          # ascending in "better" direction
    N = s.size
    i = np.arange(1, N + 1, dtype=np.float64)
    out = np.empty(n_max)
    for n in range(1, n_max + 1):
        # log C(i-1, n-1) - log C(N, n); zero probability where i < n
        valid = i >= n
        logp = np.full(N, -np.inf)
        iv = i[valid]
        logp[valid] = (gammaln(iv) - gammaln(n) - gammaln(iv - n + 1)
                       - (gammaln(N + 1) - gammaln(n + 1) - gammaln(N - n + 1)))
        out[n - 1] = float(np.sum(np.exp(logp) * s))
    return out if mode == "max" else -out
