"""`sslkit compare`: cells, resumability (finished cells reused, interrupted pretraining
continued), refusal to mix settings, and the results files. Pretraining is replaced by a stub
that exports a tiny encoder, except in one end-to-end test through the real engine."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from eval_helpers import IMAGE_SIZE, TINY_PLUGIN, tiny_npz, tiny_plugins
from sslkit.engine.compare import CELL_FILE, CompareConfig, run_compare
from sslkit.errors import UserError


@pytest.fixture(scope="module")
def plugins():
    return tiny_plugins()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return "npz:" + str(tiny_npz(tmp_path_factory.mktemp("data") / "tiny.npz"))


class Calls:
    def __init__(self):
        self.pretrain: list[tuple[str, int, bool]] = []
        self.finetune: list[tuple[bool, int]] = []


@pytest.fixture
def calls(monkeypatch, plugins):
    """Stub pretraining (exports a seeded tiny encoder + config.yaml + a checkpoint) and count
    pretraining and fine-tuning calls."""
    import torch

    import sslkit.engine.finetune as finetune_module
    import sslkit.engine.pretrain as pretrain_module
    from sslkit.engine.config import save_config
    from sslkit.models import build_encoder, save_encoder

    record = Calls()

    def fake_pretraining(config, plugins_=None, *, resume=None):
        record.pretrain.append((config.masker, config.seed, resume is not None))
        run_dir = Path(config.out)
        torch.manual_seed(config.seed)
        encoder = build_encoder(config.backbone, in_chans=config.in_chans, plugins=plugins_, **config.backbone_options)
        save_encoder(encoder, run_dir / "encoder")
        save_config(config, run_dir / "config.yaml")
        (run_dir / "checkpoints").mkdir(exist_ok=True)
        (run_dir / "checkpoints" / "last.pt").write_bytes(b"stub")
        return {"loss": 0.25 + config.seed, "epochs": config.epochs}

    real_finetuning = finetune_module.run_finetuning

    def counted_finetuning(config, plugins_=None, **kwargs):
        record.finetune.append((config.from_scratch, config.seed))
        return real_finetuning(config, plugins_, **kwargs)

    monkeypatch.setattr(pretrain_module, "run_pretraining", fake_pretraining)
    monkeypatch.setattr(finetune_module, "run_finetuning", counted_finetuning)
    return record


def compare_config(data, out: Path, **overrides) -> CompareConfig:
    values = dict(maskers=["random", "center"], data=data, seeds=[0, 1], labels=12, protocol="linear",
                  backbone="eval-tiny-cnn", image_size=IMAGE_SIZE, pretrain_epochs=1, finetune_epochs=3,
                  finetune_batch_size=8, device="cpu", out=str(out / "results"), runs_dir=str(out / "runs"))
    values.update(overrides)
    return CompareConfig(**values)


def test_compare_runs_every_cell_then_reuses_them(calls, plugins, data, tmp_path):
    first = run_compare(compare_config(data, tmp_path), plugins, quiet=True)
    assert sorted(calls.pretrain) == [("center", 0, False), ("center", 1, False), ("random", 0, False), ("random", 1, False)]
    assert len(calls.finetune) == 6 and sum(scratch for scratch, _ in calls.finetune) == 2
    assert (first.ran, first.reused) == (6, 0)
    assert [(r["method"], r["seed"]) for r in first.rows] == [
        ("random", 0), ("random", 1), ("center", 0), ("center", 1), ("scratch", 0), ("scratch", 1)]
    assert [s["method"] for s in first.summary] == ["random", "center", "scratch"]

    second = run_compare(compare_config(data, tmp_path), plugins, quiet=True)
    assert len(calls.pretrain) == 4 and len(calls.finetune) == 6  # nothing ran again
    assert (second.ran, second.reused) == (0, 6)
    assert second.rows == first.rows


def test_interrupted_cell_continues_and_only_it_runs(calls, plugins, data, tmp_path):
    run_compare(compare_config(data, tmp_path), plugins, quiet=True)
    cell = tmp_path / "runs" / "center" / "seed1"
    (cell / CELL_FILE).unlink()  # as if killed during its fine-tuning
    result = run_compare(compare_config(data, tmp_path), plugins, quiet=True)
    assert (result.ran, result.reused) == (1, 5)
    # the pretraining with a checkpoint is resumed (the engine's exact resume), not restarted
    assert calls.pretrain[-1] == ("center", 1, True) and len(calls.pretrain) == 5
    assert calls.finetune[-1] == (False, 1) and len(calls.finetune) == 7


def test_cells_made_with_other_settings_are_refused(calls, plugins, data, tmp_path):
    run_compare(compare_config(data, tmp_path, maskers=["random"], seeds=[0], scratch=False), plugins, quiet=True)
    with pytest.raises(UserError, match=r"other settings \(.*epochs 1 -> 2"):
        run_compare(compare_config(data, tmp_path, maskers=["random"], seeds=[0], scratch=False, pretrain_epochs=2),
                    plugins, quiet=True)


def test_results_files(calls, plugins, data, tmp_path):
    result = run_compare(compare_config(data, tmp_path, maskers=["random"], seeds=[0, 1]), plugins,
                         command="sslkit compare --maskers random", quiet=True)
    out = tmp_path / "results"
    assert result.files == {"markdown": out / "results.md", "csv": out / "results.csv", "png": out / "results.png"}
    with (out / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["method"], r["seed"]) for r in rows] == [("random", "0"), ("random", "1"), ("scratch", "0"), ("scratch", "1")]
    assert rows[0]["pretrain_loss"] == "0.250000" and rows[2]["pretrain_loss"] == ""
    assert float(rows[0]["accuracy"]) == pytest.approx(result.rows[0]["accuracy"])
    text = (out / "results.md").read_text()
    assert "| method | runs | accuracy" in text and "`sslkit compare --maskers random`" in text
    assert "| random | 2 |" in text and "machine:" in text
    assert (out / "results.png").read_bytes()[:4] == b"\x89PNG"
    cell = json.loads((tmp_path / "runs" / "random" / "seed0" / CELL_FILE).read_text())
    assert cell["labelled_counts"] == {"left": 6, "right": 4, "centre": 2}


def test_bad_compare_settings(plugins, data, tmp_path):
    for overrides, message in (({"maskers": ["rnadom"]}, "did you mean 'random'"),
                               ({"maskers": ["random", "scratch"]}, "baseline"),
                               ({"seeds": [0, 0]}, "no seed twice"),
                               ({"pretrain_options": {"epochs": 3}}, "set by compare itself"),
                               ({"masker_options": {"dqn": {"k": 1}}}, "not in --maskers")):
        with pytest.raises(UserError, match=message):
            run_compare(compare_config(data, tmp_path, **overrides), plugins, quiet=True)


def test_compare_end_to_end_with_the_real_engine(data, tmp_path, monkeypatch):
    """One real (1-epoch, tiny) pretraining through the CLI: the pieces fit together."""
    monkeypatch.setenv("SSLKIT_PLUGINS", str(TINY_PLUGIN))
    args = ["compare", "--maskers", "random", "--seeds", "1", "--data", data, "--labels", "12",
            "--protocol", "linear", "--backbone", "eval-tiny-cnn", "--image-size", str(IMAGE_SIZE),
            "--pretrain-epochs", "1", "--pretrain-batch-size", "16", "--finetune-epochs", "2", "--device", "cpu",
            "--out", str(tmp_path / "results"), "--runs-dir", str(tmp_path / "runs"), "--quiet"]
    from sslkit.cli import cli

    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "2 cell(s) run, 0 reused" in result.output
    assert (tmp_path / "runs" / "random" / "seed0" / "pretrain" / "encoder" / "encoder.json").is_file()
    again = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert "0 cell(s) run, 2 reused" in again.output
