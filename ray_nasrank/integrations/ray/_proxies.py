"""Model weak labels of a large pool of configs, computed in parallel Ray tasks."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import ray

from ray_nasrank.proxies import ModelProxies


@ray.remote
def _score_chunk(proxies: ModelProxies, configs: list[dict]) -> list:
    import torch

    # a task holds one CPU: torch must not spread over every core of the node
    torch.set_num_threads(1)
    return [proxies.compute(c) for c in configs]


class RayModelProxies:
    """:class:`~ray_nasrank.proxies.ModelProxies` whose cache misses are scored in Ray tasks.

    The configs not cached yet are cut into chunks of ``chunk_size``; each chunk is one task
    (``num_cpus`` each) holding a cache-free copy of ``proxies`` (sent once through the object
    store). Results go into ``proxies``' own cache and :attr:`~ModelProxies.failures`, so the
    values equal an in-process call's and later calls are free. Pools of at most ``min_parallel``
    new configs are scored in-process (a task costs more than a few small models).

    Args:
        proxies: the in-process scorer whose cache and failures are filled.
        chunk_size: configs per Ray task.
        num_cpus: CPUs per Ray task.
        min_parallel: pools of at most this many uncached configs are scored in-process.

    Raises:
        TypeError: ``proxies`` is not a :class:`~ray_nasrank.proxies.ModelProxies`.
        ValueError: ``chunk_size`` is not a positive integer.
    """

    def __init__(self, proxies: ModelProxies, chunk_size: int = 32, num_cpus: float = 1,
                 min_parallel: int = 16) -> None:
        if not isinstance(proxies, ModelProxies):
            raise TypeError(f"proxies must be a ModelProxies, got {type(proxies).__name__}")
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
        self.proxies = proxies
        self.chunk_size = chunk_size
        self.num_cpus = num_cpus
        self.min_parallel = min_parallel

    @property
    def names(self) -> tuple[str, ...]:
        return self.proxies.names

    def __call__(self, configs: Sequence[Mapping]) -> dict[str, np.ndarray]:
        configs = list(configs)
        todo = self.proxies.missing(configs)
        if len(todo) > self.min_parallel:
            worker = ray.put(self.proxies.spawn())
            chunks = [todo[i:i + self.chunk_size] for i in range(0, len(todo), self.chunk_size)]
            refs = [_score_chunk.options(num_cpus=self.num_cpus).remote(worker, c) for c in chunks]
            for chunk, results in zip(chunks, ray.get(refs)):
                for config, (values, failures) in zip(chunk, results):
                    self.proxies.store(config, values, failures)
        return self.proxies(configs)
