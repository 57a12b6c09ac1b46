"""Fixtures for the engine tests: a tiny, fast run configuration over the tiny data set.

The data (``tiny_npz``, in the top-level conftest) is 16 smooth 32 x 32 grey images (train 10, val 2, test 4) with lesion masks, so a run
at batch 4 has 3 steps per epoch on train+val; the backbone is timm's smallest MobileNetV3
(0.4 M parameters) so a 3-epoch run takes a few seconds on one CPU core.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from engine_cli_args import cli_args as _cli_args

TINY_BACKBONE = "mobilenetv3_small_050"


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

    return torch.load(Path(run_dir) / "checkpoints" / name, map_location="cpu", weights_only=True)


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
