"""Runs are protected: one run per folder (OS lock), checksummed checkpoints with a fallback,
no temporaries left behind, a full disk keeps the previous checkpoint, exports readable by others."""

from __future__ import annotations

import errno
import io
import os
import signal
import subprocess
import sys

import pytest
import torch
from fault_helpers import TINY_BACKBONE, one_sentence, read_checkpoint

from sslkit.engine.run_lock import LOCK_NAME, RunDirLock
from sslkit.pretraining.checkpoint import CorruptCheckpoint, load_checkpoint


def _same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


# ------------------------------------------------------------------------------- the lock
def test_a_second_run_on_a_locked_folder_is_refused(cli, tiny_args, tmp_path):
    run_dir = tmp_path / "run"
    with RunDirLock(run_dir):  # another run holds the folder (this process plays it)
        code, _, err = cli("pretrain", *tiny_args, "--out", str(run_dir))
    assert code == 2
    assert one_sentence(err) == (f"Error: '{run_dir}' is in use by another sslkit run (process {os.getpid()}); "
                                 "wait for it to finish, or choose another --out")
    assert sorted(p.name for p in run_dir.iterdir()) == [LOCK_NAME]  # nothing of the refused run


def test_resume_of_a_running_run_is_refused_and_works_once_it_ended(cli, tiny_args, tmp_path):
    run_dir = tmp_path / "run"
    assert cli("pretrain", *tiny_args, "--epochs", "1", "--out", str(run_dir))[0] == 0
    with RunDirLock(run_dir):
        code, _, err = cli("pretrain", "--resume", str(run_dir))
        assert code == 2 and "is in use by another sslkit run" in one_sentence(err)
    assert cli("pretrain", "--resume", str(run_dir))[0] == 0


def test_a_lock_left_by_a_killed_process_does_not_block(cli, tiny_args, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    # a process takes the lock, then dies by SIGKILL with the lock file still there
    holder = subprocess.Popen([sys.executable, "-c",
                               "import os, signal, sys; from sslkit.engine.run_lock import RunDirLock; "
                               f"RunDirLock({str(run_dir)!r}).acquire(); os.kill(os.getpid(), signal.SIGKILL)"])
    assert holder.wait(timeout=60) == -signal.SIGKILL
    assert (run_dir / LOCK_NAME).read_text().strip() == str(holder.pid)
    code, _, err = cli("pretrain", *tiny_args, "--epochs", "1", "--out", str(run_dir))
    assert code == 0, err
    assert read_checkpoint(run_dir)["step"] == 3


# -------------------------------------------------------------------------- checkpoints
def _flip_bits(path, offsets=(4_000, 50_000, 90_000, 130_000)) -> None:
    data = bytearray(path.read_bytes())
    for offset in offsets:
        data[offset % len(data)] ^= 0x10
    path.write_bytes(bytes(data))


def test_a_corrupt_checkpoint_is_detected_and_named(cli, tiny_args, tmp_path):
    run_dir = tmp_path / "run"
    assert cli("pretrain", *tiny_args, "--epochs", "1", "--out", str(run_dir))[0] == 0
    last = run_dir / "checkpoints" / "last.pt"
    _flip_bits(last)
    code, _, err = cli("pretrain", "--resume", str(run_dir))
    assert code == 2
    assert one_sentence(err).startswith(f"Error: checkpoint '{last}' is corrupt: its SHA-256 does not match")


@pytest.mark.parametrize("content", [b"hello, not a checkpoint", bytes(range(256)) * 3, b""])
def test_a_file_that_is_no_checkpoint_is_named_in_one_sentence(content, tmp_path):
    path = tmp_path / "last.pt"
    path.write_bytes(content)
    with pytest.raises(CorruptCheckpoint) as caught:
        load_checkpoint(path)
    assert str(caught.value).startswith(f"checkpoint '{path}' is unreadable: not a PyTorch zip archive")


def test_a_corrupt_last_checkpoint_falls_back_to_the_previous_good_one(cli, tiny_args, tmp_path):
    run_dir, full = tmp_path / "run", tmp_path / "full"
    assert cli("pretrain", *tiny_args, "--checkpoint-every", "1", "--out", str(full))[0] == 0
    assert cli("pretrain", *tiny_args, "--checkpoint-every", "1", "--out", str(run_dir))[0] == 0
    last = run_dir / "checkpoints" / "last.pt"
    _flip_bits(last)
    (run_dir / "checkpoints" / "epoch_2.pt").unlink()  # the newest kept copy is gone too: epoch 1 remains
    code, _, err = cli("pretrain", "--resume", str(run_dir))
    assert code == 0, err
    assert f"checkpoint '{last}' is corrupt" in err
    assert f"resuming from the previous good checkpoint '{run_dir / 'checkpoints' / 'epoch_1.pt'}' (step 3)" in err
    a, b = read_checkpoint(full), read_checkpoint(run_dir)
    assert a["step"] == b["step"] == 6
    _same_weights(a["model"], b["model"])


def test_checkpoint_stays_a_plain_torch_file_with_its_digest(tmp_path):
    from sslkit.pretraining.checkpoint import FORMAT, atomic_save, stored_digest

    path = atomic_save({"format": FORMAT, "x": torch.arange(5)}, tmp_path / "c.pt")
    stored, actual = stored_digest(path)
    assert stored == actual and len(stored) == 64
    assert torch.equal(torch.load(path, weights_only=True)["x"], torch.arange(5))


# ------------------------------------------------------------------------- temporaries
def test_stale_temporaries_are_removed_on_resume(cli, tiny_args, tmp_path):
    run_dir = tmp_path / "run"
    assert cli("pretrain", *tiny_args, "--epochs", "1", "--out", str(run_dir))[0] == 0
    left = [run_dir / "checkpoints" / ".last.pt.k1ll3d.tmp", run_dir / ".metrics.json.x.tmp",
            run_dir / "encoder" / ".encoder.safetensors.y.tmp"]
    for path in left:
        path.write_bytes(b"\0" * 1000)
    keep = run_dir / "checkpoints" / "notes.tmp"  # not one of sslkit's temporaries
    keep.write_text("mine")
    assert cli("pretrain", "--resume", str(run_dir))[0] == 0
    assert not any(path.exists() for path in left)
    assert keep.exists()


def test_fileio_names_the_file_when_a_writer_hides_the_os_error(tmp_path):
    from sslkit.fileio import atomic_write_path

    def fill(tmp):
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")

    with pytest.raises(OSError) as info:
        atomic_write_path(tmp_path / "x.pt", fill)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path / "x.pt")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- disk full
def test_disk_full_mid_checkpoint_keeps_the_previous_one_and_resume_continues(cli, tiny_args, tmp_path, monkeypatch):
    args = [*tiny_args, "--checkpoint-every-steps", "1"]
    full, run_dir = tmp_path / "full", tmp_path / "run"
    assert cli("pretrain", *args, "--out", str(full))[0] == 0

    real_save, calls = torch.save, []

    def save_then_fill_the_disk(obj, handle, *a, **k):  # the 3rd checkpoint (step 3) hits a full disk
        if isinstance(handle, io.BytesIO):  # in memory (the masker-state check), not a file
            return real_save(obj, handle, *a, **k)
        calls.append(1)
        if len(calls) != 3:
            return real_save(obj, handle, *a, **k)
        buffer = io.BytesIO()
        real_save(obj, buffer)
        handle.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])  # half of it, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", save_then_fill_the_disk)
    code, _, err = cli("pretrain", *args, "--out", str(run_dir))
    monkeypatch.setattr(torch, "save", real_save)
    assert code == 1
    line = one_sentence(err)
    last = run_dir / "checkpoints" / "last.pt"
    assert line.startswith(f"Error: cannot write checkpoint '{last}': No space left on device; "
                           f"the last good checkpoint {last} (step 2) is kept")
    assert line.endswith(f"continue with: sslkit pretrain --resume {run_dir}")
    assert read_checkpoint(run_dir)["step"] == 2
    assert not [p for p in (run_dir / "checkpoints").iterdir() if p.suffix == ".tmp"]

    assert cli("pretrain", "--resume", str(run_dir))[0] == 0
    a, b = read_checkpoint(full), read_checkpoint(run_dir)
    assert a["step"] == b["step"] == 6
    _same_weights(a["model"], b["model"])


# ------------------------------------------------------------------------- permissions
@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640)])
def test_exported_encoder_honours_the_umask(tmp_path, umask, mode):
    from sslkit.models import build_encoder, save_encoder

    before = os.umask(umask)
    try:
        out = save_encoder(build_encoder(TINY_BACKBONE, in_chans=1), tmp_path / "encoder")
    finally:
        os.umask(before)
    for name in ("encoder.safetensors", "encoder.json"):
        assert (out / name).stat().st_mode & 0o777 == mode, name


def test_disk_full_while_exporting_the_encoder_says_how_to_continue(cli, tiny_args, tmp_path, monkeypatch):
    import safetensors.torch

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_model", full_disk)
    run_dir = tmp_path / "run"
    code, _, err = cli("pretrain", *tiny_args, "--out", str(run_dir))
    assert code == 1
    assert one_sentence(err) == (
        f"Error: cannot write file '{run_dir / 'encoder' / 'encoder.safetensors'}': No space left on device; "
        f"the last good checkpoint {run_dir / 'checkpoints' / 'last.pt'} (step 3) is kept; free some space "
        f"(or fix the folder's permissions), then continue with: sslkit pretrain --resume {run_dir}")
    assert read_checkpoint(run_dir)["step"] == 3
