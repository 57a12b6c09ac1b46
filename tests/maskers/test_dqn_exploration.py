"""dqn exploration schedules: rates at the start and end of training, and what each picks."""

from __future__ import annotations

import pytest
import torch

from sslkit_plugins.maskers.dqn.exploration import EpsilonGreedy, PaperSchedule, SoftmaxSampling, make_policy


def values(batch: int = 256, corners: int = 49) -> torch.Tensor:
    """Block values whose best corner is 7 in every image (by a wide margin)."""
    v = torch.randn(batch, corners, generator=torch.Generator().manual_seed(1))
    v[:, 7] += 10.0
    return v


def greedy_share(policy, progress: float, n: int = 1) -> float:
    gen = torch.Generator().manual_seed(0)
    corners = policy.choose(values(), n, progress, gen).corners
    return float((corners == 7).any(dim=1).float().mean())


def test_paper_schedule_is_uniform_then_greedy():
    policy = PaperSchedule(explore_fraction=0.2)
    assert policy.random_probability(0.0) == 1.0 and policy.random_probability(0.199) == 1.0
    assert policy.random_probability(0.2) == 0.0 and policy.random_probability(1.0) == 0.0
    assert greedy_share(policy, 0.1) < 0.1  # uniform over 49 corners: ~2 %
    assert greedy_share(policy, 0.5) == 1.0
    gen = torch.Generator().manual_seed(0)
    random_corners = policy.choose(values(4096), 1, 0.0, gen).corners
    counts = torch.bincount(random_corners.flatten(), minlength=49).float()
    assert counts.min() > 40 and counts.max() < 130  # ~84 each: uniform over the valid corners


def test_epsilon_decays_linearly_then_stays():
    policy = EpsilonGreedy(epsilon_start=1.0, epsilon_end=0.1, explore_fraction=0.5)
    assert policy.random_probability(0.0) == pytest.approx(1.0)
    assert policy.random_probability(0.25) == pytest.approx(0.55)
    assert policy.random_probability(0.5) == pytest.approx(0.1)
    assert policy.random_probability(1.0) == pytest.approx(0.1)
    assert greedy_share(policy, 0.0) < 0.1
    late = greedy_share(policy, 1.0)
    assert 0.85 < late < 0.96  # 90 % greedy + 10 % x 1/49 random hits


def test_softmax_sampling_follows_the_temperature():
    cold, hot = SoftmaxSampling(temperature=0.05), SoftmaxSampling(temperature=100.0)
    assert cold.random_probability(0.3) is None
    assert greedy_share(cold, 0.3) == 1.0
    assert greedy_share(hot, 0.3) < 0.15  # nearly uniform
    assert 0.2 < greedy_share(SoftmaxSampling(temperature=1.0), 0.3) < 1.0


@pytest.mark.parametrize("name", ["paper", "epsilon", "softmax", "greedy"])
def test_several_blocks_are_distinct_corners(name):
    policy = make_policy(name, explore_fraction=0.5)
    gen = torch.Generator().manual_seed(0)
    for progress in (0.0, 0.9):
        corners = policy.choose(values(64), 5, progress, gen).corners
        assert corners.shape == (64, 5)
        assert (corners.sort(dim=1).values.diff(dim=1) > 0).all()
        assert corners.min() >= 0 and corners.max() < 49


def test_greedy_takes_the_top_values():
    v = values(8)
    corners = make_policy("greedy").choose(v, 3, 0.0, torch.Generator()).corners
    assert torch.equal(corners, v.topk(3, dim=1).indices)
    with pytest.raises(ValueError):
        make_policy("boltzmann")
