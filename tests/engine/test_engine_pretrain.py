"""A tiny real pretraining run: what the run directory holds, TensorBoard events, the loss."""

from __future__ import annotations

import csv
import dataclasses
import json

import pytest
import torch

from sslkit.pretraining.config import PretrainConfig, load_run_config
from sslkit.engine.device import resolve_precision
from sslkit.pretraining.loss import masked_reconstruction_loss
from sslkit.pretraining.run import run_pretraining
from sslkit.errors import UserError


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_npz):
    run_dir = tmp_path_factory.mktemp("run") / "r"
    config = PretrainConfig(
        data=f"npz:{tiny_npz}", backbone="mobilenetv3_small_050", image_size=32, batch_size=4, epochs=2,
        device="cpu", quiet=True, log_every=1, log_images_every=2, checkpoint_every=1, out=str(run_dir),
    )
    final = run_pretraining(config)
    return run_dir, final, config


def test_run_directory_holds_everything(finished_run):
    run_dir, final, config = finished_run
    saved = load_run_config(run_dir)
    # `auto` precision is recorded as what the run used, so --resume keeps it on any machine.
    assert config.precision == "auto" and saved.precision == resolve_precision("auto", torch.device("cpu"))
    assert saved == dataclasses.replace(config, precision=saved.precision)
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["epoch_1.pt", "epoch_2.pt", "last.pt"]
    assert (run_dir / "encoder" / "encoder.safetensors").is_file()
    assert final["epochs"] == 2 and final["steps"] == 6  # 12 train+val images, batch 4, 2 epochs


def test_exported_encoder_loads_and_matches_the_checkpoint(finished_run, read_checkpoint):
    from sslkit.models import load_encoder

    run_dir, _, _ = finished_run
    encoder = load_encoder(run_dir / "encoder")
    model = read_checkpoint(run_dir)["model"]
    for key, value in encoder.state_dict().items():
        assert torch.equal(value, model[f"encoder.{key}"])


def test_metrics_files(finished_run):
    run_dir, final, _ = finished_run
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert {"loss", "lr", "images_per_s", "mask/area_fraction", "mask/lesion_hit_rate"} <= set(rows[0])
    data = json.loads((run_dir / "metrics.json").read_text())
    assert data["final"]["loss"] == pytest.approx(final["loss"]) == pytest.approx(float(rows[-1]["loss"]))
    # the default masker (random-grid, the recipe) hides exactly 48 of the 8 x 8 cells
    assert float(rows[0]["mask/area_fraction"]) == pytest.approx(48 / 64)


def test_tensorboard_has_loss_scalars_and_image_grids(finished_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, _, _ = finished_run
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"images": 0, "scalars": 0}).Reload()
    tags = events.Tags()
    assert {"train/loss", "train/lr", "train/images_per_s", "epoch/loss", "mask/area_fraction"} <= set(tags["scalars"])
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3, 4, 5, 6]
    assert [e.step for e in events.Scalars("epoch/loss")] == [3, 6]
    assert "_hparams_/experiment" in events.PluginTagToContent("hparams")  # the HPARAMS tab
    (image_tag,) = tags["images"]
    assert image_tag == "reconstruction/input|mask|masked|reconstruction|filled"
    steps = [e.step for e in events.Images(image_tag)]
    assert steps == [1, 2, 4, 6]  # the first step, every 2 and the last
    grid = events.Images(image_tag)[0]
    # 4 images per batch in rows; input | mask | masked | reconstruction | filled in columns, 2 px borders
    assert (grid.height, grid.width) == (4 * 36, 5 * 36)


def test_loss_over_masked_pixels_only():
    images = torch.zeros(2, 1, 4, 4)
    recon = torch.ones(2, 1, 4, 4)
    recon[0, 0, 0, 0] = 3.0  # error 9 on a masked pixel of image 0
    masks = torch.zeros(2, 1, 4, 4, dtype=torch.bool)
    masks[0, 0, :2, :2] = True
    loss, per_image, error_map = masked_reconstruction_loss(recon, images, masks, "masked")
    assert per_image.tolist() == [pytest.approx((9 + 1 + 1 + 1) / 4), 0.0]
    assert loss.item() == pytest.approx(3.0)  # image 1 has nothing masked: it does not dilute the mean
    assert error_map.shape == (2, 1, 4, 4)
    full, per_full, _ = masked_reconstruction_loss(recon, images, masks, "full")
    assert per_full.tolist() == [pytest.approx((9 + 15) / 16), pytest.approx(1.0)]


def test_loss_with_nothing_masked_is_zero_and_differentiable():
    recon = torch.ones(2, 3, 4, 4, requires_grad=True)
    loss, _, _ = masked_reconstruction_loss(recon, torch.zeros(2, 3, 4, 4), torch.zeros(2, 1, 4, 4, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(recon.grad).all()


def test_out_dir_with_a_run_is_refused(finished_run):
    run_dir, _, config = finished_run
    with pytest.raises(UserError, match="already holds a run; continue it with --resume"):
        run_pretraining(config)


def test_image_grid_columns_and_masker_maps():
    from sslkit.pretraining.image_grid import step_grid

    images = torch.full((3, 1, 8, 8), -1.0)
    masks = torch.zeros(3, 1, 8, 8, dtype=torch.bool)
    masks[:, :, :4] = True
    recon = torch.ones(3, 1, 8, 8)
    heat = torch.rand(3, 1, 2, 2)  # a coarse map, e.g. one value per grid cell
    grid, columns = step_grid(images, masks, images.masked_fill(masks, 0.0), recon, {"heat": heat}, pad=0)
    assert columns == ["input", "mask", "masked", "reconstruction", "filled", "heat"]
    assert grid.shape == (1, 3 * 8, 6 * 8)
    filled = grid[0, :8, 32:40]
    assert filled[:4].eq(1).all() and filled[4:].eq(0).all()  # reconstruction in the hole, input elsewhere
    assert torch.equal(grid[0, :8, 40:48], heat[0, 0].repeat_interleave(4, 0).repeat_interleave(4, 1))
