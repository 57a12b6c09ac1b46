"""Fixtures for the engine tests: a tiny synthetic dataset and a tiny, fast run configuration.

The data is 16 smooth 32 x 32 grey images (train 10, val 2, test 4) with lesion masks, so a run
at batch 4 has 3 steps per epoch on train+val; the backbone is timm's smallest MobileNetV3
(0.4 M parameters) so a 3-epoch run takes a few seconds on one CPU core.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from engine_cli_args import cli_args as _cli_args

TINY_BACKBONE = "mobilenetv3_small_050"


def _images(rng: np.random.Generator, n: int, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size] / size
    images, masks = [], []
    for _ in range(n):
        cy, cx, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.1, 0.25)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r**2))
        texture = 0.15 * np.sin(xx * rng.uniform(5, 15)) * np.cos(yy * rng.uniform(5, 15))
        img = np.clip(0.2 + 0.6 * blob + texture + 0.03 * rng.standard_normal((size, size)), 0, 1)
        images.append((img * 255).astype(np.uint8))
        masks.append((blob > 0.6).astype(np.uint8))
    return np.stack(images), np.stack(masks)


@pytest.fixture(scope="session")
def tiny_npz(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    arrays = {"classes": np.array(["a", "b"])}
    for split, n in (("train", 10), ("val", 2), ("test", 4)):
        images, masks = _images(rng, n)
        arrays[f"{split}_images"] = images
        arrays[f"{split}_masks"] = masks
        arrays[f"{split}_labels"] = (np.arange(n) % 2).astype(np.uint8)
    path = tmp_path_factory.mktemp("tinydata") / "tiny.npz"
    np.savez(path, **arrays)
    return path


@pytest.fixture
def tiny_options(tiny_npz) -> dict:
    """PretrainConfig values for a run of 3 steps per epoch (also used as CLI options)."""
    return {
        "data": f"npz:{tiny_npz}",
        "backbone": TINY_BACKBONE,
        "image_size": 32,
        "batch_size": 4,
        "epochs": 3,
        "device": "cpu",
        "quiet": True,
        "log_every": 1,
        "log_images_every": 2,
        "seed": 3,
    }


def _checkpoint(run_dir: Path, name: str = "last.pt") -> dict:
    import torch

    return torch.load(Path(run_dir) / "checkpoints" / name, map_location="cpu", weights_only=False)


def _assert_same_weights(a: dict, b: dict) -> None:
    import torch

    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs"


@pytest.fixture
def cli_args():
    return _cli_args


@pytest.fixture
def read_checkpoint():
    return _checkpoint


@pytest.fixture
def assert_same_weights():
    return _assert_same_weights


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """One intra-op thread: on a busy shared machine OpenMP threads waiting for each other made a
    6-step run 10x slower; one thread is also the most reproducible setting."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
