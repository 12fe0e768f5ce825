"""Search spaces: what a configuration is, how to sample, move, validate, encode and convert it.

A :class:`SearchSpace` holds :class:`Decision` objects, each with a domain (:class:`Categorical`,
:class:`Integer`, :class:`Float`, :class:`Normal`) and an optional :class:`Condition`; an
inactive decision holds :data:`INACTIVE`. No Ray or Optuna import happens here; conversions to
Tune and Optuna import them on demand. Spaces are named (``--space nb201``) through the model
families of :mod:`ray_nasrank.families`.
"""

from ._base import Arch, Decision, SearchSpace
from ._categorical import CategoricalSpace, holds_tune_domain, space_from_tune
from ._domains import INACTIVE, Categorical, Condition, Domain, Float, Integer, Normal
from ._nb201 import EDGE_KEYS, EDGES, OPS, PARAMETRIC_OPS, NB201Space, arch_to_str, parse_arch

__all__ = [
    "Arch",
    "Decision",
    "SearchSpace",
    "CategoricalSpace",
    "NB201Space",
    "INACTIVE",
    "Domain",
    "Categorical",
    "Integer",
    "Float",
    "Normal",
    "Condition",
    "space_from_tune",
    "holds_tune_domain",
    "parse_arch",
    "arch_to_str",
    "OPS",
    "EDGES",
    "EDGE_KEYS",
    "PARAMETRIC_OPS",
]

