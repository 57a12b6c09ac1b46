"""Shared fixtures: the real data beside the checkout, seeded torch, a temporary run dir."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SSLKIT_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real BUSI / BreastMNIST files), or skip with the reason."""
    if not (SHARED_DATA / "busi").is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set SSLKIT_SHARED_DATA or place ../shared beside the repo)")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _seeded_and_quiet(monkeypatch):
    """Every test starts from the same RNG state and single-threaded torch (deterministic, fair on 2 cores)."""
    import random

    import numpy as np
    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    # Two threads on a busy 2-core machine make small convolutions ~100x slower; one is steady.
    torch.set_num_threads(1)
    monkeypatch.setenv("SSLKIT_PLUGINS", "")
    yield


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


# A tiny labelled data set with lesion masks (blobs with texture), shared by the engine and the
# fault suite: 10 train, 2 val and 4 test images of 32 px, two classes.
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
