"""The NaN/inf guard: a diverging run stops with one sentence and keeps its last good checkpoint."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from sslkit.cli import cli
from sslkit.pretraining.config import PretrainConfig
from sslkit.pretraining.run import run_pretraining
from sslkit.pretraining.train_state import TrainingDiverged
from sslkit.hookspecs import hookimpl


def test_absurd_learning_rate_stops_cleanly(tmp_path, tiny_options, cli_args, read_checkpoint):
    run_dir = tmp_path / "r"
    args = cli_args({**tiny_options, "lr": 1e30, "checkpoint_every_steps": 1})
    result = CliRunner().invoke(cli, ["pretrain", *args, "--out", str(run_dir)])
    assert result.exit_code == 3, result.output
    message = result.output.strip().splitlines()[-1]
    assert message.startswith("Error: training stopped: the loss became nan at step 2 (epoch 1)")
    assert f"the last good checkpoint {run_dir / 'checkpoints' / 'last.pt'} (step 1) is kept" in message
    assert "Traceback" not in result.output
    saved = read_checkpoint(run_dir)
    assert saved["step"] == 1
    assert all(torch.isfinite(v).all() for v in saved["model"].values() if v.is_floating_point())


class PoisonEncoder(nn.Module):
    """A tiny two-level encoder that turns its output (or its weights) into NaN at a chosen call."""

    def __init__(self, in_chans: int = 1, nan_output_at: int = 0, nan_weights_at: int = 0):
        super().__init__()
        self.feature_channels, self.reductions = [8, 16], [2, 4]
        self.conv1 = nn.Conv2d(in_chans, 8, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.nan_output_at, self.nan_weights_at, self.calls = nan_output_at, nan_weights_at, 0

    def forward(self, x):
        if not self.training:  # the start-up size check: no poison, not counted
            return [torch.relu(self.conv1(x)), torch.relu(self.conv2(torch.relu(self.conv1(x))))]
        self.calls += 1
        if self.calls == self.nan_output_at:
            x = x * float("nan")
        a = torch.relu(self.conv1(x))
        b = torch.relu(self.conv2(a))
        if self.calls == self.nan_weights_at:  # a NaN gradient: the loss is fine, the step is not
            b.register_hook(lambda grad: grad * float("nan"))
        return [a, b]


class PoisonPlugin:
    @hookimpl
    def register_backbones(register):
        register("poison", PoisonEncoder, "test backbone that goes NaN on purpose")


@pytest.fixture(scope="module")
def poison_plugins():
    from sslkit.plugins import load_plugins

    return load_plugins(extra_plugins=[("poison", PoisonPlugin)], include_env=False)


def _config(tiny_options, out, **backbone_options):
    return PretrainConfig(**{**tiny_options, "backbone": "poison", "backbone_options": backbone_options, "out": str(out)})


def test_nan_loss_in_epoch_2_keeps_the_epoch_1_checkpoint(tmp_path, tiny_options, poison_plugins, read_checkpoint):
    run_dir = tmp_path / "r"
    with pytest.raises(TrainingDiverged, match=r"the loss became nan at step 5 \(epoch 2\)") as info:
        run_pretraining(_config(tiny_options, run_dir, nan_output_at=5), poison_plugins)
    assert "(step 3) is kept" in info.value.message and info.value.exit_code == 3
    saved = read_checkpoint(run_dir)
    assert (saved["epoch"], saved["step"]) == (1, 3)
    assert all(torch.isfinite(v).all() for v in saved["model"].values() if v.is_floating_point())
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == ["last.pt"]  # no stray temp file


def test_nan_weights_are_never_checkpointed(tmp_path, tiny_options, poison_plugins, read_checkpoint):
    run_dir = tmp_path / "r"
    config = _config({**tiny_options, "checkpoint_every_steps": 1}, run_dir, nan_weights_at=2)
    with pytest.raises(TrainingDiverged, match="the weights became NaN/inf at step 2"):
        run_pretraining(config, poison_plugins)
    assert read_checkpoint(run_dir)["step"] == 1
