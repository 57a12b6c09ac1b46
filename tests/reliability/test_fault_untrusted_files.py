"""A received file never runs code: every command that reads a file is given a pickle whose
``__reduce__`` would create a marker file, and the marker must never appear.

The loading paths: ``pretrain --resume`` (a signed ``last.pt``: the SHA-256 proves nothing about
the sender), a ``compare`` rerun over a runs folder holding it, ``evaluate --classifier``,
``evaluate --knn --encoder``, ``finetune --encoder``, ``--backbone-opt weights=`` and timm's
``checkpoint_path=`` (also when a received ``encoder.json`` names it)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from fault_helpers import TINY_BACKBONE, one_sentence

from sslkit.pretraining.checkpoint import FORMAT, atomic_save


class Payload:
    """Unpickling this calls ``exec``, which creates ``marker``: the proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


@pytest.fixture
def marker(tmp_path) -> Path:
    path = tmp_path / "CODE-RAN"
    yield path
    assert not path.exists(), "a received file ran code when loaded"


def _evil_checkpoint(path: Path, marker: Path) -> None:
    """An sslkit-looking checkpoint, signed with its correct SHA-256, carrying the payload."""
    atomic_save({"format": FORMAT, "format_version": 1, "step": 1, "epoch": 0, "batch": 1,
                 "model": {"w": torch.zeros(1)}, "rng": Payload(marker)}, path)


def _evil_file(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {"w": torch.zeros(1)}, "extra": Payload(marker)}, path)
    return path


def _refused(code: int, err: str, name: str) -> str:
    line = one_sentence(err)
    assert code == 2, err
    assert name in line, line
    return line


def test_pretrain_resume_refuses_a_signed_checkpoint_that_would_run_code(cli, tiny_args, tmp_path, marker):
    run_dir = tmp_path / "run"
    args = [a for a in tiny_args]
    args[args.index("--epochs") + 1] = "1"
    assert cli("pretrain", *args, "--out", str(run_dir))[0] == 0
    last = run_dir / "checkpoints" / "last.pt"
    _evil_checkpoint(last, marker)
    code, _, err = cli("pretrain", "--resume", str(run_dir))
    line = _refused(code, err, str(last))
    assert "a pickled 'exec'" in line and "could run code" in line


def test_a_compare_rerun_refuses_the_checkpoint_in_its_runs_folder(cli, stopped_compare, tmp_path, marker):
    args, stopped_folder, _, _ = stopped_compare
    shutil.copytree(stopped_folder, tmp_path / "cmp")
    last = next((tmp_path / "cmp" / "runs").rglob("last.pt"))
    _evil_checkpoint(last, marker)
    code, _, err = cli(*args, "--out", str(tmp_path / "cmp" / "results"), "--runs-dir", str(tmp_path / "cmp" / "runs"))
    _refused(code, err, str(last))


@pytest.fixture
def evil_export(tmp_path, marker) -> Path:
    """An exported-encoder folder whose weights file is the pickle, under the safetensors name."""
    folder = tmp_path / "export"
    _evil_file(folder / "encoder.safetensors", marker)
    (folder / "encoder.json").write_text(json.dumps({"backbone": TINY_BACKBONE, "in_chans": 1, "options": {}}))
    return folder


def test_evaluate_classifier_refuses_pickled_weights(cli, tiny_npz, evil_export, tmp_path, marker):
    folder = tmp_path / "classifier"
    shutil.copytree(evil_export, folder / "encoder")
    _evil_file(folder / "head.safetensors", marker)
    (folder / "classifier.json").write_text(json.dumps({"protocol": "linear", "class_names": ["a", "b"]}))
    code, _, err = cli("evaluate", "--classifier", str(folder), "--data", f"npz:{tiny_npz}", "--threads", "1",
                       "--device", "cpu")
    _refused(code, err, "encoder.safetensors")


def test_evaluate_knn_refuses_pickled_encoder_weights(cli, tiny_npz, evil_export, marker):
    code, _, err = cli("evaluate", "--knn", "--encoder", str(evil_export), "--data", f"npz:{tiny_npz}",
                       "--threads", "1", "--device", "cpu")
    _refused(code, err, "encoder.safetensors")


def test_finetune_refuses_pickled_encoder_weights(cli, tiny_npz, evil_export, tmp_path, marker):
    code, _, err = cli("finetune", "--encoder", str(evil_export), "--data", f"npz:{tiny_npz}", "--threads", "1",
                       "--device", "cpu", "--epochs", "1", "--out", str(tmp_path / "ft"), "--quiet")
    _refused(code, err, "encoder.safetensors")
    assert not (tmp_path / "ft").exists()


@pytest.mark.parametrize("option", ["weights", "checkpoint_path"])
def test_backbone_file_options_are_read_without_unpickling(cli, tiny_args, tmp_path, marker, option):
    evil = _evil_file(tmp_path / "weights.pth", marker)
    code, _, err = cli("pretrain", *tiny_args, "--backbone-opt", f"{option}={evil}", "--out", str(tmp_path / "run"))
    line = _refused(code, err, str(evil))
    assert "a pickled 'exec'" in line


def test_a_received_encoder_json_cannot_hand_timm_a_file(cli, tiny_npz, tmp_path, marker):
    from sslkit.models import build_encoder, save_encoder

    folder = tmp_path / "export"
    save_encoder(build_encoder(TINY_BACKBONE, in_chans=1), folder)
    spec = json.loads((folder / "encoder.json").read_text())
    spec["options"] = {"checkpoint_path": str(_evil_file(tmp_path / "timm.pth", marker))}
    (folder / "encoder.json").write_text(json.dumps(spec))
    code, _, err = cli("evaluate", "--knn", "--encoder", str(folder), "--data", f"npz:{tiny_npz}",
                       "--threads", "1", "--device", "cpu")
    _refused(code, err, "timm.pth")


@pytest.mark.parametrize("option", ["pretrained_cfg_overlay", "pretrained_cfg", "cache_dir"])
def test_timm_options_that_fetch_or_read_weights_are_reserved(cli, tiny_args, tmp_path, option):
    code, _, err = cli("pretrain", *tiny_args, "--backbone-opt", f"{option}=x", "--out", str(tmp_path / "run"))
    assert code == 2 and f"does not take the option '{option}'" in one_sentence(err)


def test_a_masker_state_a_checkpoint_cannot_hold_is_named_at_the_first_save(monkeypatch, cli, tiny_args, tmp_path):
    import numpy as np

    from sslkit.masking import MaskerBase

    real = MaskerBase.state_dict
    monkeypatch.setattr(MaskerBase, "state_dict", lambda self: {**real(self), "buffer": np.zeros(3)})
    code, _, err = cli("pretrain", *tiny_args, "--masker", "random", "--out", str(tmp_path / "run"))
    line = one_sentence(err)
    assert code == 2 and "the state of masker 'random' holds a pickled 'numpy" in line, line
