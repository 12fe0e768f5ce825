"""Plain Ray (no Tune): work the core does in-process, spread over Ray tasks for large pools.

Importing this subpackage imports Ray.

Example::

    from ray_nasrank.proxies import ModelProxies
    from ray_nasrank.integrations.ray import RayModelProxies

    weak = RayModelProxies(ModelProxies(build_model, input_shape=(3, 32, 32)), chunk_size=64)
    labels = weak(configs)          # the same values as ModelProxies(...)(configs)
"""

from ._proxies import RayModelProxies

__all__ = ["RayModelProxies"]
