"""Model families: a search space together with what the package can do with it.

A :class:`ModelFamily` is what the main job, the report and the benchmarks search: its space,
the network of each config (``model_fn``) and what it provides for weak labels (a supernet,
intrinsic labels, zero-cost proxies of its models) and its candidate pool. Every consumer
chooses by those capabilities, never by a family's name or type. Built-in families are named in
:data:`FAMILIES` (``nb201``); your own is ``MODULE:FUNCTION`` (see :func:`load_family`).

>>> from ray_nasrank.families import FAMILIES, load_family
>>> sorted(FAMILIES)
['nb201']
>>> load_family("nb201").intrinsic_names
('params', 'flops', 'synflow')
"""

from ._family import (
    RECIPE_KEYS,
    ModelFamily,
    SpaceError,
    family_from,
    is_family_spec,
    load_family,
    sampled_pool,
)
from ._nb201 import nb201_family, nb201_pool
from ._registry import FAMILIES

__all__ = ["ModelFamily", "SpaceError", "RECIPE_KEYS", "FAMILIES", "load_family", "family_from", "is_family_spec",
           "sampled_pool", "nb201_family", "nb201_pool"]
