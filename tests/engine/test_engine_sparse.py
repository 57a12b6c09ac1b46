"""``--encoding sparse`` through the engine: a run trains with mask tokens on the encoder's cells
and exports an encoder that loads densely; an encoder too coarse for it is one sentence."""

from __future__ import annotations

import pytest
import torch

from sslkit.pretraining.config import PretrainConfig
from sslkit.pretraining.run import run_pretraining
from sslkit.errors import UserError
from sslkit.masking import cell_fractions
from sslkit.models import load_encoder


def test_sparse_run_trains_on_cells_and_exports_a_dense_encoder(tmp_path, tiny_options, read_checkpoint, monkeypatch):
    import sslkit.pretraining.train_loop as loop

    seen = []
    real_step = loop.train_step

    def recording_step(**kwargs):
        out = real_step(**kwargs)
        seen.append(out.masks)
        return out

    monkeypatch.setattr(loop, "train_step", recording_step)
    options = {**tiny_options, "epochs": 1, "encoding": "sparse", "target": "norm-pixels",
               "backbone_options": {"output_stride": 8}, "out": str(tmp_path / "run")}
    final = run_pretraining(PretrainConfig(**options))
    assert final["steps"] == 3 and final["loss"] > 0
    for masks in seen:  # unions of the 4 x 4 cells, 75 % of them (random-grid's ratio on the encoder's grid)
        fractions = cell_fractions(masks, (4, 4))
        assert ((fractions == 0) | (fractions == 1)).all()
        assert (fractions.flatten(1).sum(dim=1) == 12).all()
    state = read_checkpoint(tmp_path / "run")
    assert any(k.startswith("mask_tokens.") for k in state["model"])
    encoder = load_encoder(tmp_path / "run" / "encoder").eval()
    assert encoder(torch.randn(2, 1, 32, 32))[-1].shape[-2:] == (4, 4)


def test_an_encoder_without_a_2x2_grid_is_refused_in_one_sentence(tmp_path, tiny_options):
    options = {**tiny_options, "epochs": 1, "encoding": "sparse", "out": str(tmp_path / "run")}
    with pytest.raises(UserError, match="at least 2 x 2 cells; backbone 'mobilenetv3_small_050' gives 1 x 1 at 32 px"):
        run_pretraining(PretrainConfig(**options))
