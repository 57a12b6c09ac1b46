"""The dqn agent learns where reconstruction is hard (the issue's learning test).

Synthetic 32 px images: a smooth random gradient everywhere, plus strong noise in one quadrant,
a different quadrant per image. Noise cannot be inpainted from its context, so masking the noisy
quadrant costs the predictor by far the most. A tiny conv predictor (with a skip, like the U-Nets
sslkit uses, so unmasked pixels pass through) and the agent train together for 100 steps; then the
greedy agent, on new images, must put its 2 x 2-cell block (= one quadrant) on the noisy quadrant
for > 80 % of them, where random placement of the same block manages about one in nine.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from noisy_quadrant import noisy_quadrant_images

from sslkit.masking import MaskerContext, MaskFeedback, StepInfo, apply_mask
from sslkit_plugins.maskers.dqn.masker import DQNMasker

SIZE, GRID, BLOCK, BATCH, STEPS = 32, 4, 2, 32, 60


@pytest.fixture(autouse=True)
def single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class TinyPredictor(nn.Module):
    """Dilated convs for context, plus a skip: reconstruction = masked input + correction."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=2, dilation=2), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=4, dilation=4), nn.ReLU(),
            nn.Conv2d(width, 1, 3, padding=1),
        )

    def forward(self, x):
        return x + self.net(x)


def share_on_hard_region(masks: torch.Tensor, region: torch.Tensor) -> float:
    """Share of images with more than half of their masked pixels in the noisy quadrant."""
    inside = (masks & region).flatten(1).sum(1).float() / masks.flatten(1).sum(1).clamp(min=1)
    return float((inside > 0.5).float().mean())


def train(masker: DQNMasker, images: torch.Tensor) -> None:
    """The engine's step, reduced to its essentials: propose, predictor update, feedback."""
    predictor = TinyPredictor()
    optimizer = torch.optim.Adam(predictor.parameters(), lr=1e-3)
    masker.setup(MaskerContext((SIZE, SIZE), 1, torch.device("cpu"), total_steps=STEPS, steps_per_epoch=STEPS, epochs=1))
    order = torch.Generator().manual_seed(2)
    for step in range(STEPS):
        x = images[torch.randint(0, len(images), (BATCH,), generator=order)]
        info = StepInfo(step, 0, STEPS, True)
        masks = masker.propose(x, info)
        reconstruction = predictor(apply_mask(x, masks))
        error = (reconstruction - x).pow(2)
        loss = (error * masks).flatten(1).sum(1) / masks.flatten(1).sum(1)  # loss on the masked pixels
        optimizer.zero_grad()
        loss.mean().backward()
        optimizer.step()
        masker.feedback(MaskFeedback(x, masks, reconstruction.detach(), error.detach(), loss.detach(), info))


@pytest.mark.parametrize("reward", ["image", "masked"])
def test_greedy_agent_masks_the_hard_region(reward):
    torch.manual_seed(0)
    train_images, _ = noisy_quadrant_images(512, seed=1)
    test_images, test_region = noisy_quadrant_images(256, seed=99)
    masker = DQNMasker(grid=GRID, block=BLOCK, reward=reward, explore_fraction=0.3)
    train(masker, train_images)

    greedy = masker.propose(test_images, StepInfo(STEPS, 1, STEPS, training=False))
    dqn_share = share_on_hard_region(greedy, test_region)

    # Random placement of the same block, measured the same way: the agent's own uniform corners
    # (what the paper's first phase does) and the built-in `random` masker with a 16 px box.
    uniform = masker.propose(test_images, StepInfo(0, 0, STEPS, training=True))
    uniform_share = share_on_hard_region(uniform, test_region)
    shares = {"dqn": dqn_share, "uniform corners": uniform_share}
    try:
        from sslkit_plugins.maskers.random_block import masker as random_block
    except ImportError:  # built by another plugin; the uniform corners above still compare
        random_block = None
    if random_block is not None:
        baseline = random_block.RandomBlockMasker(size=0.5)
        baseline.setup(MaskerContext((SIZE, SIZE), 1, torch.device("cpu"), total_steps=1, steps_per_epoch=1, epochs=1))
        shares["random"] = share_on_hard_region(baseline.propose(test_images, StepInfo(0, 0, 1)), test_region)

    assert dqn_share > 0.8, shares
    assert uniform_share < 0.25, shares  # 1/9 expected
    assert shares.get("random", 0.0) < 0.3, shares  # ~16 % for uniformly placed 16 px boxes
