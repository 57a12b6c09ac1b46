"""Exact resume: a run killed (SIGKILL) or interrupted (Ctrl-C) and resumed with --resume ends
with the same weights as the uninterrupted run (CPU, fixed seed).

The kill and the Ctrl-C happen at a chosen step through the engine's test hooks
(``SSLKIT_TEST_KILL_AT_STEP`` / ``SSLKIT_TEST_INTERRUPT_AT_STEP``), so the tests are deterministic.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from sslkit.pretraining.config import PretrainConfig
from sslkit.pretraining.train_loop import INTERRUPT_ENV, KILL_ENV
from sslkit.pretraining.run import resume_config, run_pretraining
from sslkit.pretraining.train_state import TrainingInterrupted


DROP_PATH = 0.2


def _run_cli(args: list[str], extra_env: dict | None = None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in (KILL_ENV, INTERRUPT_ENV)}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **(extra_env or {}))
    return subprocess.Popen(
        [sys.executable, "-m", "sslkit", "pretrain", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _assert_same_state(a, b, where: str = "masker") -> None:
    """Nested dicts/lists of tensors and numbers are equal, tensors bit for bit."""
    import torch

    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_same_state(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same_state(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), f"{where} differs"
    else:
        assert a == b, f"{where} differs"


#: Sparse masked encoding with norm-pixel targets (a 4 x 4 cell grid at 32 px with output stride 8):
#: mask tokens, visible-only BatchNorm statistics and snapped masks must all resume exactly.
SPARSE = ["--encoding", "sparse", "--target", "norm-pixels", "--backbone-opt", "output_stride=8"]


# The learned maskers (their networks, optimizers, teacher and generators are in the checkpoint)
# each get the same kill -9 test as the default masker; so does sparse encoding, with a grid
# masker whose grid it replaces (random-grid) and one whose blocks it snaps (dqn).
@pytest.mark.parametrize("masker,extra", [(None, []), ("hpm", []), ("saliency", []), ("adios", []),
                                          (None, SPARSE), ("dqn", SPARSE)],
                         ids=["default", "hpm", "saliency", "adios", "sparse", "dqn-sparse"])
def test_sigkill_during_epoch_2_then_resume_gives_identical_weights(
    masker, extra, tmp_path, tiny_options, cli_args, read_checkpoint, assert_same_weights
):
    # 3 epochs x 3 steps; stochastic depth draws from torch's global generator, so RNG restore matters
    args = [*cli_args(tiny_options), "--backbone-opt", f"drop_path_rate={DROP_PATH}", *extra]
    if masker:
        args += ["--masker", masker]
    full = _run_cli([*args, "--out", str(tmp_path / "full")])
    killed = _run_cli([*args, "--out", str(tmp_path / "killed")], {KILL_ENV: "5"})  # epoch 2, 2nd step
    out_full, err_full = full.communicate(timeout=120)
    _, err_killed = killed.communicate(timeout=120)
    assert full.returncode == 0, err_full
    assert killed.returncode == -signal.SIGKILL, err_killed
    assert read_checkpoint(tmp_path / "killed")["step"] == 3  # what survived: the epoch-1 checkpoint

    resumed = _run_cli(["--resume", str(tmp_path / "killed")])
    _, err_resumed = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err_resumed

    a, b = read_checkpoint(tmp_path / "full"), read_checkpoint(tmp_path / "killed")
    assert (a["epoch"], a["step"]) == (b["epoch"], b["step"]) == (3, 9)
    assert_same_weights(a["model"], b["model"])
    assert_same_weights(a["optimizer"]["state"][0], b["optimizer"]["state"][0])
    _assert_same_state(a["masker"], b["masker"])
    assert any(k.startswith("mask_tokens.") for k in a["model"]) == bool(extra)  # sparse runs have them
    assert [r["loss"] for r in a["history"]] == [r["loss"] for r in b["history"]]
    assert (tmp_path / "full" / "metrics.csv").read_text().splitlines()[1].split(",")[:3] == (
        tmp_path / "killed" / "metrics.csv"
    ).read_text().splitlines()[1].split(",")[:3]


def _config(options: dict, out) -> PretrainConfig:
    values = {**options, "out": str(out), "log_images_every": 0, "backbone_options": {"drop_path_rate": DROP_PATH}}
    return PretrainConfig(**values)


@pytest.fixture
def full_run(tmp_path, tiny_options, read_checkpoint):
    run_pretraining(_config(tiny_options, tmp_path / "full"))
    return read_checkpoint(tmp_path / "full")


def test_ctrl_c_mid_epoch_saves_and_resumes_exactly(
    tmp_path, tiny_options, monkeypatch, full_run, read_checkpoint, assert_same_weights
):
    run_dir = tmp_path / "interrupted"
    before = signal.getsignal(signal.SIGINT)
    monkeypatch.setenv(INTERRUPT_ENV, "5")  # SIGINT to ourselves after step 5 (epoch 2, batch 2)
    with pytest.raises(TrainingInterrupted) as info:
        run_pretraining(_config(tiny_options, run_dir))
    assert signal.getsignal(signal.SIGINT) is before  # our handler is gone again
    assert f"sslkit pretrain --resume {run_dir}" in info.value.message
    saved = read_checkpoint(run_dir)
    assert (saved["epoch"], saved["batch"], saved["step"]) == (1, 2, 5)  # a mid-epoch checkpoint

    monkeypatch.delenv(INTERRUPT_ENV)
    final = run_pretraining(resume_config(run_dir), resume=run_dir)
    assert final["steps"] == 9
    resumed = read_checkpoint(run_dir)
    assert_same_weights(full_run["model"], resumed["model"])
    assert resumed["history"] == [
        {**row, "images_per_s": r["images_per_s"], "seconds": r["seconds"]}
        for row, r in zip(full_run["history"], resumed["history"])
    ]


def test_checkpoint_every_steps_writes_mid_epoch_checkpoints(tmp_path, tiny_options, read_checkpoint, monkeypatch):
    options = {**tiny_options, "epochs": 1, "checkpoint_every_steps": 2}
    import sslkit.pretraining.run as engine

    saved_steps = []
    real_save = engine.atomic_save

    def recording_save(obj, path):
        saved_steps.append((obj["step"], obj["batch"]))
        return real_save(obj, path)

    monkeypatch.setattr(engine, "atomic_save", recording_save)
    run_pretraining(_config(options, tmp_path / "r"))
    assert saved_steps == [(2, 2), (3, 0)]  # step 2 inside the epoch, then the epoch's end


def test_resume_refuses_changes_that_break_exactness(tmp_path, tiny_options):
    run_dir = tmp_path / "r"
    run_pretraining(_config({**tiny_options, "epochs": 1}, run_dir))
    from sslkit.errors import UserError

    with pytest.raises(UserError, match="--lr cannot be changed when resuming"):
        resume_config(run_dir, {"lr": 0.5})
    assert resume_config(run_dir, {"workers": 1}).workers == 1
    final = run_pretraining(resume_config(run_dir), resume=run_dir)  # already finished: no-op
    assert final["steps"] == 3


def test_resume_without_checkpoint_is_a_user_error(tmp_path):
    from sslkit.errors import UserError

    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="has no checkpoint"):
        resume_config(tmp_path / "empty")
    with pytest.raises(UserError, match="is not a directory"):
        resume_config(tmp_path / "missing")
