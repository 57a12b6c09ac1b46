"""Shared fixtures: the real data beside the checkout, seeded torch, a temporary run dir."""

from __future__ import annotations

import os
from pathlib import Path

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
