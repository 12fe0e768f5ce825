"""The one registry of built-in model family names (``--space NAME`` of the main job and the benchmarks)."""

from __future__ import annotations

from typing import Callable

from ._family import ModelFamily
from ._nb201 import nb201_family

__all__ = ["FAMILIES"]

#: built-in families: name -> the function returning the :class:`ModelFamily`, called with the
#: keyword arguments it takes among ``in_channels``, ``num_classes``, ``channels`` and
#: ``cells_per_stage``. A new built-in family is one module with such a function plus its line here.
FAMILIES: dict[str, Callable[..., ModelFamily]] = {
    "nb201": nb201_family,
}
