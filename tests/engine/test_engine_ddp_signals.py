"""SIGTERM to ``sslkit pretrain --nproc 2``'s launcher, as a scheduler sends it: the launcher
passes it on, every rank stops after the same step, rank 0 writes one checkpoint (holding both
ranks' states) and says so once, exit 143; ``--resume`` with two processes then reaches the
weights of the uninterrupted two-process run. The stopped run and the reference run side by side."""

from __future__ import annotations

import os
import subprocess
import sys

import torch

from sslkit.pretraining.checkpoint import load_checkpoint
from sslkit.pretraining.train_loop import INTERRUPT_ENV, KILL_ENV, SIGNAL_ENV

STEPS = 6  # 2 epochs x 3 steps (12 train+val images, global batch 4)
LAUNCHER_ENV = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", KILL_ENV,
                INTERRUPT_ENV, SIGNAL_ENV, "SSLKIT_DEBUG")


def _sslkit(args: list[str], **extra: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_ENV}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", SSLKIT_PLUGINS="", **extra)
    return subprocess.Popen([sys.executable, "-m", "sslkit", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _last(run_dir) -> dict:
    return load_checkpoint(run_dir / "checkpoints" / "last.pt")


def test_sigterm_to_the_nproc_launcher_stops_every_rank_at_one_step_and_resumes_exactly(tiny_npz, tmp_path):
    args = ["pretrain", "--data", f"npz:{tiny_npz}", "--backbone", "mobilenetv3_small_050", "--image-size", "32",
            "--batch-size", "4", "--epochs", "2", "--device", "cpu", "--threads", "1", "--seed", "3",
            "--log-images-every", "0", "-q", "--nproc", "2"]
    run_dir = tmp_path / "run"
    stopped = _sslkit([*args, "--out", str(run_dir)], **{SIGNAL_ENV: "2:SIGTERM:launcher"})
    full = _sslkit([*args, "--out", str(tmp_path / "full")])
    _, stopped_err = stopped.communicate(timeout=300)
    _, full_err = full.communicate(timeout=300)
    assert full.returncode == 0, full_err
    assert stopped.returncode == 143, stopped_err
    lines = [line for line in stopped_err.splitlines() if "Interrupted" in line]
    assert len(lines) == 1, stopped_err  # rank 0 alone says it, once
    saved = _last(run_dir)
    step = saved["step"]
    assert lines[0] == (f"Interrupted by SIGTERM after step {step}; checkpoint saved to "
                        f"{run_dir / 'checkpoints' / 'last.pt'}; continue with: sslkit pretrain --resume {run_dir}")
    assert 2 <= step < STEPS
    assert len(saved["ranks"]) == 2  # both ranks' masker and random states, in the one checkpoint

    resumed = _sslkit(["pretrain", "--resume", str(run_dir), "--nproc", "2"])
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    a, b = _last(tmp_path / "full"), _last(run_dir)
    assert a["step"] == b["step"] == STEPS
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
