"""Fixtures of the fault suite: tiny data, a tiny backbone and ways to run the real CLI.

Runs are 16 smooth 32 x 32 grey images (train 10, val 2, test 4), batch 4 (3 steps per epoch on
train+val), timm's smallest MobileNetV3 and one thread, so a run takes a second or two; runs that
must die by a real signal go through a subprocess (``python -m sslkit``), the rest in-process
through :func:`sslkit.cli.run_cli`, the console script's own entry point.
"""

from __future__ import annotations

import pytest

from fault_helpers import TINY_BACKBONE

from sslkit.pretraining.train_loop import INTERRUPT_ENV, KILL_ENV


@pytest.fixture
def tiny_args(tiny_npz) -> list[str]:
    """``sslkit pretrain`` options of a 2-epoch x 3-step run."""
    return ["--data", f"npz:{tiny_npz}", "--backbone", TINY_BACKBONE, "--image-size", "32", "--batch-size", "4",
            "--epochs", "2", "--device", "cpu", "--threads", "1", "--seed", "3", "--log-images-every", "0", "-q"]


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run the CLI in-process through ``run_cli``; returns (exit code, stdout, stderr)."""
    from sslkit.cli import run_cli

    # Set (empty = off) rather than deleted, so that teardown removes what `--debug` puts into
    # os.environ during a test (it must reach --nproc children) instead of leaking it to later tests.
    monkeypatch.setenv("SSLKIT_DEBUG", "")
    monkeypatch.delenv(KILL_ENV, raising=False)
    monkeypatch.delenv(INTERRUPT_ENV, raising=False)

    def invoke(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = run_cli(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def stopped_compare(tiny_npz, tmp_path_factory):
    """A ``compare`` that SIGTERM (really sent, by a test hook) stopped after its pretraining's
    step 2, run in this process: (its arguments without ``--out``/``--runs-dir``, its folder, its
    exit code, its stderr). Tests copy the folder to change it."""
    import contextlib
    import io

    from sslkit.cli import run_cli
    from sslkit.pretraining.train_loop import SIGNAL_ENV

    folder = tmp_path_factory.mktemp("stopped-compare")
    args = ["compare", "--maskers", "random", "--no-scratch", "--seeds", "1", "--data", f"npz:{tiny_npz}",
            "--labels", "all", "--protocol", "linear", "--backbone", TINY_BACKBONE, "--image-size", "32",
            "--pretrain-epochs", "2", "--pretrain-batch-size", "4", "--finetune-epochs", "1", "--device", "cpu",
            "--threads", "1", "--quiet"]
    err = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        patch.setenv(SIGNAL_ENV, "2:SIGTERM")
        patch.setenv("SSLKIT_DEBUG", "")
        code = run_cli([*args, "--out", str(folder / "results"), "--runs-dir", str(folder / "runs")])
    return args, folder, code, err.getvalue()
