"""Ranking losses for one list of items: a 1-D score tensor against 1-D targets.

All losses take ``scores`` (model outputs, higher = better) and ``targets`` (higher = better)
of the same length and return a scalar tensor. Pairwise and listwise losses only use the order
of ``targets``; :func:`lambdarank_loss` takes graded *relevance* (e.g. AceNAS relevance from
:func:`ray_nasrank.metrics.acenas_relevance`), :func:`mse_loss` expects standardised targets.

>>> import torch
>>> s = torch.tensor([3.0, 2.0, 1.0], requires_grad=True)
>>> float(ranknet_loss(s, torch.tensor([0.9, 0.5, 0.1]))) < float(ranknet_loss(-s, torch.tensor([0.9, 0.5, 0.1])))
True
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

LossFn = Callable[..., torch.Tensor]

#: the least number of labelled items each loss can learn from
MIN_ITEMS = {"lambdarank": 2, "ranknet": 2, "listmle": 2, "listnet": 2, "margin": 2, "mse": 2}


def _check(scores: torch.Tensor, targets: torch.Tensor) -> None:
    if scores.dim() != 1 or targets.dim() != 1:
        raise ValueError(f"scores and targets must be 1-D, got shapes {tuple(scores.shape)} and {tuple(targets.shape)}")
    if scores.shape != targets.shape:
        raise ValueError(f"{scores.numel()} scores but {targets.numel()} targets")


def _pair_mask(targets: torch.Tensor) -> torch.Tensor:
    """``mask[i, j]`` is True where item i should rank above item j."""
    return targets[:, None] > targets[None, :]


def _zero(scores: torch.Tensor) -> torch.Tensor:
    # keeps the graph connected so backward() works and yields exact zeros
    return scores.sum() * 0.0


def lambdarank_loss(scores: torch.Tensor, relevance: torch.Tensor, sigma: float = 1.0,
                    k: int | None = None) -> torch.Tensor:
    """LambdaRank: RankNet pair losses weighted by the NDCG change of swapping the pair.

    ``|dNDCG_ij| = |gain_i - gain_j| * |disc_i - disc_j| / IDCG`` with gain ``2**rel - 1`` and
    discount ``1 / log2(rank + 2)`` at the items' current ranks (by ``scores``). With ``k`` set
    (NDCG@k truncation) discounts beyond rank ``k`` are zero, so pairs that both sit below the cut
    carry no gradient. Pairs of equal relevance never contribute. The sum is divided by the
    number of items.

    Args:
        scores: predicted scores ``[n]`` (higher is better).
        relevance: graded relevance ``[n]`` (higher is better).
        sigma: steepness of the pairwise logistic loss.
        k: NDCG@k truncation (``None``: the whole list).

    Returns:
        The scalar loss (zero, still differentiable, when no pair is ordered).

    Raises:
        ValueError: ``scores`` and ``relevance`` are not 1-D of one length, or ``k < 1``.
    """
    _check(scores, relevance)
    rel = relevance.to(scores.dtype)
    n = scores.numel()
    gains = torch.pow(2.0, rel) - 1.0
    with torch.no_grad():
        order = torch.argsort(scores.detach(), descending=True, stable=True)
        rank = torch.empty_like(order)
        rank[order] = torch.arange(n, device=scores.device)
        disc = 1.0 / torch.log2(rank.to(scores.dtype) + 2.0)
        ideal_disc = 1.0 / torch.log2(torch.arange(n, device=scores.device, dtype=scores.dtype) + 2.0)
        if k is not None:
            if k < 1:
                raise ValueError(f"NDCG truncation k must be >= 1, got {k}")
            disc = torch.where(rank < k, disc, torch.zeros_like(disc))
            ideal_disc[k:] = 0.0
        idcg = (torch.sort(gains, descending=True).values * ideal_disc).sum()
        if float(idcg) <= 0.0:
            return _zero(scores)
        delta = (gains[:, None] - gains[None, :]).abs() * (disc[:, None] - disc[None, :]).abs() / idcg
        weight = delta * _pair_mask(rel)
    diff = scores[:, None] - scores[None, :]
    return (weight * F.softplus(-sigma * diff)).sum() / n


def ranknet_loss(scores: torch.Tensor, targets: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """RankNet: mean logistic loss over all ordered pairs ``targets_i > targets_j``.

    Args:
        scores: predicted scores ``[n]`` (higher is better).
        targets: true values ``[n]`` (higher is better).
        sigma: steepness of the logistic loss.

    Returns:
        The scalar loss (zero, still differentiable, when no pair is ordered).

    Raises:
        ValueError: ``scores`` and ``targets`` are not 1-D of one length.
    """
    _check(scores, targets)
    mask = _pair_mask(targets)
    if not bool(mask.any()):
        return _zero(scores)
    diff = scores[:, None] - scores[None, :]
    return F.softplus(-sigma * diff)[mask].mean()


def margin_loss(scores: torch.Tensor, targets: torch.Tensor, margin: float = 0.1) -> torch.Tensor:
    """Margin ranking: mean ``relu(margin - (s_i - s_j))`` over ordered pairs (zero once separated).

    Args:
        scores: predicted scores ``[n]`` (higher is better).
        targets: true values ``[n]`` (higher is better).
        margin: the score gap an ordered pair must keep.

    Returns:
        The scalar loss (zero, still differentiable, when no pair is ordered).

    Raises:
        ValueError: ``scores`` and ``targets`` are not 1-D of one length.
    """
    _check(scores, targets)
    mask = _pair_mask(targets)
    if not bool(mask.any()):
        return _zero(scores)
    diff = scores[:, None] - scores[None, :]
    return F.relu(margin - diff)[mask].mean()


def listmle_loss(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """ListMLE: negative Plackett-Luce log-likelihood of the true order, per item.

    Args:
        scores: predicted scores ``[n]`` (higher is better).
        targets: true values ``[n]`` (higher is better).

    Returns:
        The scalar loss.

    Raises:
        ValueError: ``scores`` and ``targets`` are not 1-D of one length.
    """
    _check(scores, targets)
    order = torch.argsort(targets, descending=True, stable=True)
    s = scores[order]
    # log-sum-exp of each suffix s[i:], computed as a reversed cumulative logsumexp
    suffix = torch.logcumsumexp(s.flip(0), dim=0).flip(0)
    return (suffix - s).mean()


def listnet_loss(scores: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """ListNet (top-1): cross-entropy between ``softmax(targets / T)`` and ``softmax(scores)``.

    Args:
        scores: predicted scores ``[n]`` (higher is better).
        targets: true values ``[n]`` (higher is better).
        temperature: ``T``, the softness of the target distribution.

    Returns:
        The scalar loss.

    Raises:
        ValueError: ``scores`` and ``targets`` are not 1-D of one length.
    """
    _check(scores, targets)
    p_true = torch.softmax(targets.to(scores.dtype) / temperature, dim=0)
    return -(p_true * torch.log_softmax(scores, dim=0)).sum()


def mse_loss(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Plain regression: mean squared error (pass standardised targets).

    Args:
        scores: predicted scores ``[n]`` (higher is better).
        targets: true values ``[n]``.

    Returns:
        The scalar loss.

    Raises:
        ValueError: ``scores`` and ``targets`` are not 1-D of one length.
    """
    _check(scores, targets)
    return F.mse_loss(scores, targets.to(scores.dtype))


LOSSES: dict[str, LossFn] = {
    "lambdarank": lambdarank_loss,
    "ranknet": ranknet_loss,
    "listmle": listmle_loss,
    "listnet": listnet_loss,
    "margin": margin_loss,
    "mse": mse_loss,
}


def get_loss(name: str) -> LossFn:
    """The loss function called ``name`` (one of :data:`LOSSES`).

    Args:
        name: ``lambdarank``, ``ranknet``, ``listmle``, ``listnet``, ``margin`` or ``mse``.

    Returns:
        The loss function ``(scores, targets, ...) -> scalar tensor``.

    Raises:
        ValueError: an unknown name.
    """
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; choose from {sorted(LOSSES)}") from None


__all__ = [
    "LOSSES",
    "MIN_ITEMS",
    "get_loss",
    "lambdarank_loss",
    "ranknet_loss",
    "margin_loss",
    "listmle_loss",
    "listnet_loss",
    "mse_loss",
]
