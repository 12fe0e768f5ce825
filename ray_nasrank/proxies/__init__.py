"""Zero-cost proxies: scores of an untrained network that correlate with its trained accuracy.

Cheap weak labels for ranking (AceNAS pretraining, RD-NAS teachers) and baselines to beat.
:class:`ModelProxies` scores any model family ``model_fn(config) -> nn.Module``;
:func:`compute_proxies` and :func:`shared_synflow` are the NB201 shortcuts.

>>> from ray_nasrank.proxies import compute_proxies, PROXIES
>>> s = compute_proxies(("nor_conv_3x3",) * 6, names=("params", "flops"), channels=4,
...                     cells_per_stage=1, input_shape=(1, 8, 8), batch_size=4)
>>> s["params"] > 0 and s["flops"] > 0
True
"""

from ._compute import (
    ALIASES,
    DEFAULT_PROXIES,
    compute_proxies,
    compute_proxies_many,
    random_batch,
    resolve_names,
)
from ._measures import PROXIES, Proxy, ProxyContext
from ._model import MODEL_PROXIES, ModelProxies, ModelProxyError, ProxyFailure, canonical_config, drop_missing_columns
from ._nb201 import NB201_INTRINSIC, nb201_intrinsic
from ._shared import SHARED_SYNFLOW_NET, shared_synflow

__all__ = [
    "PROXIES",
    "Proxy",
    "ProxyContext",
    "ALIASES",
    "DEFAULT_PROXIES",
    "compute_proxies",
    "compute_proxies_many",
    "random_batch",
    "resolve_names",
    "shared_synflow",
    "SHARED_SYNFLOW_NET",
    "ModelProxies",
    "ModelProxyError",
    "ProxyFailure",
    "MODEL_PROXIES",
    "drop_missing_columns",
    "canonical_config",
    "nb201_intrinsic",
    "NB201_INTRINSIC",
]
