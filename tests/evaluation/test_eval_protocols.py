"""The protocol table is the one source of the CLI's choices, the defaults and the heads."""

from __future__ import annotations

import click
import pytest

from sslkit.commands.compare_cmd import compare_command
from sslkit.commands.finetune_cmd import finetune_command
from sslkit.finetuning.config import FinetuneConfig
from sslkit.errors import UserError
from sslkit.finetuning.classifier import LinearHead, PaperHead, build_head
from sslkit.finetuning.protocols import PROTOCOL_NAMES, PROTOCOLS, get_protocol


def _choices(command: click.Command, name: str) -> tuple[str, ...]:
    option = next(p for p in command.params if p.name == name)
    return tuple(option.type.choices)


def test_commands_offer_exactly_the_table_protocols():
    assert _choices(finetune_command, "protocol") == PROTOCOL_NAMES == _choices(compare_command, "protocol")
    assert set(PROTOCOL_NAMES) == {"linear", "paper", "full", "frozen"}


def test_each_task_names_its_protocols_from_the_table():
    from sslkit.finetuning.tasks import get_task

    assert get_task("classification").protocols == ("linear", "paper", "full")
    assert get_task("segmentation").protocols == ("full", "frozen")
    assert PROTOCOLS["frozen"].frozen and PROTOCOLS["frozen"].head == "task"
    from sslkit.finetuning.config import TASK_DEFAULT_PROTOCOLS  # the shortcut that avoids loading plugins

    assert TASK_DEFAULT_PROTOCOLS == {name: get_task(name).protocols[0] for name in TASK_DEFAULT_PROTOCOLS}


@pytest.mark.parametrize("name", ["linear", "paper", "full"])
def test_each_protocol_sets_defaults_and_head(name):
    protocol = PROTOCOLS[name]
    config = FinetuneConfig(protocol=name)
    assert config.resolved_epochs() == protocol.default_epochs
    assert config.resolved_lr_schedule() == protocol.lr_schedule
    head = build_head(name, 8, 3)
    assert isinstance(head, {"paper": PaperHead, "linear": LinearHead}[protocol.head])
    assert (getattr(head, "standardizer", None) is not None) == protocol.frozen


def test_the_paper_defaults_match_the_authors():
    paper = get_protocol("paper")
    assert (paper.frozen, paper.default_epochs, paper.lr_schedule, paper.paper_splits) == (True, 200, "paper", True)
    assert get_protocol("full").frozen is False


def test_unknown_protocol_is_one_sentence_with_a_suggestion():
    with pytest.raises(UserError, match=r"unknown protocol 'papr' \(did you mean 'paper'\?\); known: linear, paper, full"):
        get_protocol("papr")

