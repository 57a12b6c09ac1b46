"""SIGTERM (schedulers, torchrun) and SIGUSR1 (SLURM's early warning) stop like Ctrl-C: the step
is finished, a checkpoint saved, the resume command printed, exit 128 + the signal's number; and
``--resume`` reaches the weights of the uninterrupted run. The same with ``--nproc 2`` (the
launcher gets the signal, as from a scheduler, and passes it on: every rank stops at one step,
one checkpoint) and in ``compare``."""

from __future__ import annotations

import os
import signal
import time

import pytest
import torch
from fault_helpers import read_checkpoint, run_sslkit

from sslkit.engine.train_loop import SIGNAL_ENV

STEPS = 6  # tiny_args: 2 epochs x 3 steps


def _same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("name, code", [("SIGTERM", 143), ("SIGUSR1", 128 + getattr(signal, "SIGUSR1", 10))])
def test_a_stop_signal_saves_the_step_then_resume_equals_the_uninterrupted_run(cli, tiny_args, tmp_path, name, code):
    if not hasattr(signal, name):
        pytest.skip(f"no {name} here")
    run_dir = tmp_path / "run"
    stopped = run_sslkit(["pretrain", *tiny_args, "--out", str(run_dir)], **{SIGNAL_ENV: f"4:{name}"})
    assert stopped.returncode == code, stopped.stderr
    assert stopped.stderr.strip().splitlines()[-1] == (
        f"Interrupted by {name} after step 4; checkpoint saved to {run_dir / 'checkpoints' / 'last.pt'}; "
        f"continue with: sslkit pretrain --resume {run_dir}")
    assert read_checkpoint(run_dir)["step"] == 4

    assert cli("pretrain", *tiny_args, "--out", str(tmp_path / "full"))[0] == 0
    code, _, err = cli("pretrain", "--resume", str(run_dir))
    assert code == 0, err
    a, b = read_checkpoint(tmp_path / "full"), read_checkpoint(run_dir)
    assert a["step"] == b["step"] == STEPS
    _same_weights(a["model"], b["model"])


def test_sigterm_to_the_nproc_launcher_stops_every_rank_at_one_step(tiny_args, tmp_path):
    args = [*tiny_args, "--nproc", "2"]
    run_dir = tmp_path / "run"
    stopped = run_sslkit(["pretrain", *args, "--out", str(run_dir)], **{SIGNAL_ENV: "2:SIGTERM:launcher"})
    assert stopped.returncode == 143, stopped.stderr
    lines = [line for line in stopped.stderr.splitlines() if "Interrupted" in line]
    assert len(lines) == 1, stopped.stderr  # rank 0 alone says it, once
    step = read_checkpoint(run_dir)["step"]
    assert lines[0] == (f"Interrupted by SIGTERM after step {step}; checkpoint saved to "
                        f"{run_dir / 'checkpoints' / 'last.pt'}; continue with: sslkit pretrain --resume {run_dir}")
    assert 2 <= step < STEPS
    assert len(read_checkpoint(run_dir)["ranks"]) == 2  # both ranks' states, in the one checkpoint

    full = run_sslkit(["pretrain", *args, "--out", str(tmp_path / "full")])
    assert full.returncode == 0, full.stderr
    resumed = run_sslkit(["pretrain", "--resume", str(run_dir), "--nproc", "2"])
    assert resumed.returncode == 0, resumed.stderr
    a, b = read_checkpoint(tmp_path / "full"), read_checkpoint(run_dir)
    assert a["step"] == b["step"] == STEPS
    _same_weights(a["model"], b["model"])


def test_sigterm_in_compare_pretraining_saves_and_exits_143_with_the_rerun_hint(tiny_npz, tmp_path):
    args = ["compare", "--maskers", "random", "--no-scratch", "--seeds", "1", "--data", f"npz:{tiny_npz}",
            "--labels", "all", "--protocol", "linear", "--backbone", "mobilenetv3_small_050", "--image-size", "32",
            "--pretrain-epochs", "2", "--pretrain-batch-size", "4", "--finetune-epochs", "1", "--device", "cpu",
            "--threads", "1", "--out", str(tmp_path / "results"), "--runs-dir", str(tmp_path / "runs"), "--quiet"]
    stopped = run_sslkit(args, **{SIGNAL_ENV: "2:SIGTERM"})
    assert stopped.returncode == 143, stopped.stderr
    assert "Interrupted; finished cells and checkpoints are kept in" in stopped.stderr.strip().splitlines()[-1]
    last = next((tmp_path / "runs").rglob("last.pt"))
    assert read_checkpoint(last.parent.parent)["step"] == 2


def test_sigterm_in_compare_outside_pretraining_exits_143_at_once(cli, tmp_path, monkeypatch):
    import sslkit.engine.compare as compare

    def fine_tuning(*args, **kwargs):  # a scheduler stops the job while a fine-tuning cell runs
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        raise AssertionError("SIGTERM did not stop compare")

    monkeypatch.setattr(compare, "run_compare", fine_tuning)
    code, _, err = cli("compare", "--maskers", "random", "--out", str(tmp_path / "cmp"))
    assert code == 143
    assert err.strip().splitlines()[-1].startswith(f"Interrupted; finished cells and checkpoints are kept in {tmp_path / 'cmp'}/runs; ")
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored after the command
