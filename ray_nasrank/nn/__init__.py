"""Networks: the NAS-Bench-201 networks and the choice modules a user writes a model family with.

* :class:`Supernet`: the interface every weight-sharing supernet meets (space, labels, subnets,
  extraction, and the fast paths it offers); the tools of :mod:`ray_nasrank.supernet` take any.
* NAS-Bench-201 (:class:`NB201Network`, :class:`NB201Supernet`, its :class:`BatchedEvaluator`):
  see :mod:`ray_nasrank.nn._nb201`.
* Your own family: :class:`OpChoice`, :class:`WidthChoice` with :class:`SlimConv2d`,
  :class:`SlimLinear`, :class:`SlimBatchNorm1d`/:class:`SlimBatchNorm2d`, :class:`DepthChoice`
  (:func:`skip_choice`) and :class:`ValueChoice`, each with a ``label``; wrap the model in
  :class:`ChoiceSupernet` to get its search space, Tune ``param_space``, subnets and stand-alone
  extracted modules.

>>> import torch
>>> net = NB201Network("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|",
...                    channels=4, cells_per_stage=1, in_channels=1, num_classes=10)
>>> net(torch.zeros(2, 1, 8, 8)).shape
torch.Size([2, 10])
"""

from ._choice import (
    DepthChoice,
    OpChoice,
    SlimBatchNorm1d,
    SlimBatchNorm2d,
    SlimConv2d,
    SlimLinear,
    ValueChoice,
    WidthChoice,
    iter_choices,
    reset_weights,
    skip_choice,
)
from ._nb201 import (
    OP_INDEX,
    OPS_FACTORY,
    NB201Cell,
    NB201Network,
    NB201Supernet,
    ReLUConvBN,
    ResidualBlock,
    SuperCell,
    Zero,
    arch_to_indices,
    count_parameters,
)
from ._nb201_eval import BatchedEvaluator
from ._supernet import ChoiceSupernet, Supernet

__all__ = [
    "OPS_FACTORY",
    "OP_INDEX",
    "ReLUConvBN",
    "Zero",
    "ResidualBlock",
    "NB201Cell",
    "NB201Network",
    "NB201Supernet",
    "BatchedEvaluator",
    "Supernet",
    "SuperCell",
    "arch_to_indices",
    "count_parameters",
    "ValueChoice",
    "WidthChoice",
    "OpChoice",
    "DepthChoice",
    "skip_choice",
    "SlimConv2d",
    "SlimLinear",
    "SlimBatchNorm1d",
    "SlimBatchNorm2d",
    "ChoiceSupernet",
    "iter_choices",
    "reset_weights",
]
