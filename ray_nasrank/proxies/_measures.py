"""The zero-cost proxy measures, each a function of an initialised network and one batch.

Definitions follow the zero-cost proxy literature (Abdelfattah et al. 2021; Mellor et al. 2021;
NASLib's collection) so that rankings agree with published tables; the code is ours:

* ``params``: trainable parameters, in millions.
* ``flops``: multiply-accumulates of one forward pass on one input, in millions (NB201's
  "FLOPs" convention), counted by :class:`torch.utils.flop_counter.FlopCounterMode`.
* ``synflow``: ``log(sum |theta * dR/dtheta|)`` over conv/linear weights, with all parameters
  made positive, float64, BN as identity (eval mode with fresh statistics) and an all-ones input
  (data-independent). ``-inf`` when the output does not depend on any weight.
* ``snip``: ``sum |theta * dL/dtheta|`` of the cross-entropy loss on the batch.
* ``grad_norm``: sum over conv/linear layers of the L2 norm of ``dL/dW``.
* ``plain``: ``sum theta * dL/dtheta`` (signed).
* ``l2_norm``: sum over conv/linear layers of ``||W||_2``.
* ``naswot``: NASWOT, ``log|det K|`` of the Hamming kernel of the binary ReLU activation codes
  of the batch, summed over every ReLU (NASLib's ``nwot``).
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

_WEIGHTED = (nn.Conv2d, nn.Linear)


def _weighted_layers(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, _WEIGHTED)]


class ProxyContext:
    """One initialised network and one batch; the expensive shared steps are computed once.

    Every measure works on its own deep copy of the initial network, so the order in which
    proxies are computed never changes their values.
    """

    def __init__(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
        self.net = net
        self.x = x
        self.y = y
        self._ce_net: nn.Module | None = None

    def fresh(self) -> nn.Module:
        return copy.deepcopy(self.net)

    def ce_net(self) -> nn.Module:
        """A copy of the network after one cross-entropy backward pass on the batch (train mode)."""
        if self._ce_net is None:
            net = self.fresh().train()
            net.zero_grad(set_to_none=True)
            loss = F.cross_entropy(net(self.x), self.y)
            loss.backward()
            self._ce_net = net
        return self._ce_net


def params(ctx: ProxyContext) -> float:
    return sum(p.numel() for p in ctx.net.parameters() if p.requires_grad) / 1e6


def flops(ctx: ProxyContext) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    net = ctx.fresh().eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        net(ctx.x[:1])
    # the counter reports 2 FLOPs per multiply-accumulate; NB201 tables count MACs
    return counter.get_total_flops() / 2e6


def synflow_linearise(net: nn.Module) -> nn.Module:
    """SynFlow's linearised network, in place: float64, eval mode (BN an affine map) and every
    weight and BN buffer made positive, so the score depends on the wiring and the weights alone."""
    net = net.double().eval()
    with torch.no_grad():
        for t in net.state_dict().values():
            if torch.is_floating_point(t):
                t.abs_()
    return net


def synflow_score(net: nn.Module, output: Callable[[], torch.Tensor],
                  layers: list[nn.Module] | None = None) -> float:
    """``log sum |theta * dR/dtheta|`` over ``layers`` (default: the conv/linear layers of a
    linearised ``net``) with ``R = output().sum()``; ``-inf`` when R depends on no weight."""
    net.zero_grad(set_to_none=True)
    output().sum().backward()
    total = 0.0
    with torch.no_grad():
        for layer in layers if layers is not None else _weighted_layers(net):
            if layer.weight.grad is not None:
                total += float((layer.weight * layer.weight.grad).abs().sum())
    return math.log(total) if total > 0 else float("-inf")


def synflow(ctx: ProxyContext) -> float:
    net = synflow_linearise(ctx.fresh())
    ones = torch.ones((1, *ctx.x.shape[1:]), dtype=torch.float64, device=ctx.x.device)
    return synflow_score(net, lambda: net(ones))


def _sum_layers(net: nn.Module, fn: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor],
                need_grad: bool = True) -> float:
    total = 0.0
    with torch.no_grad():
        for m in _weighted_layers(net):
            if need_grad and m.weight.grad is None:
                continue  # a layer the loss does not reach contributes nothing
            total += float(fn(m.weight, m.weight.grad))
    return total


def snip(ctx: ProxyContext) -> float:
    return _sum_layers(ctx.ce_net(), lambda w, g: (w * g).abs().sum())


def grad_norm(ctx: ProxyContext) -> float:
    return _sum_layers(ctx.ce_net(), lambda w, g: g.norm())


def plain(ctx: ProxyContext) -> float:
    return _sum_layers(ctx.ce_net(), lambda w, g: (w * g).sum())


def l2_norm(ctx: ProxyContext) -> float:
    return _sum_layers(ctx.net, lambda w, g: w.norm(), need_grad=False)


def naswot(ctx: ProxyContext) -> float:
    net = ctx.fresh().train()
    n = ctx.x.shape[0]
    kernel = torch.zeros((n, n), dtype=torch.float64, device=ctx.x.device)

    def hook(_module, inputs, _output):
        codes = (inputs[0].detach().reshape(n, -1) > 0).to(torch.float64)
        # Hamming-similarity kernel: agreements on active plus agreements on inactive units
        kernel.add_(codes @ codes.T).add_((1.0 - codes) @ (1.0 - codes).T)

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, nn.ReLU)]
    try:
        with torch.no_grad():
            net(ctx.x)
    finally:
        for h in handles:
            h.remove()
    _sign, logdet = np.linalg.slogdet(kernel.cpu().numpy())
    return float(logdet)


def jacov(ctx: ProxyContext) -> float:
    net = ctx.fresh().train()
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
    """A named measure; ``data_dependent`` proxies read the batch's images (and labels)."""

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
