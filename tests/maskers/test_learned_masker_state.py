"""The learned maskers' checkpoints and exact behaviour, pinned across the move of their shared code.

* With the same seed every learned masker (``dqn``, ``hpm``, ``saliency``, ``adios``) proposes the
  very masks it proposed before the shared parts moved out of ``dqn`` and the checkpoint code became
  one base (:mod:`sslkit_plugins.maskers._learned_state`): the digests below were computed by
  :func:`mask_digest` from the code before that change. They pin exact behaviour, so a digest
  changes only when a masker's method (or torch's arithmetic for these tiny networks) changes.
* Each masker's state dict has the keys, in the order, its checkpoints have always had; a state
  dict laid out as the code before the base wrote it (:func:`old_layout_state`, that code's body)
  loads into a fresh masker, which then proposes the same masks as the one it was saved from.
"""

from __future__ import annotations

import copy
import hashlib
import io
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from sslkit.errors import UserError
from sslkit.masking import StepInfo
from sslkit_plugins.maskers.adios.masker import ADIOSMasker
from sslkit_plugins.maskers.dqn.masker import DQNMasker
from sslkit_plugins.maskers.hpm.masker import HPMMasker
from sslkit_plugins.maskers.saliency.masker import SaliencyMasker

sys.path.insert(0, str(Path(__file__).parent))
from noisy_quadrant import TinyPredictor, context, noisy_quadrant_images, train  # noqa: E402

STEPS = 3

MASKERS = {
    "dqn": lambda: DQNMasker(grid=4, exploration="epsilon", explore_fraction=0.5, epsilon_end=0.3),
    "hpm": lambda: HPMMasker(grid=4, ratio=0.5, alpha_start=0.5, alpha_end=1.0),
    "saliency": lambda: SaliencyMasker(grid=4, ratio=0.5, random_share=0.25, momentum=0.5),
    "adios": lambda: ADIOSMasker(every=1),
}

# The keys each masker's state dict has always had, in order (checkpoints are read by them).
KEYS = {
    "dqn": ["generator", "config", "qnet", "optimizer", "scheduler", "normalizer", "updates"],
    "hpm": ["generator", "config", "net", "optimizer", "updates"],
    "saliency": ["generator", "config", "teacher", "updates"],
    "adios": ["generator", "config", "occluder", "optimizer", "updates"],
}

# mask_digest(name) computed with the code before the shared parts left ``dqn`` (commit 61ba87e).
DIGESTS = {
    "dqn": "3fda13544fc32442",
    "hpm": "5d0528260ba40336",
    "saliency": "f2aec36c751d88f6",
    "adios": "da5ff71008c480ea",
}


def trained(name: str):
    """A masker trained with the tiny predictor for a few engine steps (seeded), and a batch."""
    torch.manual_seed(0)
    images, _ = noisy_quadrant_images(32, seed=3)
    masker = MASKERS[name]()
    train(masker, images, STEPS, batch=8)
    return masker, images[:8]


def propose_both(masker, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A training-mode and a validation-mode proposal on ``x`` (the first draws from the generator)."""
    training = masker.propose(x, StepInfo(STEPS, 0, 2 * STEPS, True))
    validation = masker.propose(x, StepInfo(STEPS, 0, 2 * STEPS, False))
    return training, validation


def mask_digest(name: str) -> str:
    """sha256 (first 16 hex digits) of the training- and validation-mode masks after training."""
    masker, x = trained(name)
    training, validation = propose_both(masker, x)
    data = torch.cat([training, validation]).numpy().tobytes()
    return hashlib.sha256(data).hexdigest()[:16]


def old_layout_state(name: str, masker) -> dict[str, Any]:
    """The state dict exactly as each masker's own ``state_dict`` wrote it before the shared base."""
    state: dict[str, Any] = {"generator": masker.generator.get_state()}
    if name == "dqn":
        state["config"] = {"network": masker.network, "grid": masker.grid, "downsample": masker.downsample}
        state["qnet"] = {k: v.detach().clone() for k, v in masker.qnet.state_dict().items()}
        state["optimizer"] = copy.deepcopy(masker.optimizer.state_dict())
        state["scheduler"] = copy.deepcopy(masker.scheduler.state_dict())
        state["normalizer"] = masker.normalizer.state_dict() if masker.normalizer is not None else None
    elif name == "hpm":
        state["config"] = {"grid": masker.grid, "downsample": masker.downsample}
        state["net"] = {k: v.detach().clone() for k, v in masker.net.state_dict().items()}
        state["optimizer"] = copy.deepcopy(masker.optimizer.state_dict())
    elif name == "saliency":
        state["config"] = {"grid": masker.grid, "level": masker.level}
        state["teacher"] = {k: v.detach().clone() for k, v in masker.teacher.state_dict().items()}
    else:
        state["config"] = {"downsample": masker.downsample, "width": masker.width}
        state["occluder"] = {k: v.detach().clone() for k, v in masker.occluder.state_dict().items()}
        state["optimizer"] = copy.deepcopy(masker.optimizer.state_dict())
    state["updates"] = masker.updates
    return state


def assert_same(a: Any, b: Any, where: str = "state") -> None:
    """Deep equality of nested dicts/lists of tensors and plain values (tensors bit for bit)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), where
        for key in a:
            assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def fresh(name: str):
    masker = MASKERS[name]()
    torch.manual_seed(1)  # a different predictor (and so a different saliency teacher) than trained()'s
    masker.setup(context(TinyPredictor(), 2 * STEPS))
    return masker


def through_file(state: dict[str, Any]) -> dict[str, Any]:
    """As the engine's checkpoint stores it: torch.save, then torch.load with weights only."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("name", list(MASKERS))
def test_masks_are_those_of_the_code_before_the_shared_base(name):
    assert mask_digest(name) == DIGESTS[name]


@pytest.mark.parametrize("name", list(MASKERS))
def test_state_keys_and_values_are_the_old_layout_and_round_trip(name):
    masker, x = trained(name)
    state = masker.state_dict()
    assert list(state) == KEYS[name]
    assert masker.updates == STEPS
    assert_same(state, old_layout_state(name, masker))

    resumed = fresh(name)
    resumed.load_state_dict(through_file(state))
    assert_same(resumed.state_dict(), masker.state_dict())
    for ours, theirs in zip(propose_both(resumed, x), propose_both(masker, x)):
        assert torch.equal(ours, theirs)


@pytest.mark.parametrize("name", list(MASKERS))
def test_a_checkpoint_in_the_old_layout_loads_and_gives_the_same_masks(name):
    masker, x = trained(name)
    old = through_file(old_layout_state(name, masker))
    resumed = fresh(name)
    resumed.load_state_dict(old)
    assert resumed.updates == STEPS
    for ours, theirs in zip(propose_both(resumed, x), propose_both(masker, x)):
        assert torch.equal(ours, theirs)


@pytest.mark.parametrize("name,change,part", [
    ("dqn", {"grid": 5}, "agent was built with"),
    ("hpm", {"grid": 5}, "loss predictor was built with"),
    ("saliency", {"grid": 2}, "teacher was used with"),
    ("adios", {"width": 8}, "occluder was built with"),
])
def test_a_checkpoint_of_another_configuration_is_one_sentence(name, change, part):
    state = fresh(name).state_dict()
    other = type(MASKERS[name]())(**change)
    other.setup(context(TinyPredictor(), 2 * STEPS))
    with pytest.raises(UserError, match=f"masker '{name}': the checkpoint's {part}"):
        other.load_state_dict(state)


@pytest.mark.parametrize("name", list(MASKERS))
def test_state_before_setup_is_a_clear_error(name):
    masker = MASKERS[name]()
    with pytest.raises(RuntimeError, match=r"setup\(\) must be called before state_dict\(\)"):
        masker.state_dict()
    with pytest.raises(RuntimeError, match=r"setup\(\) must be called before load_state_dict\(\)"):
        masker.load_state_dict({})
