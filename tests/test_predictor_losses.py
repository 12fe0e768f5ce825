"""Ranking losses on hand-made examples."""

from __future__ import annotations

import math

import pytest
import torch

from ray_nasrank.predictor import LOSSES, get_loss
from ray_nasrank.predictor.losses import (
    lambdarank_loss,
    listmle_loss,
    listnet_loss,
    margin_loss,
    mse_loss,
    ranknet_loss,
)


def _grad(fn, scores, targets, **kw):
    s = torch.tensor(scores, dtype=torch.float64, requires_grad=True)
    loss = fn(s, torch.tensor(targets, dtype=torch.float64), **kw)
    loss.backward()
    return float(loss.detach()), s.grad


def test_lambdarank_two_items_by_hand():
    # rel [1, 0], tied scores: stable order keeps item 0 first; |dNDCG| = (2^1-1)*(1-1/log2 3)/IDCG(=1)
    loss, grad = _grad(lambdarank_loss, [0.0, 0.0], [1.0, 0.0], sigma=1.0)
    delta = 1.0 - 1.0 / math.log2(3.0)
    assert loss == pytest.approx(delta * math.log(2.0) / 2)
    # d/ds0 of delta*softplus(-(s0-s1))/2 at 0 = -delta/4; item 0 is pushed up, item 1 down
    assert grad[0].item() == pytest.approx(-delta / 4)
    assert grad[1].item() == pytest.approx(delta / 4)


def test_lambdarank_perfect_ranking_has_zero_gradient():
    rel = [20.0, 12.0, 5.0, 0.0]
    _, grad = _grad(lambdarank_loss, [30.0, 20.0, 10.0, 0.0], rel, sigma=8.0)
    assert torch.all(grad.abs() < 1e-12), grad
    # the reversed ranking is far from zero and pushes the most relevant item up
    _, grad_rev = _grad(lambdarank_loss, [0.0, 10.0, 20.0, 30.0], rel, sigma=8.0)
    assert grad_rev[0] < -0.1 and grad_rev[3] > 0.0


def test_lambdarank_equal_relevance_is_exactly_zero():
    loss, grad = _grad(lambdarank_loss, [0.3, -1.0, 2.0], [5.0, 5.0, 5.0])
    assert loss == 0.0
    assert torch.count_nonzero(grad) == 0


def test_lambdarank_truncation_ignores_pairs_below_k():
    # item 0 is right at the top by a wide margin; items 1..3 are in reverse order
    scores, rel = [40.0, 0.0, 1.0, 2.0], [3.0, 2.0, 1.0, 0.0]
    _, g_trunc = _grad(lambdarank_loss, scores, rel, sigma=1.0, k=1)
    _, g_full = _grad(lambdarank_loss, scores, rel, sigma=1.0)
    assert torch.all(g_trunc[1:].abs() < 1e-12)
    assert g_full[1] < -1e-3  # without truncation the misordered tail still gets a gradient
    with pytest.raises(ValueError, match="k must be >= 1"):
        lambdarank_loss(torch.zeros(3), torch.ones(3), k=0)


def test_ranknet_and_margin_by_hand():
    loss, _ = _grad(ranknet_loss, [1.0, 0.0], [1.0, 0.0])
    assert loss == pytest.approx(math.log1p(math.exp(-1.0)))
    assert _grad(margin_loss, [1.0, 0.0], [1.0, 0.0], margin=0.1)[0] == 0.0
    assert _grad(margin_loss, [0.0, 0.0], [1.0, 0.0], margin=0.1)[0] == pytest.approx(0.1)
    # no ordered pair at all: zero
    assert _grad(ranknet_loss, [1.0, 0.0], [2.0, 2.0])[0] == 0.0


def test_listmle_and_listnet_by_hand():
    a, b = 0.7, -0.2
    loss, _ = _grad(listmle_loss, [a, b], [1.0, 0.0])
    assert loss == pytest.approx((math.log(math.exp(a) + math.exp(b)) - a) / 2)
    # ListMLE prefers the true order
    assert _grad(listmle_loss, [2.0, 0.0], [1.0, 0.0])[0] < _grad(listmle_loss, [0.0, 2.0], [1.0, 0.0])[0]
    loss, _ = _grad(listnet_loss, [0.0, 0.0, 0.0], [1.0, 1.0, 1.0])
    assert loss == pytest.approx(math.log(3.0))


def test_mse_and_shape_checks():
    assert _grad(mse_loss, [1.0, 3.0], [1.0, 1.0])[0] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="3 scores but 2 targets"):
        ranknet_loss(torch.zeros(3), torch.zeros(2))
    with pytest.raises(ValueError, match="1-D"):
        mse_loss(torch.zeros(2, 2), torch.zeros(2, 2))


def test_get_loss():
    assert set(LOSSES) == {"lambdarank", "ranknet", "listmle", "listnet", "margin", "mse"}
    assert get_loss("listmle") is listmle_loss
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        get_loss("hinge")
