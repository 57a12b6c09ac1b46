"""The dqn masker through the masker contract: options, masks, feedback scalars, images, resume."""

from __future__ import annotations

import io

import pytest
import torch

from sslkit.errors import UserError
from sslkit.masking import MaskerContext, MaskFeedback, StepInfo
from sslkit.registry import Registry
from sslkit_plugins.maskers import dqn as dqn_plugin
from sslkit_plugins.maskers.dqn.masker import DQNMasker

TOTAL = 20


@pytest.fixture(autouse=True)
def single_thread():
    """Tiny tensors: one thread is faster, and fair to a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def context(size=(32, 32), total=TOTAL, seed=0) -> MaskerContext:
    return MaskerContext(size, 1, torch.device("cpu"), total_steps=total, steps_per_epoch=10, epochs=total // 10, seed=seed)


def images(step: int, batch: int = 8, size: int = 32) -> torch.Tensor:
    return torch.randn(batch, 1, size, size, generator=torch.Generator().manual_seed(100 + step)).clamp(-1, 1)


def fake_feedback(x: torch.Tensor, masks: torch.Tensor, step: StepInfo, lesions=None) -> MaskFeedback:
    """A deterministic stand-in for the predictor: hidden pixels cost their squared value + 0.1."""
    reconstruction = x.masked_fill(masks, 0.0)
    error = (reconstruction - x).pow(2) + 0.01
    return MaskFeedback(x, masks, reconstruction, error, error.flatten(1).mean(1), step, lesions=lesions)


def run_steps(masker: DQNMasker, steps: range) -> list[tuple[torch.Tensor, dict]]:
    out = []
    for s in steps:
        info = StepInfo(s, s // 10, TOTAL, True)
        x = images(s)
        masks = masker.propose(x, info)
        out.append((masks, masker.feedback(fake_feedback(x, masks, info))))
    return out


def test_registered_with_description_and_documented_options():
    registry = Registry("masker")
    dqn_plugin.register_maskers(register=registry.register)
    entry = registry.get("dqn")
    assert "Q-learning" in entry.description
    defaults = entry.option_defaults()
    for name in ("network", "grid", "block", "cells", "exploration", "explore_fraction", "epsilon_start", "epsilon_end",
                 "temperature", "reward", "normalize_reward", "lr", "downsample", "val_block"):
        assert name in entry.options and name in defaults
    assert defaults["network"] == "light" and defaults["exploration"] == "paper" and defaults["reward"] == "image"
    with pytest.raises(UserError, match="did you mean 'block'"):
        registry.create("dqn", blocks=2)


@pytest.mark.parametrize(
    "options,message",
    [
        ({"network": "resnet"}, "network must be one of"),
        ({"grid": 0}, "grid must be a whole number"),
        ({"block": 9}, "block .9. must not exceed grid"),
        ({"cells": 50}, "cells .50. exceeds the 49 places"),
        ({"exploration": "ucb"}, "exploration must be one of"),
        ({"explore_fraction": 1.5}, "explore_fraction must be a number in"),
        ({"reward": "psnr"}, "reward must be one of"),
        ({"normalize_reward": "maybe"}, "normalize_reward must be true or false"),
    ],
)
def test_bad_options_are_one_sentence_user_errors(options, message):
    with pytest.raises(UserError, match=message):
        DQNMasker(**options)


def test_grid_finer_than_the_image_is_a_user_error():
    with pytest.raises(UserError, match="finer than the images"):
        DQNMasker(grid=40).setup(context((32, 32)))


@pytest.mark.parametrize("network", ["light", "paper"])
def test_masks_are_whole_blocks_and_the_agent_learns_in_feedback(network):
    masker = DQNMasker(network=network, grid=4, block=2)
    masker.setup(context())
    before = [p.detach().clone() for p in masker.qnet.parameters()]
    (masks, scalars), = run_steps(masker, range(1))
    assert masks.dtype == torch.bool and masks.shape == (8, 1, 32, 32)
    assert torch.equal(masks.flatten(1).sum(1), torch.full((8,), 16 * 16))
    assert any(not torch.equal(a, b) for a, b in zip(before, masker.qnet.parameters()))
    for key in ("agent_loss", "reward_mean", "explore_rate", "epsilon", "q_abs_error", "location_entropy", "agent_lr"):
        assert key in scalars and isinstance(scalars[key], float)
    assert scalars["epsilon"] == 1.0  # the paper's schedule starts with uniform corners
    assert masker.updates == 1


def test_image_reward_is_the_whole_image_sum_and_masked_reward_the_hidden_part():
    x = images(0, batch=4)
    for reward, expect in (("image", None), ("masked", None)):
        masker = DQNMasker(grid=4, block=2, reward=reward)
        masker.setup(context())
        info = StepInfo(0, 0, TOTAL, True)
        masks = masker.propose(x, info)
        fb = fake_feedback(x, masks, info)
        scalars = masker.feedback(fb)
        region = torch.ones_like(masks) if reward == "image" else masks
        expected = (fb.error_map * region).flatten(1).sum(1).mean()
        assert scalars["reward_mean"] == pytest.approx(float(expected), rel=1e-5)


def test_several_blocks_per_image_and_the_validation_block():
    masker = DQNMasker(grid=8, block=2, cells=3, val_block=3)
    masker.setup(context((64, 64)))
    x = images(0, size=64)
    masks = masker.propose(x, StepInfo(0, 0, TOTAL, True))
    area = masks.flatten(1).sum(1)
    assert (area >= 16 * 16).all() and (area <= 3 * 16 * 16).all()
    masker.feedback(fake_feedback(x, masks, StepInfo(0, 0, TOTAL, True)))
    # validation: greedy, k = 3, no update, the same answer twice
    state = [p.detach().clone() for p in masker.qnet.parameters()]
    val = StepInfo(1, 0, TOTAL, training=False)
    first = masker.propose(x, val)
    scalars = masker.feedback(fake_feedback(x, first, val))
    assert torch.equal(first, masker.propose(x, val))
    assert all(torch.equal(a, b) for a, b in zip(state, masker.qnet.parameters()))
    assert (first.flatten(1).sum(1) >= 24 * 24).all()
    assert scalars["explore_rate"] == 0.0 and "epsilon" not in scalars


def test_lesion_hit_rate_beside_the_random_rate_on_the_same_batch():
    masker = DQNMasker(grid=4, block=2)
    masker.setup(context())
    x = images(0)
    lesions = torch.zeros(8, 1, 32, 32, dtype=torch.bool)
    lesions[:6, :, 0:6, 0:6] = True  # top-left cell: only corner (0, 0) of 9 reaches it
    info = StepInfo(0, 0, TOTAL, True)
    masks = masker.propose(x, info)
    scalars = masker.feedback(fake_feedback(x, masks, info, lesions))
    hits = (masks[:6] & lesions[:6]).flatten(1).any(1).float().mean()
    assert scalars["lesion_hit_rate"] == pytest.approx(float(hits))
    assert scalars["lesion_hit_rate_random"] == pytest.approx(1 / 9)
    masks = masker.propose(x, info)
    no_lesion = masker.feedback(fake_feedback(x, masks, info, torch.zeros_like(lesions)))
    assert "lesion_hit_rate" not in no_lesion and "lesion_hit_rate_random" not in no_lesion


def test_q_map_image_is_normalised_per_image_at_image_size():
    masker = DQNMasker(grid=4, block=2)
    masker.setup(context())
    assert masker.log_images() == {}
    run_steps(masker, range(1))
    q_map = masker.log_images()["q_map"]
    assert q_map.shape == (8, 3, 32, 32)  # a colour heat map at image size
    assert q_map.min() >= 0 and q_map.max() <= 1
    from sslkit_plugins.maskers._heat_map import _lut

    lut = _lut("inferno", q_map.device)
    brightness = q_map.sum(1).flatten(1)
    # normalised per image: every image uses both ends of the colour scale
    assert torch.allclose(brightness.min(1).values, lut[0].sum().expand(8), atol=1e-5)
    assert torch.allclose(brightness.max(1).values, lut[255].sum().expand(8), atol=1e-5)


def test_state_dict_round_trip_gives_identical_actions_and_updates():
    options = dict(grid=4, block=2, exploration="epsilon", explore_fraction=0.6, epsilon_end=0.3)
    first = DQNMasker(**options)
    first.setup(context())
    run_steps(first, range(5))
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)  # as the engine's checkpoint does
    expected = run_steps(first, range(5, 12))

    resumed = DQNMasker(**options)
    resumed.setup(context())
    buffer.seek(0)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    got = run_steps(resumed, range(5, 12))
    for (m1, s1), (m2, s2) in zip(expected, got):
        assert torch.equal(m1, m2)
        assert s1 == s2
    for a, b in zip(first.qnet.state_dict().values(), resumed.qnet.state_dict().values()):
        assert torch.equal(a, b)
    assert first.scheduler.get_last_lr() == resumed.scheduler.get_last_lr() and first.updates == resumed.updates == 12
    assert first.state_dict()["normalizer"] == resumed.state_dict()["normalizer"]

    other = DQNMasker(grid=8)
    other.setup(context())
    with pytest.raises(UserError, match="checkpoint's agent was built with"):
        other.load_state_dict(first.state_dict())


def test_agent_schedule_decays_at_a_third_and_two_thirds():
    masker = DQNMasker(grid=4, block=2, lr=1e-3)
    masker.setup(context(total=9))
    lrs = [scalars["agent_lr"] for _, scalars in run_steps(masker, range(9))]
    assert lrs[:3] == pytest.approx([1e-3] * 3)
    assert lrs[3:6] == pytest.approx([3.3e-4] * 3) and lrs[6:] == pytest.approx([1.089e-4] * 3)


def test_feedback_without_propose_is_empty():
    masker = DQNMasker(grid=4)
    masker.setup(context())
    x = images(0)
    assert masker.feedback(fake_feedback(x, torch.zeros_like(x, dtype=torch.bool), StepInfo(0, 0, TOTAL))) == {}
