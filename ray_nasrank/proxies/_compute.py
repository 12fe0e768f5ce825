"""Computing zero-cost proxies for one architecture or many."""

from __future__ import annotations

import time
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from ._measures import PROXIES, ProxyContext

#: other names in use for the same measures (NASLib's column names)
ALIASES: dict[str, str] = {"nwot": "naswot", "jacob_cov": "jacov", "grad-norm": "grad_norm"}
#: the default set: the data-independent and the best-known data-dependent proxies
DEFAULT_PROXIES: tuple[str, ...] = ("params", "flops", "synflow", "snip", "grad_norm", "naswot", "jacov")


def resolve_names(names: Iterable[str] | str) -> tuple[str, ...]:
    """Validate proxy names (aliases allowed) and return canonical ones, order kept, no repeats.

    Args:
        names: one name or several.

    Returns:
        The canonical names.

    Raises:
        TypeError: a name is not a string.
        ValueError: an unknown name (the message lists the known ones), or no name.
    """
    if isinstance(names, str):
        names = [names]
    out: list[str] = []
    for n in names:
        if not isinstance(n, str):
            raise TypeError(f"proxy names must be strings, got {type(n).__name__}: {n!r}")
        key = ALIASES.get(n, n)
        if key not in PROXIES:
            raise ValueError(f"unknown proxy {n!r}; known proxies: {sorted(PROXIES)} "
                             f"(aliases: {sorted(ALIASES)})")
        if key not in out:
            out.append(key)
    if not out:
        raise ValueError("no proxy names given")
    return tuple(out)


def random_batch(batch_size: int, input_shape: Sequence[int], num_classes: int, seed: int,
                 device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """A standard-normal image batch with uniform random labels, fixed by ``seed``.

    Stands in for real data where none is at hand (e.g. CIFAR-10 for NB201 tables).

    Args:
        batch_size: number of examples (>= 2: NASWOT and jacov need pairs).
        input_shape: ``(C, H, W)`` of one example.
        num_classes: labels are drawn from ``0 .. num_classes - 1``.
        seed: fixes the batch.
        device: where the tensors go.

    Returns:
        ``(x, y)``: float images ``[batch_size, *input_shape]`` and long labels ``[batch_size]``.

    Raises:
        ValueError: ``batch_size`` is not an integer >= 2.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 2:
        raise ValueError(f"batch_size must be an integer >= 2 (NASWOT/jacov need pairs), got {batch_size!r}")
    g = torch.Generator().manual_seed(int(seed))
    x = torch.randn((int(batch_size), *input_shape), generator=g)
    y = torch.randint(0, num_classes, (int(batch_size),), generator=g)
    return x.to(device), y.to(device)


def _check_batch(batch: Any, input_shape: Sequence[int] | None, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise TypeError(f"batch must be an (x, y) pair of tensors, got {type(batch).__name__}")
    x, y = batch
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError(f"batch must hold tensors, got ({type(x).__name__}, {type(y).__name__})")
    if x.dim() != 4 or x.shape[0] < 2:
        raise ValueError(f"batch x must be [N >= 2, C, H, W], got shape {tuple(x.shape)}")
    if y.shape != (x.shape[0],):
        raise ValueError(f"batch y must be [N] = [{x.shape[0]}], got shape {tuple(y.shape)}")
    if input_shape is not None and tuple(x.shape[1:]) != tuple(input_shape):
        raise ValueError(f"batch images are {tuple(x.shape[1:])} but input_shape is {tuple(input_shape)}")
    if y.dtype != torch.long or int(y.min()) < 0 or int(y.max()) >= num_classes:
        raise ValueError(f"batch y must be long class indices in [0, {num_classes}), got "
                         f"dtype {y.dtype}, range [{int(y.min())}, {int(y.max())}]")
    return x.float(), y


def _check_shape(input_shape: Sequence[int]) -> tuple[int, int, int]:
    shape = tuple(input_shape)
    if len(shape) != 3 or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in shape):
        raise ValueError(f"input_shape must be (C, H, W) positive integers, got {input_shape!r}")
    return tuple(int(s) for s in shape)  # type: ignore[return-value]


def _build(arch: Any, channels: int, cells_per_stage: int, in_channels: int, num_classes: int,
           seed: int, device: torch.device) -> nn.Module:
    # the initial weights depend only on ``seed``, never on the caller's global RNG state
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        if isinstance(arch, nn.Module):
            import copy

            net = copy.deepcopy(arch)
        else:
            from ray_nasrank.nn import NB201Network

            net = NB201Network(arch, channels=channels, cells_per_stage=cells_per_stage,
                               in_channels=in_channels, num_classes=num_classes)
    return net.to(device)


def compute_proxies(arch: Any, names: Iterable[str] | str = DEFAULT_PROXIES,
                    batch: tuple[torch.Tensor, torch.Tensor] | None = None, channels: int = 16,
                    cells_per_stage: int = 5, input_shape: Sequence[int] = (3, 32, 32),
                    num_classes: int = 10, seed: int = 0, batch_size: int = 64,
                    device: str | torch.device = "cpu", timings: dict[str, float] | None = None
                    ) -> dict[str, float]:
    """Zero-cost proxies of one architecture at initialisation.

    ``arch`` is an NB201 arch (string, 6-tuple or config), built as
    ``NB201Network(arch, channels, cells_per_stage, input_shape[0], num_classes)`` with weights
    drawn from ``seed``; or any ``nn.Module`` (used as is, deep-copied). ``batch`` is an ``(x, y)``
    pair; without it a seeded random-normal batch of ``batch_size`` with random labels is used.
    Pass a dict as ``timings`` to receive the seconds each proxy took.

    Args:
        arch: an NB201 arch (string, 6-tuple or config) or any ``nn.Module``.
        names: the proxies to compute (aliases allowed).
        batch: an ``(x, y)`` pair of tensors (``None``: a seeded random batch).
        channels: stem channels of the NB201 network built from ``arch``.
        cells_per_stage: cells per stage of that network.
        input_shape: ``(C, H, W)`` of one example.
        num_classes: number of classes (>= 2).
        seed: seeds the initial weights, the random batch and any randomness of the proxies.
        batch_size: size of the random batch.
        device: where the network and batch live.
        timings: filled with the seconds each proxy took, by name.

    Returns:
        The value of each proxy, by canonical name, in the order asked.

    Raises:
        TypeError: a name is not a string, or ``batch`` is not a pair of tensors.
        ValueError: an unknown proxy, a malformed ``input_shape`` or ``batch``, ``num_classes < 2``,
            ``batch_size < 2``, an invalid NB201 ``arch`` or an invalid ``device``.

    >>> s = compute_proxies("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|",
    ...                     names=("params", "synflow"), channels=4, cells_per_stage=1,
    ...                     input_shape=(1, 8, 8), batch_size=8)
    >>> sorted(s)
    ['params', 'synflow']
    """
    names = resolve_names(names)
    shape = _check_shape(input_shape)
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    from ray_nasrank.data import resolve_device

    dev = resolve_device(device)
    if batch is None:
        x, y = random_batch(batch_size, shape, int(num_classes), seed, dev)
    else:
        x, y = _check_batch(batch, None if isinstance(arch, nn.Module) else shape, int(num_classes))
        x, y = x.to(dev), y.to(dev)
    net = _build(arch, channels, cells_per_stage, int(x.shape[1]), int(num_classes), seed, dev)
    ctx = ProxyContext(net, x, y)
    out: dict[str, float] = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        for name in names:
            t0 = time.perf_counter()
            out[name] = float(PROXIES[name].fn(ctx))
            if timings is not None:
                timings[name] = time.perf_counter() - t0
    return out


def compute_proxies_many(archs: Sequence[Any], names: Iterable[str] | str = DEFAULT_PROXIES,
                         progress: bool = True, with_timings: bool = False, **kwargs: Any):
    """Proxies of many architectures as a DataFrame: ``arch`` (string) plus one column per proxy.

    ``kwargs`` go to :func:`compute_proxies` (the same ``seed`` and batch for every arch, so the
    scores are comparable). ``with_timings`` adds ``seconds_<proxy>`` columns.

    Args:
        archs: NB201 archs (strings, 6-tuples or configs).
        names: the proxies to compute (aliases allowed).
        progress: show a progress bar.
        with_timings: add a ``seconds_<proxy>`` column per proxy.
        **kwargs: passed to :func:`compute_proxies`.

    Returns:
        A pandas DataFrame with one row per arch, in order.

    Raises:
        ValueError: no architecture, an invalid arch, or as for :func:`compute_proxies`.
        TypeError: as for :func:`compute_proxies`.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from ray_nasrank.spaces import NB201Space

    names = resolve_names(names)
    space = NB201Space()
    archs = list(archs)
    if not archs:
        raise ValueError("no architectures given")
    rows = []
    for arch in tqdm(archs, desc="proxies", disable=not progress, unit="arch"):
        t: dict[str, float] = {}
        row: dict[str, Any] = {"arch": space.to_string(space.validate(arch))}
        row.update(compute_proxies(arch, names, timings=t, **kwargs))
        if with_timings:
            row.update({f"seconds_{k}": v for k, v in t.items()})
        rows.append(row)
    return pd.DataFrame(rows)
