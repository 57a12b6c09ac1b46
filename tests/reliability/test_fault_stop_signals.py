"""SIGTERM (schedulers, torchrun) and SIGUSR1 (SLURM's early warning) stop like Ctrl-C: the step
is finished, a checkpoint saved, the resume command printed, exit 128 + the signal's number; and
``--resume`` reaches the weights of the uninterrupted run. The same with ``--nproc 2`` (the
launcher gets the signal: ``tests/engine/test_engine_ddp_signals.py``) and in ``compare``."""

from __future__ import annotations

import os
import signal
import time

import pytest
import torch
from fault_helpers import read_checkpoint

from sslkit.pretraining.train_loop import SIGNAL_ENV

STEPS = 6  # tiny_args: 2 epochs x 3 steps


def _same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def _stop(cli, monkeypatch, tiny_args, run_dir, name: str, code: int) -> None:
    """The signal really sent to this process after step 4 (a test hook), handled in-process."""
    monkeypatch.setenv(SIGNAL_ENV, f"4:{name}")
    got, _, err = cli("pretrain", *tiny_args, "--out", str(run_dir))
    monkeypatch.delenv(SIGNAL_ENV)
    assert got == code, err
    assert err.strip().splitlines()[-1] == (
        f"Interrupted by {name} after step 4; checkpoint saved to {run_dir / 'checkpoints' / 'last.pt'}; "
        f"continue with: sslkit pretrain --resume {run_dir}")
    assert read_checkpoint(run_dir)["step"] == 4
    assert signal.getsignal(getattr(signal, name)) is signal.SIG_DFL  # handlers restored


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="no SIGUSR1 here")
def test_sigusr1_saves_the_step_and_exits_128_plus_its_number(cli, monkeypatch, tiny_args, tmp_path):
    _stop(cli, monkeypatch, tiny_args, tmp_path / "run", "SIGUSR1", 128 + signal.SIGUSR1)


def test_sigterm_saves_the_step_then_resume_equals_the_uninterrupted_run(cli, monkeypatch, tiny_args, tmp_path):
    run_dir = tmp_path / "run"
    _stop(cli, monkeypatch, tiny_args, run_dir, "SIGTERM", 143)
    assert cli("pretrain", *tiny_args, "--out", str(tmp_path / "full"))[0] == 0
    code, _, err = cli("pretrain", "--resume", str(run_dir))
    assert code == 0, err
    a, b = read_checkpoint(tmp_path / "full"), read_checkpoint(run_dir)
    assert a["step"] == b["step"] == STEPS
    _same_weights(a["model"], b["model"])


def test_sigterm_in_compare_pretraining_saves_and_exits_143_with_the_rerun_hint(stopped_compare):
    _, folder, code, err = stopped_compare
    assert code == 143, err
    assert "Interrupted; finished cells and checkpoints are kept in" in err.strip().splitlines()[-1]
    last = next((folder / "runs").rglob("last.pt"))
    assert read_checkpoint(last.parent.parent)["step"] == 2


def test_sigterm_in_compare_outside_pretraining_exits_143_at_once(cli, tmp_path, monkeypatch):
    import sslkit.comparison.run as compare

    def fine_tuning(*args, **kwargs):  # a scheduler stops the job while a fine-tuning cell runs
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        raise AssertionError("SIGTERM did not stop compare")

    monkeypatch.setattr(compare, "run_compare", fine_tuning)
    code, _, err = cli("compare", "--maskers", "random", "--out", str(tmp_path / "cmp"))
    assert code == 143
    assert err.strip().splitlines()[-1].startswith(f"Interrupted; finished cells and checkpoints are kept in {tmp_path / 'cmp'}/runs; ")
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored after the command
