"""Helpers of the fault suite shared by its test files (running the CLI, reading checkpoints)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sslkit.pretraining.train_loop import INTERRUPT_ENV, KILL_ENV

TINY_BACKBONE = "mobilenetv3_small_050"


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (KILL_ENV, INTERRUPT_ENV, "SSLKIT_DEBUG")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **extra)
    return env


def run_sslkit(args: list[str], timeout: float = 180, **env: str) -> subprocess.CompletedProcess:
    """``python -m sslkit ARGS`` in a fresh process (for real signals and real exit codes)."""
    return subprocess.run([sys.executable, "-m", "sslkit", *args], env=subprocess_env(**env), capture_output=True,
                          text=True, timeout=timeout)


def read_checkpoint(run_dir: Path, name: str = "last.pt") -> dict:
    from sslkit.pretraining.checkpoint import load_checkpoint

    return load_checkpoint(Path(run_dir) / "checkpoints" / name)


def one_sentence(err: str) -> str:
    """The single error line; fails when the output holds a traceback or several errors."""
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, err
    return lines[0]
