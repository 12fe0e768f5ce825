"""The zero-cost proxy measures, each a function of an initialised network and one batch.

Definitions follow the zero-cost proxy literature (Abdelfattah et al. 2021; Mellor et al. 2021;
NASLib's collection) so that rankings agree with published tables; the code is ours:

* ``params``: trainable parameters, in millions.
* ``flops``: multiply-accumulates of one forward pass on one input, in millions (NB201's
  "FLOPs" convention), counted by :class:`torch.utils.flop_counter.FlopCounterMode`.
* ``synflow``: ``log(sum |theta * dR/dtheta|)`` over the weight tensors (every parameter with two
  or more dimensions: conv, linear, embedding and attention projections), with all parameters
  made positive, float64, BatchNorm as the affine map of its fresh statistics (eval mode),
  per-sample normalisations (LayerNorm, GroupNorm, InstanceNorm, BatchNorm without running
  statistics) as their affine part only, and an all-ones input (data-independent). ``-inf`` when
  the output does not depend on any weight.
* ``snip``: ``sum |theta * dL/dtheta|`` of the cross-entropy loss on the batch.
* ``grad_norm``: sum over weight tensors of the L2 norm of ``dL/dW``.
* ``plain``: ``sum theta * dL/dtheta`` (signed).
* ``l2_norm``: sum over weight tensors of ``||W||_2``.
* ``naswot``: NASWOT, ``log|det K|`` of the Hamming kernel of the binary activation codes of the
  batch (pre-activation ``> 0``), summed over every rectifier-like activation the forward pass
  calls: ``nn.ReLU`` and ``F.relu`` alike, in-place or not, and GELU, SiLU, ELU, LeakyReLU,
  ReLU6/hardtanh, Hardswish, Mish, PReLU (NASLib's ``nwot``, which sees ``nn.ReLU`` modules
  only). Activations applied to a tensor whose first dimension is not the batch are left out.

Every measure runs on a copy of the network with in-place activations made out-of-place (they
break the backward passes SynFlow and jacov need) and, for the measures that use train mode,
dropout switched off (a random mask would make the score noise); conv/linear-only networks
such as NB201's give the same values as the reference definitions.
* ``jacov``: Jacobian covariance, ``-sum(log(v + k) + 1 / (v + k))`` over the eigenvalues ``v``
  of the correlation matrix of the per-example input gradients, ``k = 1e-5``.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils._python_dispatch import TorchDispatchMode

_DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)
#: normalisations that use the statistics of the sample itself whatever the mode
_PER_SAMPLE_NORM = (nn.LayerNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm)


def weight_tensors(net: nn.Module) -> list[nn.Parameter]:
    """The weights the gradient measures sum over: every parameter with two or more dimensions
    (conv kernels, linear, embedding and attention projection matrices; not biases or norm scales)."""
    return [p for p in net.parameters() if p.dim() >= 2]


def _out_of_place(net: nn.Module) -> nn.Module:
    for m in net.modules():
        if getattr(m, "inplace", False) is True:
            m.inplace = False
    return net


def train_without_dropout(net: nn.Module) -> nn.Module:
    """Train mode (BatchNorm on batch statistics) with every dropout layer off."""
    net.train()
    for m in net.modules():
        if isinstance(m, _DROPOUT):
            m.eval()
    return net


class _AffineOnly(nn.Module):
    """A per-sample normalisation reduced to its affine part, ``x * weight + bias``."""

    def __init__(self, norm: nn.Module) -> None:
        super().__init__()
        self.weight = norm.weight if isinstance(getattr(norm, "weight", None), nn.Parameter) else None
        self.bias = norm.bias if isinstance(getattr(norm, "bias", None), nn.Parameter) else None
        # LayerNorm scales the trailing dimensions, the others the channel dimension 1
        self.trailing = isinstance(norm, nn.LayerNorm)

    def _shape(self, p: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return p if self.trailing else p.reshape(1, -1, *([1] * (x.dim() - 2)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight is not None:
            x = x * self._shape(self.weight, x)
        if self.bias is not None:
            x = x + self._shape(self.bias, x)
        return x


def _affine_only_norms(net: nn.Module) -> nn.Module:
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            per_sample = isinstance(child, _PER_SAMPLE_NORM) and not getattr(child, "track_running_stats", False)
            no_stats = isinstance(child, nn.modules.batchnorm._BatchNorm) and child.running_mean is None
            if per_sample or no_stats:
                setattr(parent, name, _AffineOnly(child))
    return net


class ProxyContext:
    """One initialised network and one batch; the expensive shared steps are computed once.

    Every measure works on its own deep copy of the initial network, so the order in which
    proxies are computed never changes their values.

    Args:
        net: the initialised network (never modified: measures work on copies).
        x: the input batch ``[N, C, H, W]``.
        y: the batch's labels (``None`` for proxies that need none).
        loss_fn: the loss of gradient-based proxies (default: cross-entropy).
    """

    def __init__(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor | None,
                 loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy) -> None:
        self.net = net
        self.x = x
        self.y = y
        self.loss_fn = loss_fn
        self._ce_net: nn.Module | None = None

    def fresh(self) -> nn.Module:
        """A deep copy of the initial network with in-place activations made out-of-place."""
        return _out_of_place(copy.deepcopy(self.net))

    def ce_net(self) -> nn.Module:
        """A copy of the network after one backward pass of the loss (default: cross-entropy) on the
        batch (train mode, dropout off)."""
        if self._ce_net is None:
            if self.y is None:
                raise ValueError("this proxy needs labels (targets) for its loss; none were given")
            net = train_without_dropout(self.fresh())
            net.zero_grad(set_to_none=True)
            loss = self.loss_fn(net(self.x), self.y)
            loss.backward()
            self._ce_net = net
        return self._ce_net


def trainable_params(net: nn.Module) -> int:
    """The number of trainable parameters of ``net``."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def multiply_accumulates(net: nn.Module, x: torch.Tensor) -> float:
    """Multiply-accumulates of one eval-mode pass of ``net`` (put in eval mode) on ``x``."""
    from torch.utils.flop_counter import FlopCounterMode

    net.eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        net(x)
    # the counter reports 2 FLOPs per multiply-accumulate; NB201 tables count MACs
    return counter.get_total_flops() / 2


def params(ctx: ProxyContext) -> float:
    return trainable_params(ctx.net) / 1e6


def flops(ctx: ProxyContext) -> float:
    return multiply_accumulates(ctx.fresh(), ctx.x[:1]) / 1e6


def synflow_linearise(net: nn.Module) -> nn.Module:
    """SynFlow's linearised network, in place: float64, eval mode (BN an affine map), per-sample
    normalisations reduced to their affine part and every weight and BN buffer made positive, so
    the score depends on the wiring and the weights alone."""
    net = _affine_only_norms(_out_of_place(net)).double().eval()
    with torch.no_grad():
        for t in net.state_dict().values():
            if torch.is_floating_point(t):
                t.abs_()
    return net


def synflow_score(net: nn.Module, output: Callable[[], torch.Tensor],
                  weights: list[nn.Parameter] | None = None) -> float:
    """``log sum |theta * dR/dtheta|`` over ``weights`` (default: :func:`weight_tensors` of a
    linearised ``net``) with ``R = output().sum()``; ``-inf`` when R depends on no weight."""
    net.zero_grad(set_to_none=True)
    output().sum().backward()
    total = 0.0
    with torch.no_grad():
        for w in weights if weights is not None else weight_tensors(net):
            if w.grad is not None:
                total += float((w * w.grad).abs().sum())
    return math.log(total) if total > 0 else float("-inf")


def synflow(ctx: ProxyContext) -> float:
    net = synflow_linearise(ctx.fresh())
    ones = torch.ones((1, *ctx.x.shape[1:]), dtype=torch.float64, device=ctx.x.device)
    return synflow_score(net, lambda: net(ones))


def _sum_layers(net: nn.Module, fn: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor],
                need_grad: bool = True) -> float:
    total = 0.0
    with torch.no_grad():
        for w in weight_tensors(net):
            if need_grad and w.grad is None:
                continue  # a weight the loss does not reach contributes nothing
            total += float(fn(w, w.grad))
    return total


def snip(ctx: ProxyContext) -> float:
    return _sum_layers(ctx.ce_net(), lambda w, g: (w * g).abs().sum())


def grad_norm(ctx: ProxyContext) -> float:
    return _sum_layers(ctx.ce_net(), lambda w, g: g.norm())


def plain(ctx: ProxyContext) -> float:
    return _sum_layers(ctx.ce_net(), lambda w, g: (w * g).sum())


def l2_norm(ctx: ProxyContext) -> float:
    return _sum_layers(ctx.net, lambda w, g: w.norm(), need_grad=False)


_aten = torch.ops.aten
#: the rectifier-like activations NASWOT reads codes from (ATen level: modules and functional
#: calls alike, whatever Python API reached them)
_RECTIFIERS = frozenset({
    _aten.relu, _aten.relu_, _aten.gelu, _aten.gelu_, _aten.silu, _aten.silu_, _aten.elu, _aten.elu_,
    _aten.leaky_relu, _aten.leaky_relu_, _aten.hardtanh, _aten.hardtanh_, _aten.hardswish,
    _aten.hardswish_, _aten.mish, _aten.mish_, _aten._prelu_kernel, _aten.celu, _aten.celu_,
})


class _ActivationCodes(TorchDispatchMode):
    """Adds the Hamming kernel of every rectifier's binary input codes to ``kernel``."""

    def __init__(self, kernel: torch.Tensor) -> None:
        super().__init__()
        self.kernel = kernel

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket in _RECTIFIERS and args and isinstance(args[0], torch.Tensor):
            n = self.kernel.shape[0]
            pre = args[0]
            if pre.dim() >= 1 and pre.shape[0] == n:  # read before an in-place op overwrites it
                codes = (pre.detach().reshape(n, -1) > 0).to(torch.float64)
                # Hamming-similarity kernel: agreements on active plus agreements on inactive units
                self.kernel.add_(codes @ codes.T).add_((1.0 - codes) @ (1.0 - codes).T)
        return func(*args, **(kwargs or {}))


def naswot(ctx: ProxyContext) -> float:
    net = train_without_dropout(ctx.fresh())
    n = ctx.x.shape[0]
    kernel = torch.zeros((n, n), dtype=torch.float64, device=ctx.x.device)
    with torch.no_grad(), _ActivationCodes(kernel):
        net(ctx.x)
    _sign, logdet = np.linalg.slogdet(kernel.cpu().numpy())
    return float(logdet)


def jacov(ctx: ProxyContext) -> float:
    net = train_without_dropout(ctx.fresh())
    x = ctx.x.detach().clone().requires_grad_(True)
    out = net(x)
    out.backward(torch.ones_like(out))
    jac = x.grad.reshape(x.shape[0], -1).double().cpu().numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(jac)
    if not np.all(np.isfinite(corr)):
        return float("nan")  # a constant Jacobian row (output independent of the input)
    eig = np.linalg.eigvalsh(corr)
    k = 1e-5
    return float(-np.sum(np.log(eig + k) + 1.0 / (eig + k)))


@dataclass(frozen=True)
class Proxy:
    """A named measure; ``data_dependent`` proxies read the batch's images (and labels).

    Args:
        name: the proxy's canonical name.
        fn: computes the value from a :class:`ProxyContext`.
        data_dependent: the value depends on the batch's images (and labels).
        description: one line saying what it measures.
    """

    name: str
    fn: Callable[[ProxyContext], float]
    data_dependent: bool
    description: str


PROXIES: dict[str, Proxy] = {
    p.name: p
    for p in (
        Proxy("params", params, False, "trainable parameters (M)"),
        Proxy("flops", flops, False, "multiply-accumulates of one forward pass (M)"),
        Proxy("synflow", synflow, False, "log synaptic flow of |theta| on an all-ones input"),
        Proxy("l2_norm", l2_norm, False, "sum of conv/linear weight norms at init"),
        Proxy("snip", snip, True, "sum |theta * dL/dtheta|"),
        Proxy("grad_norm", grad_norm, True, "sum of per-layer gradient norms"),
        Proxy("plain", plain, True, "sum theta * dL/dtheta"),
        Proxy("naswot", naswot, True, "log|det| of the ReLU-code Hamming kernel"),
        Proxy("jacov", jacov, True, "Jacobian covariance score"),
    )
}
