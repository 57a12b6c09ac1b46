"""dqn Q-networks: the paper's architecture (size, grid) and the light default."""

from __future__ import annotations

import pytest
import torch

from sslkit.models.flops import count_parameters
from sslkit_plugins.maskers._cell_network import LightCellNetwork
from sslkit_plugins.maskers.dqn.qnetwork import PaperQNetwork, build_qnetwork, paper_pools_for


def test_paper_network_has_about_067m_parameters_and_a_9x9_grid_at_300px():
    net = PaperQNetwork(in_chans=1).eval()
    assert 0.65e6 < count_parameters(net) < 0.69e6
    with torch.no_grad():
        q = net(torch.zeros(1, 1, 300, 300))
    assert q.shape == (1, 1, 9, 9)


def test_paper_network_uses_fewer_pools_for_small_images_keeping_its_size():
    assert paper_pools_for((300, 300), 9) == 5
    assert paper_pools_for((64, 64), 8) == 3
    assert paper_pools_for((28, 28), 8) == 1
    net = build_qnetwork("paper", in_chans=1, image_size=(64, 64), grid=8).eval()
    # the same blocks; only the depthwise kernel follows the authors' size rule (1 below 128 px)
    assert count_parameters(net) == count_parameters(PaperQNetwork(1, bottleneck_kernel=1))
    assert net.depthwise.kernel_size == (1, 1)
    assert build_qnetwork("paper", in_chans=1, image_size=(300, 300), grid=9).depthwise.kernel_size == (5, 5)
    with torch.no_grad():
        assert net(torch.zeros(2, 1, 64, 64)).shape == (2, 1, 8, 8)


@pytest.mark.parametrize("size,grid", [(64, 8), (28, 8), (100, 9), (32, 4), (256, 12)])
def test_light_network_gives_the_grid_for_any_size(size, grid):
    net = LightCellNetwork(in_chans=3, grid=grid, downsample=32)
    q = net(torch.randn(2, 3, size, size))
    assert q.shape == (2, 1, grid, grid)
    q.sum().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_light_network_is_small_and_each_image_is_scored_on_its_own():
    net = LightCellNetwork(1, grid=8)
    assert count_parameters(net) < 0.1 * count_parameters(PaperQNetwork(1))
    x = torch.randn(4, 1, 64, 64)
    # no batch statistics: an image's Q map does not depend on the other images of the batch
    torch.testing.assert_close(net(x)[:1], net(x[:1]))


def test_unknown_network_name():
    with pytest.raises(ValueError):
        build_qnetwork("vit", in_chans=1, image_size=(64, 64), grid=8)
