"""The automatic ``--threads`` default: half of the cores this process may use, 1 to 8."""

from __future__ import annotations

import pytest
import torch

from sslkit import runtime
from sslkit.errors import UserError


@pytest.mark.parametrize("cores, expected", [(1, 1), (2, 1), (3, 1), (4, 2), (16, 8), (64, 8)])
def test_the_default_is_half_the_usable_cores_within_bounds(monkeypatch, cores, expected):
    monkeypatch.setattr(runtime, "usable_cores", lambda: cores)
    assert runtime.default_threads() == expected
    assert runtime.resolved_threads(0) == runtime.resolved_threads(None) == expected
    assert runtime.resolved_threads(3) == 3


def test_usable_cores_follows_the_affinity_not_the_machine(monkeypatch):
    from sslkit import cpu_cores

    monkeypatch.setattr(cpu_cores.os, "sched_getaffinity", lambda pid: {0, 5, 7}, raising=False)
    assert runtime.usable_cores() == cpu_cores.usable_cores() == 3  # one definition, in sslkit.cpu_cores


def test_cpu_threads_sets_the_default_and_restores(monkeypatch):
    monkeypatch.setattr(runtime, "usable_cores", lambda: 4)
    torch.set_num_threads(1)
    with runtime.cpu_threads(0):
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == 1


def test_the_note_says_how_the_count_was_chosen(monkeypatch):
    monkeypatch.setattr(runtime, "usable_cores", lambda: 2)
    assert runtime.threads_note(0) == "1 CPU thread (automatic: half of 2 usable cores)"
    assert runtime.threads_note(3) == "3 CPU threads (--threads)"
    with pytest.raises(UserError, match="zero \\(automatic\\) or positive"):
        runtime.threads_note(-1)
