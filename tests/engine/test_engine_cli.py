"""`sslkit pretrain` through click: one-sentence errors with exit 2, option precedence, Ctrl-C."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from sslkit.cli import cli
from sslkit.pretraining.train_loop import INTERRUPT_ENV


def _invoke(*args):
    return CliRunner().invoke(cli, ["pretrain", *map(str, args)])


def _error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--masker", "rnadom"], "unknown masker 'rnadom'; did you mean 'random'?"),
        (["--backbone", "resnet81"], "unknown backbone 'resnet81'; did you mean"),
        (["--epochs", "0"], "epochs must be at least 1, got 0"),
        (["--image-size", "7"], "image-size must be at least 16 pixels, got 7"),
        (["--masker", "random", "--masker-opt", "sise=0.3"], "masker 'random' has no option 'sise'; did you mean 'size'?"),
        (["--masker-opt", "size"], "--masker-opt 'size' is not of the form key=value"),
        (["--pretrain-splits", "train+tset"], "(did you mean 'test'?)"),
        (["--warmup-epochs", "40"], "warmup-epochs must be at least 0 and less than epochs (30)"),
    ],
)
def test_user_errors_exit_2_with_one_sentence(args, expected, tmp_path):
    result = _invoke(*args, "--out", tmp_path / "r")
    assert result.exit_code == 2, result.output
    assert expected in _error_line(result)
    assert not (tmp_path / "r").exists()  # nothing is written for a rejected run


def test_bad_masker_option_value(tmp_path):
    result = _invoke("--masker-opt", "count=0", "--out", tmp_path / "r")
    assert result.exit_code == 2
    assert "count" in _error_line(result)


def test_resume_dir_without_checkpoint(tmp_path):
    (tmp_path / "run").mkdir()
    result = _invoke("--resume", tmp_path / "run")
    assert result.exit_code == 2
    assert "has no checkpoint (checkpoints/last.pt)" in _error_line(result)


def test_config_with_unknown_key_suggests(tmp_path):
    (tmp_path / "c.yaml").write_text("masker: random\nbatch_sise: 8\n")
    result = _invoke("--config", tmp_path / "c.yaml")
    assert result.exit_code == 2
    assert "unknown key 'batch_sise'; did you mean 'batch_size'?" in _error_line(result)


def test_config_and_resume_do_not_mix(tmp_path):
    (tmp_path / "c.yaml").write_text("epochs: 2\n")
    result = _invoke("--config", tmp_path / "c.yaml", "--resume", tmp_path)
    assert result.exit_code == 2
    assert "--config cannot be combined with --resume" in _error_line(result)


@pytest.fixture
def captured(monkeypatch):
    """Replace the engine by a recorder, to see the resolved config without training."""
    import sslkit.pretraining.run as engine

    seen = {}

    def fake_run(config, plugins=None, *, resume=None):
        seen["config"], seen["resume"] = config, resume
        return {"run_dir": config.out or "x", "encoder": "x/encoder", "loss": None, "first_epoch_loss": None, "epochs": 0}

    monkeypatch.setattr(engine, "run_pretraining", fake_run)
    return seen


def test_command_line_overrides_config_even_when_it_repeats_the_default(tmp_path, captured):
    (tmp_path / "c.yaml").write_text(
        "epochs: 5\nbatch-size: 8\nlr: 3e-4\nmasker-options: {size: 0.5}\nschedule: cosine\n"
    )
    result = _invoke("--config", tmp_path / "c.yaml", "--epochs", "2", "--batch-size", "32", "--masker-opt", "count=2")
    assert result.exit_code == 0, result.output
    config = captured["config"]
    assert config.epochs == 2  # command line wins
    assert config.batch_size == 32  # ...even when the value typed is the default
    assert config.lr == pytest.approx(3e-4) and config.schedule == "cosine"  # from the file
    assert config.masker_options == {"size": 0.5, "count": 2}
    assert config.image_size == 64  # default


def test_milestones_option(captured):
    result = _invoke("--milestones", "0.5,0.75", "--gamma", "0.1")
    assert result.exit_code == 0, result.output
    assert captured["config"].milestones == [0.5, 0.75] and captured["config"].gamma == 0.1


def test_ctrl_c_exits_130_and_says_how_to_resume(tmp_path, tiny_options, cli_args, monkeypatch):
    monkeypatch.setenv(INTERRUPT_ENV, "2")
    run_dir = tmp_path / "r"
    result = _invoke(*cli_args({**tiny_options, "epochs": 1}), "--out", run_dir)
    assert result.exit_code == 130, result.output
    assert f"continue with: sslkit pretrain --resume {run_dir}" in result.output
    assert (run_dir / "checkpoints" / "last.pt").is_file()


def test_resume_refuses_a_changed_learning_rate(tmp_path, tiny_options, cli_args):
    run_dir = tmp_path / "r"
    assert _invoke(*cli_args({**tiny_options, "epochs": 1}), "--out", run_dir).exit_code == 0
    result = _invoke("--resume", run_dir, "--lr", "0.1")
    assert result.exit_code == 2
    assert "--lr cannot be changed when resuming" in _error_line(result)
    result = _invoke("--resume", run_dir, "--quiet")
    assert result.exit_code == 0, result.output
