"""``sslkit pretrain --masker dqn`` resumes exactly: a run interrupted mid-epoch (the engine's
Ctrl-C test hook) and resumed ends with the same predictor, the same agent (network, optimizer,
schedule, reward statistics, generator) and the same agent scalars as the uninterrupted run.
Tiny: 12 + 4 images of 32 px with lesions, batch 4, timm's smallest MobileNetV3, 3 x 4 steps.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("sslkit.pretraining.run")

from sslkit.pretraining.config import PretrainConfig  # noqa: E402
from sslkit.pretraining.train_loop import INTERRUPT_ENV
from sslkit.pretraining.run import resume_config, run_pretraining
from sslkit.pretraining.train_state import TrainingInterrupted


@pytest.fixture
def tiny_npz(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"classes": np.array(["a", "b"])}
    for split, n in (("train", 12), ("val", 4), ("test", 2)):
        images = rng.integers(0, 255, (n, 32, 32)).astype(np.uint8)
        images[:, :16] //= 8  # half of each image smooth and dark, half noisy
        masks = np.zeros((n, 32, 32), np.uint8)
        masks[:, 4:12, 20:30] = 1
        arrays.update({f"{split}_images": images, f"{split}_masks": masks, f"{split}_labels": np.arange(n) % 2})
    path = tmp_path / "tiny.npz"
    np.savez(path, **arrays)
    return path


def config(data, out, **changes) -> PretrainConfig:
    values = dict(
        data=f"npz:{data}", backbone="mobilenetv3_small_050", image_size=32, batch_size=4, epochs=3, device="cpu",
        quiet=True, log_every=1, log_images_every=0, seed=5, masker="dqn",
        masker_options={"grid": 4, "exploration": "epsilon", "explore_fraction": 0.5, "epsilon_end": 0.3},
        out=str(out),
    )
    values.update(changes)
    return PretrainConfig(**values)


def read(run_dir):
    return torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)


def test_interrupted_dqn_run_resumes_exactly(tmp_path, tiny_npz, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    run_pretraining(config(tiny_npz, tmp_path / "full"))
    full = read(tmp_path / "full")

    run_dir = tmp_path / "interrupted"
    monkeypatch.setenv(INTERRUPT_ENV, "6")  # epoch 2, batch 2
    with pytest.raises(TrainingInterrupted):
        run_pretraining(config(tiny_npz, run_dir))
    assert read(run_dir)["step"] == 6
    monkeypatch.delenv(INTERRUPT_ENV)
    run_pretraining(resume_config(run_dir), resume=run_dir)
    resumed = read(run_dir)

    assert resumed["step"] == full["step"] == 12
    for key, value in full["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
    a, b = full["masker"], resumed["masker"]
    assert a["updates"] == b["updates"] == 12
    for key, value in a["qnet"].items():
        assert torch.equal(value, b["qnet"][key]), key
    assert torch.equal(a["generator"], b["generator"])
    assert a["normalizer"] == b["normalizer"] and a["scheduler"] == b["scheduler"]
    for ours, theirs in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    agent_columns = [k for k in full["history"][-1] if k.startswith("masker/")]
    assert "masker/lesion_hit_rate_random" in agent_columns and "masker/agent_loss" in agent_columns
    assert [{k: r[k] for k in agent_columns} for r in full["history"]] == [{k: r[k] for k in agent_columns} for r in resumed["history"]]
