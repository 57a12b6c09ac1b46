"""Fixtures of the fault suite: tiny data, a tiny backbone and ways to run the real CLI.

Runs are 16 smooth 32 x 32 grey images (train 10, val 2, test 4), batch 4 (3 steps per epoch on
train+val), timm's smallest MobileNetV3 and one thread, so a run takes a second or two; runs that
must die by a real signal go through a subprocess (``python -m sslkit``), the rest in-process
through :func:`sslkit.cli.run_cli`, the console script's own entry point.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fault_helpers import TINY_BACKBONE

from sslkit.engine.pretrain import INTERRUPT_ENV, KILL_ENV


def _images(rng: np.random.Generator, n: int, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size] / size
    images, masks = [], []
    for _ in range(n):
        cy, cx, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.1, 0.25)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r**2))
        img = np.clip(0.2 + 0.6 * blob + 0.03 * rng.standard_normal((size, size)), 0, 1)
        images.append((img * 255).astype(np.uint8))
        masks.append((blob > 0.6).astype(np.uint8))
    return np.stack(images), np.stack(masks)


@pytest.fixture(scope="session")
def tiny_npz(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    arrays = {"classes": np.array(["a", "b"])}
    for split, n in (("train", 10), ("val", 2), ("test", 4)):
        images, masks = _images(rng, n)
        arrays[f"{split}_images"], arrays[f"{split}_masks"] = images, masks
        arrays[f"{split}_labels"] = (np.arange(n) % 2).astype(np.uint8)
    path = tmp_path_factory.mktemp("faultdata") / "tiny.npz"
    np.savez(path, **arrays)
    return path


@pytest.fixture
def tiny_args(tiny_npz) -> list[str]:
    """``sslkit pretrain`` options of a 2-epoch x 3-step run."""
    return ["--data", f"npz:{tiny_npz}", "--backbone", TINY_BACKBONE, "--image-size", "32", "--batch-size", "4",
            "--epochs", "2", "--device", "cpu", "--threads", "1", "--seed", "3", "--log-images-every", "0", "-q"]


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run the CLI in-process through ``run_cli``; returns (exit code, stdout, stderr)."""
    from sslkit.cli import run_cli

    # Set (empty = off) rather than deleted, so that teardown removes what `--debug` puts into
    # os.environ during a test (it must reach --nproc children) instead of leaking it to later tests.
    monkeypatch.setenv("SSLKIT_DEBUG", "")
    monkeypatch.delenv(KILL_ENV, raising=False)
    monkeypatch.delenv(INTERRUPT_ENV, raising=False)

    def invoke(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = run_cli(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
