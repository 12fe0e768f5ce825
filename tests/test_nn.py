"""NB201 networks and the supernet: shapes, ops, input checks and real weight sharing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ray_nasrank.nn import (
    OPS_FACTORY,
    NB201Network,
    NB201Supernet,
    ResidualBlock,
    arch_to_indices,
    count_parameters,
)
from ray_nasrank.spaces import OPS, NB201Space

SPACE = NB201Space()
ARCH = ("nor_conv_3x3", "skip_connect", "avg_pool_3x3", "none", "nor_conv_1x1", "nor_conv_3x3")


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # the test machine is shared: one thread avoids oversubscription stalls; restored afterwards
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_ops_follow_nb201():
    x = torch.randn(2, 4, 6, 6)
    assert set(OPS_FACTORY) == set(OPS)
    assert torch.equal(OPS_FACTORY["none"](4)(x), torch.zeros_like(x))
    assert torch.equal(OPS_FACTORY["skip_connect"](4)(x), x)
    pool = OPS_FACTORY["avg_pool_3x3"](4)(x)
    assert pool.shape == x.shape
    # corner pixel averages its 2x2 neighbourhood (count_include_pad=False)
    assert torch.allclose(pool[:, :, 0, 0], x[:, :, :2, :2].mean(dim=(2, 3)))
    for op, k in (("nor_conv_1x1", 1), ("nor_conv_3x3", 3)):
        m = OPS_FACTORY[op](4)
        assert [type(c).__name__ for c in m] == ["ReLU", "Conv2d", "BatchNorm2d"]
        assert m[1].kernel_size == (k, k) and m(x).shape == x.shape


def test_reduction_block_halves_resolution_and_is_residual():
    blk = ResidualBlock(4, 8).eval()
    x = torch.randn(2, 4, 8, 8)
    y = blk(x)
    assert y.shape == (2, 8, 4, 4)
    assert torch.allclose(y, blk.downsample(x) + blk.conv_b(blk.conv_a(x)))


@pytest.mark.parametrize("hw,in_ch", [(8, 1), (28, 1), (32, 3)])
def test_network_is_resolution_agnostic(hw, in_ch):
    net = NB201Network(ARCH, channels=4, cells_per_stage=2, in_channels=in_ch, num_classes=7)
    assert len(net.cells) == 6 and net.cell_channels == [4, 4, 8, 8, 16, 16]
    assert net(torch.randn(3, in_ch, hw, hw)).shape == (3, 7)


def test_network_accepts_string_and_rejects_bad_input():
    s = SPACE.to_string(ARCH)
    assert NB201Network(s, channels=4, cells_per_stage=1).arch == ARCH
    net = NB201Network(ARCH, channels=4, cells_per_stage=1, in_channels=3)
    with pytest.raises(ValueError, match=r"expected input of shape \[N, 3, H, W\], got \[2, 1, 8, 8\]"):
        net(torch.randn(2, 1, 8, 8))
    with pytest.raises(ValueError, match="got \\[3, 8, 8\\]"):
        net(torch.randn(3, 8, 8))
    with pytest.raises(ValueError, match="unknown NB201 op 'conv_5x5'"):
        NB201Network(("conv_5x5",) * 6)
    with pytest.raises(ValueError, match="channels must be a positive integer, got 0"):
        NB201Network(ARCH, channels=0)
    with pytest.raises(TypeError, match="torch.Tensor"):
        net(np.zeros((1, 3, 8, 8)))


def test_parameter_count_depends_on_ops():
    small = NB201Network(("none",) * 6, channels=8, cells_per_stage=1, in_channels=1)
    big = NB201Network(("nor_conv_3x3",) * 6, channels=8, cells_per_stage=1, in_channels=1)
    # six 3x3 convs + BN per cell, one cell at 8, 16 and 32 channels
    per_cell = sum(6 * (c * c * 9 + 2 * c) for c in (8, 16, 32))
    assert count_parameters(big) - count_parameters(small) == per_cell


def test_all_none_cell_output_is_data_independent():
    net = NB201Network(("none",) * 6, channels=4, cells_per_stage=1, in_channels=1).eval()
    a, b = net(torch.randn(2, 1, 8, 8)), net(torch.randn(2, 1, 8, 8))
    assert torch.allclose(a, b)


def test_supernet_holds_all_ops_and_shares_weights():
    torch.manual_seed(0)
    sn = NB201Supernet(channels=4, cells_per_stage=2, in_channels=1, num_classes=10)
    for cell in sn.cells:
        assert all(set(e.keys()) == set(OPS) for e in cell.edges)
    # train-mode steps move the BN buffers away from their defaults, so the copy is checked too
    x = torch.randn(16, 1, 8, 8)
    for a in SPACE.sample_many(5, rng=0):
        sn(x, a)
    sn.eval()
    rng = np.random.default_rng(1)
    for a in SPACE.sample_many(8, rng=rng) + [ARCH]:
        net = sn.extract(a)
        assert not net.training
        assert torch.allclose(sn(x, a), net(x), atol=1e-6)
    # extraction copies: the stand-alone net's parameters are its own
    net = sn.extract(ARCH)
    with torch.no_grad():
        net.cells[0].edges[0][1].weight.add_(1.0)
    assert not torch.allclose(net.cells[0].edges[0][1].weight, sn.cells[0].edges[0]["nor_conv_3x3"][1].weight)


def test_supernet_paths_differ_and_gradients_reach_only_the_path():
    torch.manual_seed(0)
    sn = NB201Supernet(channels=4, cells_per_stage=1, in_channels=1)
    x = torch.randn(4, 1, 8, 8)
    arch = ("nor_conv_1x1",) * 6
    sn(x, arch).sum().backward()
    conv1 = sn.cells[0].edges[0]["nor_conv_1x1"][1].weight
    conv3 = sn.cells[0].edges[0]["nor_conv_3x3"][1].weight
    assert conv1.grad is not None and conv1.grad.abs().sum() > 0
    assert conv3.grad is None
    sn.eval()
    assert not torch.allclose(sn(x, arch), sn(x, ("nor_conv_3x3",) * 6))


def test_arch_to_indices():
    assert arch_to_indices(ARCH) == (3, 1, 4, 0, 2, 3)
    assert arch_to_indices(SPACE.to_string(ARCH)) == (3, 1, 4, 0, 2, 3)


@pytest.mark.parametrize("size", [7, 13, 14, 28])
def test_odd_resolutions_pass_the_reduction_blocks(size):
    from ray_nasrank.nn import NB201Network

    net = NB201Network(("nor_conv_3x3",) * 6, channels=4, cells_per_stage=1, in_channels=1, num_classes=3)
    assert net(torch.zeros(2, 1, size, size)).shape == (2, 3)
