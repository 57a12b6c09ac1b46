"""Under torchrun, fine-tuning, evaluation and compare run on rank 0 alone."""

import os

import pytest
from click.testing import CliRunner

from sslkit.cli import cli
from sslkit.pretraining.launch import main_process_only


@pytest.mark.parametrize("command", ["finetune", "evaluate", "compare"])
def test_other_ranks_leave_at_once(command, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    result = CliRunner().invoke(cli, [command])
    assert result.exit_code == 0, result.output
    assert f"'sslkit {command}' runs on rank 0 only" in result.output


def test_rank_0_carries_on_as_a_single_process(monkeypatch):
    for name, value in (("WORLD_SIZE", "2"), ("RANK", "0"), ("LOCAL_RANK", "0"), ("LOCAL_WORLD_SIZE", "2")):
        monkeypatch.setenv(name, value)
    assert main_process_only("finetune") is True
    assert (os.environ["WORLD_SIZE"], os.environ["RANK"], os.environ["LOCAL_WORLD_SIZE"]) == ("1", "0", "1")


def test_single_process_is_untouched(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert main_process_only("finetune") is True
    assert "WORLD_SIZE" not in os.environ
