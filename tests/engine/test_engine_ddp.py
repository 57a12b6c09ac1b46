"""Multi-process pretraining: torchrun + DistributedDataParallel on gloo (two CPU processes).

- Two processes with global batch 4 (2 each) end with the weights of one process with batch 4,
  to rounding: the loader shards each global batch over the ranks and DDP averages gradients.
  The model is the BatchNorm-free ``plain`` backbone of ``test_engine_ddp_plugin.py``, because
  SyncBatchNorm does not run on the CPU (see :mod:`sslkit.pretraining.distributed`).
- A two-process run killed (SIGKILL, every rank) during epoch 2 and resumed ends bit-identical
  to the uninterrupted two-process run.
- ``sslkit pretrain --nproc 2`` with an absurd learning rate stops both ranks at the same step
  with exit status 3, one message, the last good checkpoint intact; the ``dqn`` agents of the two
  ranks hold identical weights in it (their gradients are averaged), their generators differ.

The three launches run side by side (about 15 s on two cores), the resume after them. The GPU
tests at the end (bf16/fp16 on CUDA; two GPUs with SyncBatchNorm matching one) skip without GPUs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from sslkit.pretraining.train_loop import INTERRUPT_ENV, KILL_ENV
from engine_cli_args import cli_args

PLUGIN = Path(__file__).with_name("test_engine_ddp_plugin.py")
TIMEOUT = 240
LAUNCHER_ENV = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", KILL_ENV, INTERRUPT_ENV)


def _options(data: Path, **changes) -> dict:
    options = {
        "data": f"npz:{data}",
        "backbone": "plain",
        "masker": "center",
        "image_size": 32,
        "batch_size": 4,  # global: 2 per process; 12 train+val images -> 3 steps per epoch
        "epochs": 3,
        "device": "cpu",
        "quiet": True,
        "log_every": 1,
        "log_images_every": 0,
        "seed": 3,
        # fp32: the 2-process == 1-process comparison is exact to 1e-5 only without bf16 rounding
        # (which depends on how the batch is split); bf16 resume is tested in test_engine_resume.
        "precision": "fp32",
    }
    options.update(changes)
    return options


def _start(argv: list[str], extra_env: dict | None = None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_ENV}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", SSLKIT_PLUGINS="", **(extra_env or {}))
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _torchrun(args: list[str], extra_env: dict | None = None) -> subprocess.Popen:
    """``torchrun --standalone --nproc-per-node 2 -m sslkit --plugin PLUGIN pretrain ARGS`` (free port)."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    return _start([*launcher, "-m", "sslkit", "--plugin", str(PLUGIN), "pretrain", *args], extra_env)


def _finish(process: subprocess.Popen) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the launcher and its workers (own session)
        out, err = process.communicate()
        pytest.fail(f"multi-process run did not finish in {TIMEOUT} s (a hang?):\n{err[-3000:]}")
    return process.returncode, out, err


@pytest.fixture(scope="module")
def launched(tmp_path_factory, tiny_npz):

    root = tmp_path_factory.mktemp("ddp")
    runs = {name: root / name for name in ("full", "killed", "nan")}
    args = cli_args(_options(tiny_npz))
    nan_args = cli_args(_options(
        tiny_npz, backbone="mobilenetv3_small_050", masker="dqn", lr=1e30, checkpoint_every_steps=1, quiet=False
    ))
    processes = {
        "full": _torchrun([*args, "--out", str(runs["full"])]),
        "killed": _torchrun([*args, "--out", str(runs["killed"])], {KILL_ENV: "5"}),  # epoch 2, its 2nd step
        "nan": _start([sys.executable, "-m", "sslkit", "pretrain", *nan_args, "--nproc", "2", "--out", str(runs["nan"])]),
    }
    results = {name: _finish(process) for name, process in processes.items()}
    return runs, results


def _read(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)


def _plain_plugins():
    from sslkit.plugins import _import_file, load_plugins

    return load_plugins(extra_plugins=[("plain", _import_file(PLUGIN))], include_env=False)


def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path, tiny_npz, launched):
    from sslkit.pretraining.config import PretrainConfig
    from sslkit.pretraining.run import run_pretraining

    runs, results = launched
    code, _, err = results["full"]
    assert code == 0, err[-3000:]
    run_pretraining(PretrainConfig(**_options(tiny_npz), out=str(tmp_path / "one")), _plain_plugins())
    one, two = _read(tmp_path / "one"), _read(runs["full"])

    assert (two["world_size"], len(two["ranks"]), two["step"]) == (2, 2, 9)
    for key, value in one["model"].items():
        torch.testing.assert_close(two["model"][key], value, rtol=1e-5, atol=1e-6, msg=f"{key} differs")
    for a, b in zip(one["history"], two["history"]):  # logged epoch losses: means over the processes
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)
    # the checkpoint keeps each rank's own masker generator (seeded per rank) for exact resume
    assert not torch.equal(two["ranks"][0]["masker"]["generator"], two["ranks"][1]["masker"]["generator"])
    assert (runs["full"] / "metrics.csv").read_text().count("\n") == 4  # header + 3 epochs, written once


def test_killed_two_process_run_resumes_exactly(launched):
    runs, results = launched
    code, _, err = results["killed"]
    assert code != 0, "the killed run should have failed"
    assert _read(runs["killed"])["step"] == 3  # what survived the kill: the epoch-1 checkpoint

    code, _, err = _finish(_torchrun(["--resume", str(runs["killed"])]))
    assert code == 0, err[-3000:]
    full, resumed = _read(runs["full"]), _read(runs["killed"])
    assert (resumed["epoch"], resumed["step"]) == (3, 9)
    for key, value in full["model"].items():
        assert torch.equal(resumed["model"][key], value), f"{key} differs"
    for key, value in full["optimizer"]["state"][0].items():
        assert torch.equal(resumed["optimizer"]["state"][0][key], value)
    assert [r["loss"] for r in resumed["history"]] == [r["loss"] for r in full["history"]]
    for rank in (0, 1):
        assert torch.equal(resumed["ranks"][rank]["rng"]["torch"], full["ranks"][rank]["rng"]["torch"])


def test_nan_under_nproc_stops_every_rank_and_keeps_the_last_good_checkpoint(launched):
    runs, results = launched
    code, _, err = results["nan"]
    assert code == 3, err[-3000:]
    assert err.count("training stopped: the loss became") == 1, err[-3000:]  # rank 0 speaks for all
    assert "(step 1) is kept" in err and "Traceback" not in err
    saved = _read(runs["nan"])
    assert saved["step"] == 1
    assert all(torch.isfinite(v).all() for v in saved["model"].values() if v.is_floating_point())
    agents = [saved["ranks"][r]["masker"] for r in (0, 1)]
    assert agents[0]["updates"] == agents[1]["updates"] == 1
    for key, value in agents[0]["qnet"].items():  # one agent, trained on both ranks' feedback
        assert torch.equal(agents[1]["qnet"][key], value), f"dqn {key} differs between ranks"
    assert agents[0]["normalizer"] == agents[1]["normalizer"]
    assert not torch.equal(agents[0]["generator"], agents[1]["generator"])


def test_resuming_with_another_number_of_processes_is_refused(launched):
    from sslkit.pretraining.run import resume_config, run_pretraining
    from sslkit.errors import UserError

    runs, results = launched
    assert results["full"][0] == 0
    with pytest.raises(UserError, match=r"trained by 2 process\(es\), this is 1; resume it with 2"):
        run_pretraining(resume_config(runs["full"]), _plain_plugins(), resume=runs["full"])


# ---------------------------------------------------------------- in-process, no launching
def test_nproc_checks_options_once_and_passes_them_on(monkeypatch, tmp_path):
    from sslkit.cli import cli
    from sslkit.pretraining import launch

    launched_with = []
    monkeypatch.setattr(launch, "launch_local", lambda n, args: launched_with.append((n, args)) or 0)
    runner = CliRunner()
    result = runner.invoke(cli, ["pretrain", "--nproc", "2", "--batch-size", "5"])
    assert result.exit_code == 2 and "must divide evenly over the 2 processes" in result.output
    assert not launched_with

    args = ["--plugin", str(PLUGIN), "pretrain", "--nproc", "2", "--masker", "dqn", "--masker-opt", "grid=4",
            "--masker-opt", "block=1", "-q", "--no-compile", "--out", str(tmp_path / "r")]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert launched_with == [(2, [
        "sslkit", "--plugin", str(PLUGIN.resolve()), "pretrain", "--masker", "dqn", "--masker-opt", "grid=4",
        "--masker-opt", "block=1", "--out", str(tmp_path / "r"), "--no-compile", "--quiet",
    ])]


def test_nproc_inside_torchrun_is_refused(monkeypatch):
    from sslkit.cli import cli

    monkeypatch.setenv("WORLD_SIZE", "2")
    result = CliRunner().invoke(cli, ["pretrain", "--nproc", "2"])
    assert result.exit_code == 2 and "do not combine it with torchrun" in result.output


def test_global_batch_split_and_single_process_helpers_are_no_ops():
    from sslkit.pretraining.dist_info import DistInfo
    from sslkit.pretraining.distributed import StepReducer, gather_to_main, modules_agree
    from sslkit.pretraining.run_parts import local_batch_size
    from sslkit.errors import UserError

    assert local_batch_size(32, DistInfo(world_size=4)) == 8
    with pytest.raises(UserError, match="batch-size 30 is the global batch"):
        local_batch_size(30, DistInfo(world_size=4))
    reduce = StepReducer(DistInfo(), torch.device("cpu"))
    assert reduce({"loss": 0.5, "hit": None}, stop=True) == ({"loss": 0.5}, True)
    state = {"x": torch.ones(2)}
    assert gather_to_main(state, DistInfo())[0] is state
    assert modules_agree([torch.nn.Linear(2, 2)], DistInfo())


def test_parameters_without_gradient_are_found_for_ddp():
    from torch import nn

    from sslkit.pretraining.distributed import unused_parameters

    class Partly(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.spare = nn.Linear(3, 2), nn.Linear(3, 2)
            self.norm = nn.BatchNorm1d(2)

        def forward(self, x):
            return self.norm(self.used(x))

    model = Partly().train()
    before = model.norm.running_mean.clone()
    assert unused_parameters(model, torch.ones(1, 3)) == ["spare.weight", "spare.bias"]
    assert model.training and torch.equal(model.norm.running_mean, before)  # eval-mode probe: no side effects


# ------------------------------------------------------- GPU (skipped on CPU-only machines)
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cuda_mixed_precision_stays_finite(tmp_path, tiny_npz, precision):
    import math

    from sslkit.pretraining.config import PretrainConfig
    from sslkit.pretraining.run import run_pretraining

    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    options = _options(tiny_npz, backbone="mobilenetv3_small_050", masker="dqn", device="cuda", precision=precision)
    final = run_pretraining(PretrainConfig(**options, out=str(tmp_path / "r")))
    saved = _read(tmp_path / "r")
    assert final["steps"] == 9 and math.isfinite(final["loss"])
    assert all(torch.isfinite(v).all() for v in saved["model"].values() if v.is_floating_point())
    if precision == "fp16":
        assert saved["scaler"]["scale"] > 0


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")
def test_two_gpus_with_sync_batchnorm_match_one_gpu(tmp_path, tiny_npz):
    """On CUDA, BatchNorm becomes SyncBatchNorm: two GPUs match one even with BatchNorm."""
    from sslkit.pretraining.config import PretrainConfig
    from sslkit.pretraining.run import run_pretraining

    options = _options(tiny_npz, backbone="mobilenetv3_small_050", device="cuda")
    run_pretraining(PretrainConfig(**options, out=str(tmp_path / "one")))
    code, _, err = _finish(_torchrun([*cli_args(options), "--out", str(tmp_path / "two")]))
    assert code == 0, err[-3000:]
    one, two = _read(tmp_path / "one"), _read(tmp_path / "two")
    for key, value in one["model"].items():
        if value.is_floating_point():  # cuDNN's kernels differ by batch size: rounding only
            torch.testing.assert_close(two["model"][key], value, rtol=1e-3, atol=1e-4, msg=f"{key} differs")
