"""The audit's last silent successes and "unexpected error"s, each now one sentence with exit 2,
or a warning where the run stays meaningful (issue 21, item 5)."""

from __future__ import annotations

import os
import signal
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from fault_helpers import TINY_BACKBONE, one_sentence

BASE = ["--backbone", TINY_BACKBONE, "--image-size", "32", "--threads", "1", "--device", "cpu"]


def _png(path: Path, rng) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cv2.imencode(".png", (rng.random((32, 32)) * 255).astype(np.uint8))[1].tobytes())


@pytest.fixture
def ft(tiny_npz):
    """``sslkit finetune`` options of a 1-epoch linear run on the tiny data."""
    return ["finetune", "--from-scratch", *BASE, "--data", f"npz:{tiny_npz}", "--epochs", "1", "--quiet"]


@pytest.mark.parametrize("extra, expected", [
    (["--labels", "1"], "--labels 1 is too few: a classifier needs labelled images of at least two classes"),
    (["--labels", "all", "--protocol", "full", "--batch-size", "1"],
     "--protocol full trains the encoder's BatchNorm layers, which need at least 2 images per batch; got --batch-size 1"),
    (["--weight-decay", "nan"], "--weight-decay and --encoder-lr-scale zero or positive, got 0.001, nan and 0.1"),
    (["--seed", str(2**70)], f"--seed must fit in 64 bits (from -2**63 to 2**63-1), got {2**70}"),
    (["--backbone-opt", "in_chans=3"], "--backbone-opt in_chans is set by sslkit itself; use --in-chans"),
])
def test_finetune_settings_no_classifier_can_learn_from(cli, ft, tmp_path, extra, expected):
    code, _, err = cli(*ft, *extra, "--out", str(tmp_path / "ft"))
    assert code == 2 and expected in one_sentence(err)
    assert not (tmp_path / "ft").exists()


@pytest.mark.parametrize("extra, expected", [
    (["--seed", str(2**70)], f"seed must fit in 64 bits (from -2**63 to 2**63-1), got {2**70}"),
    (["--backbone-opt", "in_chans=3"], "--backbone-opt in_chans is set by sslkit itself; use --in-chans"),
    (["--masker", "random", "--masker-opt", "count=1000000"], "count must be a whole number from 1 to 256, got 1000000"),
])
def test_pretrain_values_that_used_to_be_unexpected_errors(cli, tiny_args, tmp_path, extra, expected):
    code, _, err = cli("pretrain", *tiny_args, *extra, "--out", str(tmp_path / "run"))
    assert code == 2 and expected in one_sentence(err)


@pytest.mark.parametrize("extra, expected", [
    (["--maskers", ""], "nothing to compare: --maskers names no masker, so only the scratch baseline would run"),
    (["--labels", "1"], "--labels 1 is too few"),
    (["--protocol", "full", "--finetune-batch-size", "1"], "got --finetune-batch-size 1"),
    (["--scratch-full", "--finetune-batch-size", "1"], "--protocol full trains the encoder's BatchNorm layers"),
])
def test_compare_refuses_before_any_pretraining(cli, tiny_npz, tmp_path, extra, expected):
    code, _, err = cli("compare", *BASE, "--data", f"npz:{tiny_npz}", "--maskers", "random", *extra,
                       "--out", str(tmp_path / "cmp"))
    assert code == 2 and expected in one_sentence(err)
    assert not (tmp_path / "cmp" / "runs").exists()  # nothing was pretrained


@pytest.mark.parametrize("temperature", ["-1", "nan"])
def test_knn_temperature_that_would_silently_become_a_majority_vote(cli, tiny_npz, tmp_path, temperature):
    code, _, err = cli("evaluate", "--knn", "--encoder", str(tmp_path), "--data", f"npz:{tiny_npz}",
                       "--temperature", temperature)
    assert code == 2 and "--temperature must be a positive number (or 0 for plain majority votes)" in one_sentence(err)


def test_one_class_folder_is_refused(cli, tmp_path):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for i in range(4):
            _png(tmp_path / "one" / split / "benign" / f"{i}.png", rng)
    code, _, err = cli("finetune", "--from-scratch", *BASE, "--data", f"folder:{tmp_path / 'one'}", "--labels", "all",
                       "--epochs", "1", "--quiet", "--out", str(tmp_path / "ft"))
    assert code == 2
    assert one_sentence(err) == "Error: dataset 'one' has only one class ('benign'); a classifier needs at least two"


def test_a_class_without_labelled_images_is_refused():
    from sslkit.errors import UserError
    from sslkit.finetuning.protocols import check_classes_learnable

    with pytest.raises(UserError, match=r"the 3 labelled training image\(s\) \(3 a, 0 b\) hold none of class 'b'"):
        check_classes_learnable(["a", "b"], [3, 0], "d")


def test_images_in_train_and_test_or_listed_twice_are_warned_about(cli, tmp_path):
    rng = np.random.default_rng(0)
    rows = ["image_path,label,split"]
    for i in range(8):
        _png(tmp_path / "imgs" / f"{i}.png", rng)
        rows.append(f"imgs/{i}.png,{'ab'[i % 2]},train")
    rows += [f"imgs/{i}.png,{'ab'[i % 2]},test" for i in range(4)]  # the same files again, as test
    rows += ["imgs/7.png,b,train"]  # and one listed twice
    (tmp_path / "table.csv").write_text("\n".join(rows) + "\n")
    code, out, err = cli("finetune", "--from-scratch", *BASE, "--data", f"csv:{tmp_path / 'table.csv'}",
                         "--labels", "all", "--epochs", "1", "--quiet", "--out", str(tmp_path / "ft"))
    assert code == 0, err
    text = " ".join(out.split())
    assert "4 test image(s) are also labelled training images (e.g. " in text and "the test scores are optimistic" in text
    assert "1 labelled training image(s) are listed more than once" in text


def test_non_utf8_file_names_reach_predictions_csv_and_a_corrupt_metrics_json_is_a_warning(cli, tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "names"
    for split in ("train", "test"):
        for label in ("a", "b"):
            for i in range(3):
                folder = root / split / label
                _png(folder / "x.png", rng)
                os.rename(folder / "x.png", os.fsencode(folder) + b"/img\xff" + str(i).encode() + b".png")
    out = tmp_path / "ft"
    code, _, err = cli("finetune", "--from-scratch", *BASE, "--data", f"folder:{root}", "--labels", "all",
                       "--epochs", "1", "--quiet", "--out", str(out))
    assert code == 0, err
    assert b"img\xff0.png" in (out / "predictions.csv").read_bytes()  # the file's own name, byte for byte

    (out / "metrics.json").write_text("{not json")
    code, stdout, err = cli("evaluate", "--classifier", str(out), "--threads", "1", "--device", "cpu")
    assert code == 0, err
    assert f"warning: cannot compare with the fine-tuning run's own figures: '{out / 'metrics.json'}' is unreadable" \
        in " ".join(stdout.split())


def test_a_billion_laughs_config_is_refused_at_once(cli, tiny_args, tmp_path):
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for previous, name in zip("abcdefgh", "bcdefghi"):
        text += f"{name}: &{name} [{', '.join(['*' + previous] * 9)}]\n"
    (tmp_path / "laughs.yaml").write_text(text)
    code, _, err = cli("pretrain", "--config", str(tmp_path / "laughs.yaml"), *tiny_args, "--out", str(tmp_path / "run"))
    assert code == 2
    assert one_sentence(err) == f"Error: config file '{tmp_path / 'laughs.yaml'}' is not valid YAML (aliases (*a) are not allowed here)"


def test_complex_images_in_an_npz_are_refused(cli, tiny_npz, tmp_path):
    arrays = dict(np.load(tiny_npz))
    arrays["train_images"] = arrays["train_images"].astype(np.complex64)
    np.savez(tmp_path / "complex.npz", **arrays)
    code, _, err = cli("pretrain", "--data", f"npz:{tmp_path / 'complex.npz'}", *BASE, "--out", str(tmp_path / "run"))
    assert code == 2 and "train_images holds complex64 values; images must be whole or real numbers" in one_sentence(err)


def test_a_png_too_large_to_decode_is_named_before_decoding(tmp_path):
    from sslkit.data.reading import BadImage, quick_check, read_image_file

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 40000, 40000, 8, 0, 0, 0, 0)  # 40000 x 40000 grey: 1.6 GB decoded
    path = tmp_path / "huge.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 40001))
                     + chunk(b"IEND", b""))
    expected = "it is 40000 x 40000 pixels, more than sslkit decodes (268 million pixels); downscale it first"
    assert quick_check(path) == expected
    with pytest.raises(BadImage, match=r"40000 x 40000 pixels"):
        read_image_file(path)


def test_threads_beyond_the_usable_cores_are_capped_with_a_note(capsys):
    import torch

    from sslkit.cpu_cores import usable_cores
    from sslkit.runtime import cpu_threads

    with cpu_threads(100000):
        assert torch.get_num_threads() == usable_cores()
    assert f"note: --threads 100000 is more than the {usable_cores()} CPU core(s) this process may use" in capsys.readouterr().err


def test_safetensors_own_temporary_is_a_stale_temporary(tmp_path):
    from sslkit.fileio import remove_stale_temporaries

    (tmp_path / ".tmpA1b2C3").write_bytes(b"x" * 10)  # what a SIGKILL mid-export left in encoder/
    (tmp_path / ".encoder.safetensors.k3j2.tmp").write_bytes(b"y")
    (tmp_path / "encoder.safetensors").write_bytes(b"z")
    assert remove_stale_temporaries(tmp_path) == 11
    assert [p.name for p in tmp_path.iterdir()] == ["encoder.safetensors"]


@pytest.mark.parametrize("how, code", [("ctrl-c", 130), ("sigterm", 143)])
def test_finetune_stopped_says_what_to_do(cli, ft, tmp_path, monkeypatch, how, code):
    import sslkit.finetuning.run as finetune

    def stopped(*args, **kwargs):
        if how == "ctrl-c":
            raise KeyboardInterrupt
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not stop the fine-tuning")

    monkeypatch.setattr(finetune, "_run_finetuning", stopped)
    got, _, err = cli(*ft, "--out", str(tmp_path / "ft"))
    assert got == code
    assert err.strip().splitlines()[-1] == ("Interrupted; this fine-tuning did not finish (it cannot resume; a folder "
                                            "it created is removed): run the command again")
    assert not (tmp_path / "ft").exists()
