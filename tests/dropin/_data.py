"""Tiny data shared by the drop-in scripts: sklearn's 8x8 digits, split once."""

from __future__ import annotations

_CACHE: dict = {}


def digits():
    """(x_train, y_train, x_valid, y_valid) as float32/int64 numpy arrays, pixels in [0, 1]."""
    if "split" not in _CACHE:  # a plain dict, not lru_cache: Tune ships this function by value
        import numpy as np
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        x, y = load_digits(return_X_y=True)
        x = (x / 16.0).astype(np.float32)
        _CACHE["split"] = train_test_split(x, y.astype(np.int64), test_size=0.3, random_state=0, stratify=y)
    xt, xv, yt, yv = _CACHE["split"]
    return xt, yt, xv, yv
