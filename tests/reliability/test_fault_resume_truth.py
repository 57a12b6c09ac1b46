"""``--resume`` tells the truth: a ``config.yaml`` edited after the run started is refused (the
checkpoint holds the settings it was trained with), so is another CPU thread count (it changes
the weights), and a finished run says it is finished, even with ``-q``."""

from __future__ import annotations


import pytest
from fault_helpers import one_sentence, read_checkpoint

from sslkit.pretraining.checkpoint import atomic_save
from sslkit.pretraining.train_loop import INTERRUPT_ENV


@pytest.fixture
def stopped_run(cli, tiny_args, tmp_path, monkeypatch):
    """A run stopped by Ctrl-C after step 2 of 6."""
    run_dir = tmp_path / "run"
    monkeypatch.setenv(INTERRUPT_ENV, "2")
    code, _, err = cli("pretrain", *tiny_args, "--out", str(run_dir))
    monkeypatch.delenv(INTERRUPT_ENV)
    assert code == 130, err
    return run_dir


def test_a_hand_edited_config_is_refused_in_one_sentence(cli, stopped_run):
    config = stopped_run / "config.yaml"
    text = config.read_text()
    assert "\nlr: 0.001\n" in text and "\nseed: 3\n" in text
    config.write_text(text.replace("\nlr: 0.001\n", "\nlr: 0.01\n").replace("\nseed: 3\n", "\nseed: 4\n"))
    code, _, err = cli("pretrain", "--resume", str(stopped_run))
    assert code == 2
    assert one_sentence(err) == (
        f"Error: cannot resume '{stopped_run}': its config.yaml no longer holds the settings the run was trained "
        f"with (lr 0.001 -> 0.01; seed 3 -> 4); a run continues only with its own settings, so undo the edit, or "
        f"start a new run from the edited file with --config {stopped_run / 'config.yaml'} --out NEW_DIR")
    config.write_text(text)  # undone: it resumes
    assert cli("pretrain", "--resume", str(stopped_run))[0] == 0


def test_resuming_with_another_thread_count_is_refused_naming_the_right_one(cli, stopped_run):
    path = stopped_run / "checkpoints" / "last.pt"
    state = read_checkpoint(stopped_run)
    assert state["cpu_threads"] == 1
    state["cpu_threads"] = 2  # as if trained with --threads 2 (this test may run on one core)
    atomic_save(state, path)
    code, _, err = cli("pretrain", "--resume", str(stopped_run), "--threads", "1")
    assert code == 2
    line = one_sentence(err)
    assert f"cannot resume '{stopped_run}' with 1 CPU thread(s): it was trained with 2" in line
    assert "the thread count changes the weights" in line


def test_resuming_a_finished_run_says_it_is_finished(cli, tiny_args, stopped_run):
    assert cli("pretrain", "--resume", str(stopped_run))[0] == 0
    before = read_checkpoint(stopped_run)
    code, _, err = cli("pretrain", "--resume", str(stopped_run), "-q")
    assert code == 0
    assert err.strip() == (f"{stopped_run} already finished its 2 epoch(s) (step 6); nothing to do: its encoder is "
                           f"{stopped_run / 'encoder'}; to train longer, start a new run")
    assert read_checkpoint(stopped_run)["step"] == before["step"] == 6
