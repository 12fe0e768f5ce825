"""Choice modules: write a model family once, as one weight-sharing supernet.

A *choice* is a named decision (its ``label``) with a finite tuple of candidate values. Three
modules hold choices:

* :class:`OpChoice`: one of several candidate modules (an operation choice);
* width choices: :class:`WidthChoice` values given as the channel/feature counts of
  :class:`SlimConv2d`, :class:`SlimLinear`, :class:`SlimBatchNorm1d` and
  :class:`SlimBatchNorm2d`, which hold the widest layer and use a *prefix slice* of its weights
  (output channels ``[:out]``, input channels ``[:in]``), so every width shares the weights of
  the narrower ones;
* :class:`DepthChoice`: the first ``d`` of a sequence of blocks (``d = 0`` skips them all;
  :func:`skip_choice` is the one-block case).

Choices with the same label are one decision (tied). Any module may also keep a
:class:`ValueChoice` as an attribute and read ``choice.value`` in its ``forward`` (a kernel
size, an activation name, ...). :class:`~ray_nasrank.nn.ChoiceSupernet` collects the choices of
a model, turns them into a search space and runs, trains or extracts one subnet per config.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Sequence

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "ValueChoice",
    "WidthChoice",
    "OpChoice",
    "DepthChoice",
    "skip_choice",
    "SlimConv2d",
    "SlimLinear",
    "SlimBatchNorm1d",
    "SlimBatchNorm2d",
]


def _check_label(label: Any) -> str:
    if not isinstance(label, str) or not label:
        raise ValueError(f"a choice label must be a non-empty string, got {label!r}")
    if "/" in label:
        raise ValueError(f"choice label {label!r} contains '/', which Tune and Optuna use as a path separator")
    return label


class ValueChoice:
    """A named decision among ``candidates``; ``value`` is the candidate of the active subnet.

    Not a module (it holds no weights), so one object may be shared by many layers: that ties
    their decision. ``value`` outside an active subnet is an error that names the label.

    Args:
        label: the decision's name (a config key; non-empty, without ``/``).
        candidates: the values, at least one, no duplicates.

    Raises:
        ValueError: an invalid label, no candidate, or duplicate candidates.

    >>> k = ValueChoice("kernel", [3, 5])
    >>> k.activate(5); k.value
    5
    """

    def __init__(self, label: str, candidates: Sequence[Any]) -> None:
        self.label = _check_label(label)
        self.candidates = tuple(candidates)
        if not self.candidates:
            raise ValueError(f"choice {label!r} has no candidates")
        if len(set(map(repr, self.candidates))) != len(self.candidates):
            raise ValueError(f"choice {label!r} has duplicate candidates: {list(self.candidates)}")
        self._value: Any = _UNSET

    @property
    def value(self) -> Any:
        if self._value is _UNSET:
            raise RuntimeError(f"choice {self.label!r} has no active value: run the model through "
                               "ChoiceSupernet(model)(x, config) or extract a subnet")
        return self._value

    def activate(self, value: Any) -> None:
        if value not in self.candidates:
            raise ValueError(f"unknown value {value!r} for choice {self.label!r}; candidates are "
                             f"{list(self.candidates)}")
        self._value = value

    def deactivate(self) -> None:
        self._value = _UNSET

    @property
    def active(self) -> bool:
        return self._value is not _UNSET

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.label!r}, {list(self.candidates)})"


class _Unset:
    def __repr__(self) -> str:
        return "unset"


_UNSET = _Unset()


class WidthChoice(ValueChoice):
    """A channel or feature count chosen among positive integers (kept in the given order).

    Args:
        label: the decision's name.
        candidates: the widths, positive integers.

    Raises:
        ValueError: an invalid label, no candidate, duplicates, or a width that is not a
            positive integer.

    >>> WidthChoice("w1", [16, 32]).max
    32
    """

    def __init__(self, label: str, candidates: Sequence[int]) -> None:
        super().__init__(label, candidates)
        for c in self.candidates:
            if isinstance(c, bool) or not isinstance(c, int) or c < 1:
                raise ValueError(f"width choice {label!r} needs positive integer candidates, got {c!r}")
        self.max = max(self.candidates)


Width = int | WidthChoice


def _max(w: Width) -> int:
    return w.max if isinstance(w, WidthChoice) else int(w)


def _now(w: Width) -> int:
    return w.value if isinstance(w, WidthChoice) else int(w)


class OpChoice(nn.Module):
    """One of several candidate modules; the candidate names are the choice's values.

    ``candidates``: a mapping ``name -> module`` (names are strings) or a sequence of modules
    (values ``0, 1, ...``). Every candidate keeps its own weights.

    Args:
        candidates: ``name -> module`` or a sequence of modules.
        label: the decision's name.

    Raises:
        ValueError: an invalid label, no candidate, or a name that is not a non-empty string.
        TypeError: a candidate is not an ``nn.Module``.

    >>> op = OpChoice({"conv3": nn.Conv2d(4, 4, 3, padding=1), "skip": nn.Identity()}, label="op1")
    >>> op.choice.candidates
    ('conv3', 'skip')
    """

    def __init__(self, candidates: Mapping[str, nn.Module] | Sequence[nn.Module], label: str) -> None:
        super().__init__()
        if isinstance(candidates, Mapping):
            names = list(candidates)
            if not all(isinstance(n, str) and n for n in names):
                raise ValueError(f"OpChoice {label!r}: candidate names must be non-empty strings, got {names}")
            modules = list(candidates.values())
        else:
            modules = list(candidates)
            names = list(range(len(modules)))
        for name, m in zip(names, modules):
            if not isinstance(m, nn.Module):
                raise TypeError(f"OpChoice {label!r}: candidate {name!r} is a {type(m).__name__}, not an nn.Module")
        self.choice = ValueChoice(label, names)
        self.candidates = nn.ModuleDict({str(n): m for n, m in zip(names, modules)})

    @property
    def label(self) -> str:
        return self.choice.label

    def chosen(self) -> nn.Module:
        return self.candidates[str(self.choice.value)]

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.chosen()(*args, **kwargs)


class DepthChoice(nn.Module):
    """The first ``d`` blocks of ``blocks``, run in sequence; ``d`` is chosen among ``depths``
    (default ``1 .. len(blocks)``; ``0`` runs none of them, an identity).

    Args:
        blocks: the blocks, in the order they run.
        label: the decision's name.
        depths: the depths to choose among (``None``: ``1 .. len(blocks)``).

    Raises:
        ValueError: no block, a depth outside ``0 .. len(blocks)``, or an invalid label.

    >>> d = DepthChoice([nn.Linear(4, 4) for _ in range(3)], label="depth")
    >>> d.choice.candidates
    (1, 2, 3)
    """

    def __init__(self, blocks: Sequence[nn.Module], label: str, depths: Sequence[int] | None = None) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        if not len(self.blocks):
            raise ValueError(f"DepthChoice {label!r} needs at least one block")
        depths = tuple(range(1, len(self.blocks) + 1)) if depths is None else tuple(depths)
        for d in depths:
            if isinstance(d, bool) or not isinstance(d, int) or not 0 <= d <= len(self.blocks):
                raise ValueError(f"DepthChoice {label!r}: depth {d!r} is not an integer in 0..{len(self.blocks)}")
        self.choice = ValueChoice(label, depths)

    @property
    def label(self) -> str:
        return self.choice.label

    def forward(self, x: Any) -> Any:
        for block in self.blocks[: self.choice.value]:
            x = block(x)
        return x


def skip_choice(block: nn.Module, label: str) -> DepthChoice:
    """``block`` or nothing (an identity): a depth choice over one block with values 0 and 1.

    Args:
        block: the optional block.
        label: the decision's name.

    Returns:
        The :class:`DepthChoice`.

    Raises:
        ValueError: an invalid label.
    """
    return DepthChoice([block], label=label, depths=(0, 1))


class SlimConv2d(nn.Conv2d):
    """A Conv2d whose ``in_channels``/``out_channels`` may be :class:`WidthChoice` values: it
    holds the widest kernel and convolves with the prefix slice ``weight[:out, :in]``.

    Args:
        in_channels: input channels, an int or a :class:`WidthChoice`.
        out_channels: output channels, an int or a :class:`WidthChoice`.
        kernel_size: as for ``nn.Conv2d``.
        stride: as for ``nn.Conv2d``.
        padding: as for ``nn.Conv2d``.
        dilation: as for ``nn.Conv2d``.
        groups: as for ``nn.Conv2d`` (must be 1 with a width choice).
        bias: as for ``nn.Conv2d``.
        padding_mode: as for ``nn.Conv2d``.

    Raises:
        ValueError: ``groups != 1`` with a width choice.

    >>> w = WidthChoice("c", [4, 8])
    >>> conv = SlimConv2d(3, w, 3, padding=1); w.activate(4)
    >>> conv(torch.zeros(1, 3, 5, 5)).shape
    torch.Size([1, 4, 5, 5])
    """

    def __init__(self, in_channels: Width, out_channels: Width, kernel_size: int | tuple, stride: int | tuple = 1,
                 padding: int | tuple | str = 0, dilation: int | tuple = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros") -> None:
        if groups != 1 and (isinstance(in_channels, WidthChoice) or isinstance(out_channels, WidthChoice)):
            raise ValueError("SlimConv2d with a width choice needs groups=1")
        super().__init__(_max(in_channels), _max(out_channels), kernel_size, stride=stride, padding=padding,
                         dilation=dilation, groups=groups, bias=bias, padding_mode=padding_mode)
        self.in_width, self.out_width = in_channels, out_channels

    def _sliced(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        o, i = _now(self.out_width), _now(self.in_width)
        return self.weight[:o, :i], None if self.bias is None else self.bias[:o]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, b = self._sliced()
        return self._conv_forward(x, w, b)

    def to_plain(self) -> nn.Conv2d:
        w, b = self._sliced()
        out = nn.Conv2d(w.shape[1] * self.groups, w.shape[0], self.kernel_size, stride=self.stride,
                        padding=self.padding, dilation=self.dilation, groups=self.groups, bias=b is not None,
                        padding_mode=self.padding_mode)
        return _load(out, {"weight": w, "bias": b}, self)


class SlimLinear(nn.Linear):
    """A Linear whose ``in_features``/``out_features`` may be :class:`WidthChoice` values (prefix
    slice ``weight[:out, :in]`` of the widest layer).

    Args:
        in_features: an int or a :class:`WidthChoice`.
        out_features: an int or a :class:`WidthChoice`.
        bias: as for ``nn.Linear``.
    """

    def __init__(self, in_features: Width, out_features: Width, bias: bool = True) -> None:
        super().__init__(_max(in_features), _max(out_features), bias=bias)
        self.in_width, self.out_width = in_features, out_features

    def _sliced(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        o, i = _now(self.out_width), _now(self.in_width)
        return self.weight[:o, :i], None if self.bias is None else self.bias[:o]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, b = self._sliced()
        return F.linear(x, w, b)

    def to_plain(self) -> nn.Linear:
        w, b = self._sliced()
        return _load(nn.Linear(w.shape[1], w.shape[0], bias=b is not None), {"weight": w, "bias": b}, self)


class _SlimBatchNorm:
    """BatchNorm over the first ``num_features.value`` channels of the widest layer; running
    statistics are updated in place in that prefix (each width shares the narrower ones')."""

    plain: type

    def __init__(self, num_features: Width, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True) -> None:
        # the widest layer holds the weights and statistics every narrower width slices
        self.plain.__init__(self, _max(num_features), eps=eps, momentum=momentum, affine=affine,
                            track_running_stats=track_running_stats)
        self.width = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        c = _now(self.width)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        use_batch = self.training or self.running_mean is None
        return F.batch_norm(
            x,
            None if self.running_mean is None else self.running_mean[:c],
            None if self.running_var is None else self.running_var[:c],
            None if self.weight is None else self.weight[:c],
            None if self.bias is None else self.bias[:c],
            use_batch, factor, self.eps)

    def to_plain(self) -> nn.Module:
        c = _now(self.width)
        out = self.plain(c, eps=self.eps, momentum=self.momentum, affine=self.affine,
                         track_running_stats=self.track_running_stats)
        state = {k: (v[:c] if v.dim() else v) for k, v in self.state_dict().items()}
        return _load(out, state, self)


class SlimBatchNorm1d(_SlimBatchNorm, nn.BatchNorm1d):
    """BatchNorm1d whose ``num_features`` may be a :class:`WidthChoice` (prefix slice).

    Args:
        num_features: an int or a :class:`WidthChoice`.
        eps: as for ``nn.BatchNorm1d``.
        momentum: as for ``nn.BatchNorm1d``.
        affine: as for ``nn.BatchNorm1d``.
        track_running_stats: as for ``nn.BatchNorm1d``.
    """

    plain = nn.BatchNorm1d


class SlimBatchNorm2d(_SlimBatchNorm, nn.BatchNorm2d):
    """BatchNorm2d whose ``num_features`` may be a :class:`WidthChoice` (prefix slice).

    Args:
        num_features: an int or a :class:`WidthChoice`.
        eps: as for ``nn.BatchNorm2d``.
        momentum: as for ``nn.BatchNorm2d``.
        affine: as for ``nn.BatchNorm2d``.
        track_running_stats: as for ``nn.BatchNorm2d``.
    """

    plain = nn.BatchNorm2d


def _load(module: nn.Module, state: Mapping[str, torch.Tensor | None], like: nn.Module) -> nn.Module:
    p = next(iter(like.parameters()), None)
    if p is not None:
        module = module.to(device=p.device, dtype=p.dtype)
    with torch.no_grad():
        own = module.state_dict()
        for k, v in state.items():
            if v is not None and k in own:
                own[k].copy_(v)
    return module.train(like.training)


#: modules that hold weights of several widths and turn into a plain layer for one of them
SLIM_LAYERS = (SlimConv2d, SlimLinear, SlimBatchNorm1d, SlimBatchNorm2d)


def iter_choices(model: nn.Module) -> Iterator[ValueChoice]:
    """Every choice object of ``model`` in module order (a shared object once; a label may
    appear on several objects, which then form one decision).

    Args:
        model: any module.

    Yields:
        Each :class:`ValueChoice` (width choices included) held by a module of ``model``.
    """
    seen: set[int] = set()
    for m in model.modules():
        for v in vars(m).values():
            if isinstance(v, ValueChoice) and id(v) not in seen:
                seen.add(id(v))
                yield v


def reset_weights(model: nn.Module) -> nn.Module:
    """Re-initialise every layer of ``model`` the way its constructor does (``reset_parameters``),
    e.g. to train an extracted subnet from scratch at its own fan-in.

    Args:
        model: the module to re-initialise in place.

    Returns:
        ``model`` itself.
    """
    for m in model.modules():
        if hasattr(m, "reset_parameters") and callable(m.reset_parameters):
            m.reset_parameters()
    return model
