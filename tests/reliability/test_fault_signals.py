"""Signals: kill -9 at any step then --resume equals the uninterrupted run (every registered
masker); a SIGKILL loop while checkpointing every step leaves a loadable last.pt and no
temporaries; Ctrl-C (once or twice) saves what it can and exits 130 with the resume command;
Ctrl-C in ``sslkit compare`` exits 130 with the rerun hint."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time

import pytest
import torch
from fault_helpers import read_checkpoint, run_sslkit, subprocess_env

from sslkit.pretraining.train_loop import INTERRUPT_ENV, KILL_ENV
from sslkit.plugins import get_plugins

STEPS = 6  # tiny_args: 2 epochs x 3 steps


def _same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("masker", get_plugins().maskers.names())
def test_kill_9_at_a_random_step_then_resume_equals_the_uninterrupted_run(cli, tiny_args, tmp_path, masker):
    kill_at = random.Random(masker).randint(1, STEPS - 1)  # seeded by the name: the same step every run
    args = [*tiny_args, "--masker", masker, "--checkpoint-every-steps", "1"]
    killed = subprocess.Popen([sys.executable, "-m", "sslkit", "pretrain", *args, "--out", str(tmp_path / "killed")],
                              env=subprocess_env(**{KILL_ENV: str(kill_at)}), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    code, _, err = cli("pretrain", *args, "--out", str(tmp_path / "full"))  # meanwhile, in this process
    assert code == 0, err
    _, killed_err = killed.communicate(timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed_err
    assert read_checkpoint(tmp_path / "killed")["step"] == kill_at - 1  # killed before its own save

    code, _, err = cli("pretrain", "--resume", str(tmp_path / "killed"))
    assert code == 0, err
    a, b = read_checkpoint(tmp_path / "full"), read_checkpoint(tmp_path / "killed")
    assert a["step"] == b["step"] == STEPS
    _same_weights(a["model"], b["model"])
    assert [r["loss"] for r in a["history"]] == [r["loss"] for r in b["history"]]


def test_sigkill_loop_while_checkpointing_every_step_leaves_a_good_checkpoint(cli, tiny_args, tmp_path):
    from sslkit.pretraining.checkpoint import load_checkpoint

    run_dir = tmp_path / "run"
    last = run_dir / "checkpoints" / "last.pt"
    args = [*tiny_args, "--epochs", "4", "--checkpoint-every-steps", "1"]
    rng = random.Random(0)
    for attempt in range(3):
        command = ["pretrain", *args, "--out", str(run_dir)] if attempt == 0 else ["pretrain", "--resume", str(run_dir)]
        before = last.stat().st_mtime_ns if last.exists() else 0
        process = subprocess.Popen([sys.executable, "-m", "sslkit", *command], env=subprocess_env(),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while process.poll() is None and time.monotonic() < deadline:  # training has begun: a checkpoint appeared
            if last.exists() and last.stat().st_mtime_ns != before:
                break
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.2))  # then SIGKILL at a random moment, mid-write or not
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=60)
        assert load_checkpoint(last)["step"] >= 1  # always loadable: whole and matching its checksum
    code, _, err = cli("pretrain", "--resume", str(run_dir))
    assert code == 0, err
    assert read_checkpoint(run_dir)["step"] == 12
    leftovers = [p.name for folder in (run_dir, run_dir / "checkpoints", run_dir / "encoder")
                 for p in folder.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_ctrl_c_saves_and_exits_130_with_the_resume_command(tiny_args, tmp_path):
    run_dir = tmp_path / "run"
    result = run_sslkit(["pretrain", *tiny_args, "--out", str(run_dir)], **{INTERRUPT_ENV: "4"})
    assert result.returncode == 130, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"Interrupted after step 4; checkpoint saved to {run_dir / 'checkpoints' / 'last.pt'}; "
        f"continue with: sslkit pretrain --resume {run_dir}")
    assert read_checkpoint(run_dir)["step"] == 4


def test_second_ctrl_c_during_the_save_keeps_the_previous_checkpoint(cli, tiny_args, tmp_path, monkeypatch):
    import sslkit.pretraining.run as pretrain

    real_save, calls = pretrain.atomic_save, []

    def interrupted_save(state, path):  # the 2nd save is the one Ctrl-C asked for; Ctrl-C comes again
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_save(state, path)

    monkeypatch.setattr(pretrain, "atomic_save", interrupted_save)
    monkeypatch.setenv(INTERRUPT_ENV, "4")  # SIGINT to this process after step 4 (epoch 2)
    run_dir = tmp_path / "run"
    code, _, err = cli("pretrain", *tiny_args, "--out", str(run_dir))
    monkeypatch.delenv(INTERRUPT_ENV)
    monkeypatch.setattr(pretrain, "atomic_save", real_save)
    assert code == 130
    assert err.strip().splitlines()[-1] == (
        f"Interrupted again before a checkpoint was saved; the last good checkpoint "
        f"{run_dir / 'checkpoints' / 'last.pt'} (step 3) is kept; continue with: sslkit pretrain --resume {run_dir}")
    assert read_checkpoint(run_dir)["step"] == 3
    assert cli("pretrain", "--resume", str(run_dir))[0] == 0
    assert read_checkpoint(run_dir)["step"] == STEPS


def test_ctrl_c_in_compare_exits_130_with_the_rerun_hint(cli, tmp_path, monkeypatch):
    import sslkit.comparison.run as compare

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(compare, "run_compare", interrupted)
    code, _, err = cli("compare", "--maskers", "random", "--out", str(tmp_path / "cmp"))
    assert code == 130
    assert "Aborted!" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"Interrupted; finished cells and checkpoints are kept in {tmp_path / 'cmp'}/runs; ")
    assert "reuses finished cells and resumes an interrupted pretraining" in line
