"""Every registered masker — built-in or example plugin — through the whole contract.

Parametrised over the registry itself, so a new masker is tested by being registered: a few
engine steps (:func:`sslkit.pretraining.step.train_step`, with lesions) on a tiny predictor, its maps
and scalars, a validation-mode proposal, then ``state_dict`` through ``torch.save`` into a fresh
masker (as a checkpoint does) and the same next steps: identical masks, scalars and predictor.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
import torch

from sslkit.engine.device import Precision
from sslkit.pretraining.step import train_step
from sslkit.masking import StepInfo
from sslkit.plugins import load_plugins

sys.path.insert(0, str(Path(__file__).parent))
from noisy_quadrant import SIZE, TinyPredictor, context, noisy_quadrant_images  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXAMPLE_FILES = [EXAMPLES / "stripes_masker.py", EXAMPLES / "sslkit-checkerboard" / "sslkit_checkerboard.py"]
PLUGINS = load_plugins([str(f) for f in EXAMPLE_FILES], include_env=False)
NAMES = PLUGINS.maskers.names()
STEPS, BATCH = 6, 8


class _Constant:
    def step(self) -> None:
        pass


def batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    images, region = noisy_quadrant_images(STEPS * BATCH, seed=3)
    return [(images[i * BATCH:(i + 1) * BATCH], region[i * BATCH:(i + 1) * BATCH]) for i in range(STEPS)]


def run(masker, predictor, optimizer, steps: range, data) -> list[tuple[torch.Tensor, dict]]:
    precision = Precision("fp32", torch.device("cpu"))
    out = []
    for s in steps:
        images, lesions = data[s]
        result = train_step(images=images, lesions=lesions, info=StepInfo(s, 0, STEPS, True), masker=masker,
                            forward=predictor, optimizer=optimizer, scheduler=_Constant(), precision=precision,
                            predictor=predictor)
        out.append((result.masks, result.masker_scalars))
    return out


def fresh(name: str, seed: int = 0):
    torch.manual_seed(seed)
    predictor = TinyPredictor()
    optimizer = torch.optim.Adam(predictor.parameters(), lr=1e-3)
    masker = PLUGINS.maskers.create(name)
    masker.setup(context(predictor, STEPS, seed=seed))
    return masker, predictor, optimizer


def test_the_registry_holds_the_builtin_and_example_maskers():
    assert {"random", "random-grid", "center", "dqn", "hpm", "saliency", "adios", "stripes", "checkerboard"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_masker_follows_the_contract_and_resumes_exactly(name):
    entry = PLUGINS.maskers.get(name)
    assert entry.description, f"{name} has no description"
    data = batches()
    masker, predictor, optimizer = fresh(name)
    first = run(masker, predictor, optimizer, range(3), data)
    for masks, scalars in first:
        assert masks.dtype == torch.bool and masks.shape == (BATCH, 1, SIZE, SIZE)
        assert masks.any() and all(isinstance(v, float) for v in scalars.values())
    for key, picture in masker.log_images().items():  # the maps TensorBoard shows beside the mask
        assert picture.dim() == 4 and picture.shape[0] == BATCH and picture.shape[1] in (1, 3), key
        assert float(picture.min()) >= 0.0 and float(picture.max()) <= 1.0, key
    modules = masker.modules()
    assert all(isinstance(m, torch.nn.Module) for m in modules)

    checkpoint = io.BytesIO()
    torch.save({"masker": masker.state_dict(), "predictor": predictor.state_dict(),
                "optimizer": optimizer.state_dict()}, checkpoint)
    expected = run(masker, predictor, optimizer, range(3, STEPS), data)

    resumed, predictor2, optimizer2 = fresh(name, seed=0)
    checkpoint.seek(0)
    saved = torch.load(checkpoint, weights_only=True)
    predictor2.load_state_dict(saved["predictor"])
    optimizer2.load_state_dict(saved["optimizer"])
    resumed.load_state_dict(saved["masker"])
    got = run(resumed, predictor2, optimizer2, range(3, STEPS), data)
    for (m1, s1), (m2, s2) in zip(expected, got):
        assert torch.equal(m1, m2)
        assert s1 == s2
    for a, b in zip(masker.modules(), resumed.modules()):
        for (key, x), y in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(x, y), key
    for x, y in zip(predictor.state_dict().values(), predictor2.state_dict().values()):
        assert torch.equal(x, y)

    # validation mode: masks of the same type, and no learning from them
    before = [{k: v.clone() for k, v in m.state_dict().items()} for m in masker.modules()]
    images, lesions = data[0]
    val = StepInfo(STEPS, 1, STEPS, training=False)
    masks = masker.propose(images, val)
    assert masks.dtype == torch.bool and masks.shape == (BATCH, 1, SIZE, SIZE)
    from sslkit.masking import MaskFeedback

    error = (images.masked_fill(masks, 0.0) - images).pow(2)
    masker.feedback(MaskFeedback(images, masks, images.masked_fill(masks, 0.0), error, error.flatten(1).mean(1), val,
                                 lesions=lesions))
    for saved_state, module in zip(before, masker.modules()):
        for key, value in module.state_dict().items():
            assert torch.equal(saved_state[key], value), f"{name} changed {key} in validation"
