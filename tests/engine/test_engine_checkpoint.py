"""Atomic checkpoints, clear errors for missing/corrupt files, and RNG capture/restore."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from sslkit.pretraining import checkpoint as ckpt
from sslkit.errors import UserError


def _state(value: float) -> dict:
    return {"format": ckpt.FORMAT, "format_version": ckpt.FORMAT_VERSION, "w": torch.full((3,), value)}


def test_atomic_save_and_load(tmp_path):
    path = tmp_path / "checkpoints" / "last.pt"
    ckpt.atomic_save(_state(1.0), path)
    assert torch.equal(ckpt.load_checkpoint(path)["w"], torch.ones(3))
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temporary files left


def test_failed_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    ckpt.atomic_save(_state(1.0), path)

    def dies_half_way(obj, handle):
        handle.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt  # e.g. Ctrl-C in the middle of torch.save

    monkeypatch.setattr(ckpt.torch, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        ckpt.atomic_save(_state(2.0), path)
    monkeypatch.undo()
    assert torch.equal(ckpt.load_checkpoint(path)["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_missing_checkpoint_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        ckpt.load_checkpoint(tmp_path / "last.pt")


def test_truncated_checkpoint_is_a_user_error(tmp_path):
    path = tmp_path / "last.pt"
    ckpt.atomic_save(_state(1.0), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="unreadable"):
        ckpt.load_checkpoint(path)


def test_foreign_file_is_a_user_error(tmp_path):
    path = tmp_path / "last.pt"
    torch.save({"weights": 1}, path)
    with pytest.raises(UserError, match="not an sslkit pretraining checkpoint"):
        ckpt.load_checkpoint(path)


def test_rng_states_round_trip(tmp_path):
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    states = ckpt.capture_rng_states()
    ckpt.atomic_save({"format": ckpt.FORMAT, "rng": states}, tmp_path / "r.pt")
    first = (random.random(), np.random.rand(), torch.rand(2))
    ckpt.restore_rng_states(ckpt.load_checkpoint(tmp_path / "r.pt")["rng"])
    second = (random.random(), np.random.rand(), torch.rand(2))
    assert first[0] == second[0] and first[1] == second[1] and torch.equal(first[2], second[2])
