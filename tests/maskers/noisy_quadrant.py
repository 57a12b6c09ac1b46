"""The learned maskers' test bench: images with one region much harder to reconstruct.

32 px images: a smooth random gradient everywhere, plus strong noise in one quadrant, a different
quadrant per image (as in ``test_dqn_learning``). Noise cannot be inpainted from its context, so
hiding the noisy quadrant costs the predictor by far the most. :func:`train` runs the engine's own
:func:`sslkit.pretraining.step.train_step` (propose, predictor update, feedback with the soft-mask loss)
with a tiny conv predictor that has an encoder (feature pyramid) and a skip, like sslkit's U-Nets.
"""

from __future__ import annotations

import torch
from torch import nn

from sslkit.engine.device import Precision
from sslkit.pretraining.step import train_step
from sslkit.masking import MaskerContext, StepInfo

SIZE = 32


def noisy_quadrant_images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 1, 32, 32) images in [-1, 1] and (n, 1, 32, 32) bool: the noisy quadrant of each."""
    g = torch.Generator().manual_seed(seed)
    axis = torch.linspace(-1, 1, SIZE)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    a = torch.rand(n, 3, generator=g) * 2 - 1
    smooth = 0.5 * (a[:, 0, None, None] * xx + a[:, 1, None, None] * yy) + 0.3 * a[:, 2, None, None]
    half = (torch.arange(SIZE) >= SIZE // 2).long()
    quadrant_of_pixel = half[:, None] * 2 + half[None, :]
    region = quadrant_of_pixel[None] == torch.randint(0, 4, (n,), generator=g)[:, None, None]
    noise = torch.randn(n, SIZE, SIZE, generator=g)
    return torch.where(region, smooth + noise, smooth).clamp(-1, 1)[:, None], region[:, None]


class TinyEncoder(nn.Module):
    """Two levels of features (stride 2 and 4), returned shallow to deep like sslkit's encoders."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, stride=2, padding=1), nn.ReLU())
        self.deep = nn.Sequential(nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU())
        self.feature_channels, self.reductions = [width, 2 * width], [2, 4]

    def forward(self, x):
        shallow = self.stem(x)
        return [shallow, self.deep(shallow)]


class TinyPredictor(nn.Module):
    """Encoder, a dilated conv decoder for context, and a skip: reconstruction = input + correction."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.encoder = TinyEncoder(width)
        self.decoder = nn.Sequential(
            nn.Conv2d(2 * width, width, 3, padding=2, dilation=2), nn.ReLU(),
            nn.Upsample(scale_factor=4, mode="bilinear", align_corners=False),
            nn.Conv2d(width, 1, 3, padding=1),
        )

    def forward(self, x):
        return x + self.decoder(self.encoder(x)[-1])


class _Constant:
    def step(self) -> None:
        pass


def context(predictor: nn.Module, steps: int, seed: int = 0) -> MaskerContext:
    return MaskerContext((SIZE, SIZE), 1, torch.device("cpu"), total_steps=steps, steps_per_epoch=steps, epochs=1,
                         seed=seed, encoder=predictor.encoder)


def train(masker, images: torch.Tensor, steps: int, batch: int = 32, lr: float = 1e-3) -> TinyPredictor:
    """Train ``masker`` and a fresh tiny predictor together for ``steps`` engine steps."""
    predictor = TinyPredictor()
    optimizer = torch.optim.Adam(predictor.parameters(), lr=lr)
    masker.setup(context(predictor, steps))
    order = torch.Generator().manual_seed(2)
    precision = Precision("fp32", torch.device("cpu"))
    for step in range(steps):
        x = images[torch.randint(0, len(images), (batch,), generator=order)]
        train_step(images=x, lesions=None, info=StepInfo(step, 0, steps, True), masker=masker, forward=predictor,
                   optimizer=optimizer, scheduler=_Constant(), precision=precision, predictor=predictor)
    return predictor


def share_on_hard_region(masks: torch.Tensor, region: torch.Tensor) -> float:
    """Share of all hidden pixels that lie in the noisy quadrant (random placement: about 0.25)."""
    return float((masks & region).sum() / masks.sum().clamp(min=1))
