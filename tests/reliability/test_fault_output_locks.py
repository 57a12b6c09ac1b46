"""Every folder sslkit writes is locked like a pretraining run directory: a second ``finetune``
on one ``--out`` is refused in one sentence naming the first one's process while the first one
finishes with its own results; ``evaluate`` does not write into a folder in use, nor does a
second ``compare`` on one ``--out``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from fault_helpers import TINY_BACKBONE, one_sentence, subprocess_env

from sslkit.engine.run_lock import RunDirLock


def _finetune_args(tiny_npz, out, seed: int) -> list[str]:
    return ["finetune", "--from-scratch", "--backbone", TINY_BACKBONE, "--data", f"npz:{tiny_npz}", "--image-size", "32",
            "--protocol", "full", "--epochs", "1", "--batch-size", "4", "--labels", "all", "--threads", "1",
            "--device", "cpu", "--seed", str(seed), "--out", str(out), "--quiet"]


def test_a_second_finetune_on_one_out_is_refused_while_the_first_keeps_its_results(cli, tiny_npz, tmp_path):
    out = tmp_path / "ft"
    first = subprocess.Popen([sys.executable, "-m", "sslkit", *_finetune_args(tiny_npz, out, 0)], env=subprocess_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "config.yaml").exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)  # config.yaml is written under the lock, before training
    first.send_signal(signal.SIGSTOP)  # hold it mid-run (the lock stays held), so the test cannot race
    try:
        code, _, err = cli(*_finetune_args(tiny_npz, out, 1))
    finally:
        first.send_signal(signal.SIGCONT)
    assert code == 2
    assert one_sentence(err) == (f"Error: '{out}' is in use by another sslkit run (process {first.pid}); "
                                 "wait for it to finish, or choose another --out")
    _, first_err = first.communicate(timeout=300)
    assert first.returncode == 0, first_err
    assert json.loads((out / "metrics.json").read_text())["seed"] == 0  # the first run's results, whole


def test_evaluate_and_compare_refuse_a_folder_in_use(cli, tiny_npz, tmp_path):
    from sslkit.models import build_encoder, save_encoder

    encoder = save_encoder(build_encoder(TINY_BACKBONE, in_chans=1), tmp_path / "encoder")
    held = tmp_path / "busy"
    with RunDirLock(held):
        code, _, err = cli("compare", "--maskers", "random", "--data", f"npz:{tiny_npz}", "--out", str(held),
                           "--threads", "1", "--device", "cpu")
        assert code == 2 and f"'{held}' is in use by another sslkit run (process {os.getpid()})" in one_sentence(err)
        code, _, err = cli("evaluate", "--knn", "--encoder", str(encoder), "--data", f"npz:{tiny_npz}",
                           "--image-size", "32", "--out", str(held), "--threads", "1", "--device", "cpu")
        assert code == 2 and f"'{held}' is in use by another sslkit run" in one_sentence(err)
    assert not list(held.glob("*.json"))
    code, _, err = cli("evaluate", "--knn", "--encoder", str(encoder), "--data", f"npz:{tiny_npz}",
                       "--image-size", "32", "--out", str(held), "--threads", "1", "--device", "cpu")
    assert code == 0, err  # the same command once the folder is free


def test_a_finetune_that_fails_leaves_no_folder(cli, tiny_npz, tmp_path):
    out = tmp_path / "ft"
    code, _, err = cli("finetune", "--encoder", str(tmp_path / "missing"), "--data", f"npz:{tiny_npz}",
                       "--threads", "1", "--out", str(out))
    assert code == 2 and "missing" in one_sentence(err)
    assert not out.exists()
