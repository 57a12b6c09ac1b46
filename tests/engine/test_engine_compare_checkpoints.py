"""``sslkit compare --keep-checkpoints``: a finished pretraining keeps a weights-only checkpoint
(default), its full one (``last``) or none; an interrupted one keeps what resuming needs; pruned
cells are reused and never trained over. Pretraining is a stub that writes real checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from evaluation.eval_helpers import IMAGE_SIZE, tiny_npz, tiny_plugins
from sslkit.comparison.config import CELL_FILE, CompareConfig
from sslkit.comparison.run import run_compare
from sslkit.errors import UserError


@pytest.fixture(scope="module")
def plugins():
    return tiny_plugins()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return "npz:" + str(tiny_npz(tmp_path_factory.mktemp("data") / "tiny.npz"))


class Stub:
    """Stands in for run_pretraining: exports an encoder and writes a full checkpoint (weights,
    optimiser moments, random state) as last.pt and epoch_1.pt; ``interrupt`` makes the next
    fresh run stop after its checkpoint, as Ctrl-C does."""

    def __init__(self):
        self.calls: list[tuple[str, int, bool]] = []
        self.interrupt = False

    def __call__(self, config, plugins_=None, *, resume=None):
        import torch

        from sslkit.models import build_encoder, save_encoder
        from sslkit.pretraining.checkpoint import atomic_save
        from sslkit.pretraining.config import save_config
        from sslkit.pretraining.train_state import TrainingInterrupted

        self.calls.append((config.masker, config.seed, resume is not None))
        run_dir = Path(config.out)
        torch.manual_seed(config.seed)
        encoder = build_encoder(config.backbone, in_chans=config.in_chans, plugins=plugins_, **config.backbone_options)
        model = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
        model["decoder.head.weight"] = torch.randn(4, 8)
        full = {"format": "sslkit-pretrain-checkpoint", "epoch": 1, "step": 3, "config": config.to_dict(),
                "model": model, "optimizer": {"state": {k: torch.randn(2, *v.shape) for k, v in model.items()}},
                "scheduler": {}, "scaler": {}, "masker": {}, "rng": {"torch": torch.get_rng_state()}}
        if resume is None:
            save_config(config, run_dir / "config.yaml")
            atomic_save(full, run_dir / "checkpoints" / "epoch_1.pt")
            atomic_save(full, run_dir / "checkpoints" / "last.pt")
            if self.interrupt:
                self.interrupt = False
                raise TrainingInterrupted("interrupted", run_dir, 3)
        save_encoder(encoder, run_dir / "encoder")
        return {"loss": 0.25, "epochs": config.epochs}


@pytest.fixture
def stub(monkeypatch):
    import sslkit.pretraining.run as pretrain_module

    fake = Stub()
    monkeypatch.setattr(pretrain_module, "run_pretraining", fake)
    return fake


def config_for(data, out: Path, **overrides) -> CompareConfig:
    values = dict(maskers=["random"], data=data, seeds=[0], labels=12, protocol="linear", backbone="eval-tiny-cnn",
                  image_size=IMAGE_SIZE, pretrain_epochs=1, finetune_epochs=2, finetune_batch_size=8, device="cpu",
                  out=str(out / "results"), runs_dir=str(out / "runs"), folds=1)
    values.update(overrides)
    return CompareConfig(**values)


def checkpoints(tmp_path: Path) -> Path:
    return tmp_path / "runs" / "random" / "seed0" / "pretrain" / "checkpoints"


def test_default_keeps_only_the_weights_and_pruned_cells_are_reused(stub, plugins, data, tmp_path):
    from sslkit.pretraining.checkpoint import verify_checkpoint
    from sslkit.safeload import safe_load

    first = run_compare(config_for(data, tmp_path), plugins, quiet=True)
    folder = checkpoints(tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == ["weights.pt"]
    verify_checkpoint(folder / "weights.pt")  # signed like every checkpoint
    weights = safe_load(folder / "weights.pt")  # read back without unpickling code
    assert set(weights) == {"format", "format_version", "epoch", "step", "config", "model"}
    assert weights["format"] == "sslkit-pretrain-weights" and weights["step"] == 3
    assert "decoder.head.weight" in weights["model"]

    again = run_compare(config_for(data, tmp_path), plugins, quiet=True)
    assert (again.ran, again.reused) == (0, 2) and len(stub.calls) == 1
    assert json.dumps(again.rows) == json.dumps(first.rows)  # NaN-aware
    # a new label budget reuses the pruned pretraining (pretrain.json + encoder/), never resumes it
    more = run_compare(config_for(data, tmp_path, labels=[12, 6]), plugins, quiet=True)
    assert (more.ran, more.reused) == (2, 2) and stub.calls == [("random", 0, False)]


def test_last_keeps_every_checkpoint_and_none_removes_them(stub, plugins, data, tmp_path):
    run_compare(config_for(data, tmp_path, keep_checkpoints="last"), plugins, quiet=True)
    folder = checkpoints(tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == ["epoch_1.pt", "last.pt"]
    # the setting never changes a figure: the cells are reused under another one, which then applies
    again = run_compare(config_for(data, tmp_path, keep_checkpoints="none"), plugins, quiet=True)
    assert (again.ran, again.reused) == (0, 2) and len(stub.calls) == 1
    assert not folder.exists() and (folder.parent / "encoder" / "encoder.json").is_file()


def test_an_interrupted_pretraining_keeps_its_checkpoint_and_resumes(stub, plugins, data, tmp_path):
    stub.interrupt = True
    with pytest.raises(KeyboardInterrupt):
        run_compare(config_for(data, tmp_path, keep_checkpoints="none"), plugins, quiet=True)
    folder = checkpoints(tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == ["epoch_1.pt", "last.pt"]
    run_compare(config_for(data, tmp_path), plugins, quiet=True)
    assert stub.calls == [("random", 0, False), ("random", 0, True)]  # resumed from the kept checkpoint
    assert sorted(p.name for p in folder.iterdir()) == ["weights.pt"]  # pruned once finished


def test_a_pruned_pretraining_with_other_settings_is_refused_not_trained_over(stub, plugins, data, tmp_path):
    run_compare(config_for(data, tmp_path), plugins, quiet=True)
    for path in (tmp_path / "runs").rglob(CELL_FILE):
        path.unlink()  # only the pretraining's own record can tell the settings apart now
    with pytest.raises(UserError, match=r"finished pretraining with other settings \(.*epochs 1 -> 2"):
        run_compare(config_for(data, tmp_path, pretrain_epochs=2), plugins, quiet=True)
    assert len(stub.calls) == 1


def test_the_pretrained_decoder_is_read_from_a_weights_only_checkpoint(tmp_path):
    import torch

    from sslkit.models.decoder_export import pretrained_decoder_state
    from sslkit.pretraining.checkpoint import atomic_save
    from sslkit.pretraining.kept_checkpoints import keep_checkpoints

    head = torch.arange(6.0).reshape(2, 3)
    atomic_save({"format": "sslkit-pretrain-checkpoint", "epoch": 1, "step": 2, "model": {"decoder.head.weight": head, "encoder.w": torch.ones(1)},
                 "optimizer": {"state": {}}}, tmp_path / "checkpoints" / "last.pt")
    keep_checkpoints(tmp_path, "weights")
    assert not (tmp_path / "checkpoints" / "last.pt").exists()
    state, _ = pretrained_decoder_state(tmp_path)  # a run without decoder/: the fallback still works
    assert list(state) == ["head.weight"] and torch.equal(state["head.weight"], head)


def test_keep_checkpoints_is_checked_and_documented(plugins, data, tmp_path):
    from sslkit.cli import cli

    with pytest.raises(UserError, match="--keep-checkpoints must be one of weights, last, none"):
        run_compare(config_for(data, tmp_path, keep_checkpoints="all"), plugins, quiet=True)
    help_text = CliRunner().invoke(cli, ["compare", "--help"], terminal_width=200).output
    assert "--keep-checkpoints [weights|last|none]" in help_text
