"""Lesion segmentation as a downstream task: it learns, it starts from the pretrained decoder when
asked, it writes and reloads what it promises, it refuses what it cannot do, and compare pairs it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from evaluation.eval_helpers import TINY_PLUGIN, tiny_npz, tiny_plugins
from sslkit.errors import UserError
from sslkit.finetuning.config import FinetuneConfig
from sslkit.finetuning.run import run_finetuning

SIZE = 32


def lesion_npz(path: Path, seed: int = 0) -> Path:
    """Bright discs (the lesions, with their masks) on noise; a third of the images have none."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    arrays = {"classes": np.array(["lesion", "normal"])}
    for split, n in (("train", 30), ("val", 9), ("test", 9)):
        images = rng.integers(0, 70, size=(n, SIZE, SIZE)).astype(np.uint8)
        masks = np.zeros((n, SIZE, SIZE), np.uint8)
        labels = np.zeros(n, np.uint8)
        for i in range(n):
            if i % 3 == 2:
                labels[i] = 1
                continue
            cy, cx, r = rng.integers(9, SIZE - 9), rng.integers(9, SIZE - 9), rng.integers(4, 8)
            disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
            masks[i][disc] = 1
            images[i][disc] += 150
        arrays.update({f"{split}_images": images, f"{split}_masks": masks, f"{split}_labels": labels})
    np.savez(path, **arrays)
    return path


@pytest.fixture(scope="module")
def plugins():
    return tiny_plugins()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return "npz:" + str(lesion_npz(tmp_path_factory.mktemp("seg") / "lesions.npz"))


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, plugins, data):
    """A real (one-epoch) pretraining run of the tiny CNN: encoder and decoder exported."""
    from sslkit.pretraining.config import PretrainConfig
    from sslkit.pretraining.run import run_pretraining

    out = tmp_path_factory.mktemp("pre") / "run"
    config = PretrainConfig.from_mapping({"masker": "random-grid", "backbone": "eval-tiny-cnn", "data": data,
                                          "image_size": SIZE, "epochs": 1, "batch_size": 8, "out": str(out),
                                          "quiet": True, "threads": 1, "device": "cpu", "decoder_skips": "all"},
                                         source="test")
    run_pretraining(config, plugins)
    return out


def settings(data, out, **overrides) -> FinetuneConfig:
    values = dict(task="segmentation", data=data, labels=20, epochs=3, batch_size=8, image_size=SIZE,
                  device="cpu", threads=1, quiet=True, out=str(out) if out else None)
    values.update(overrides)
    return FinetuneConfig(**values)


def test_a_segmenter_from_scratch_learns_the_lesions(plugins, data):
    # barely trained (one epoch at a learning rate too small to move it) against trained
    short = run_finetuning(settings(data, None, from_scratch=True, backbone="eval-tiny-cnn", epochs=1, labels="all",
                                    lr=1e-7), plugins)
    long = run_finetuning(settings(data, None, from_scratch=True, backbone="eval-tiny-cnn", epochs=40, labels="all",
                                   lr=1e-2), plugins)
    first, trained = short.metrics["test"].scalars, long.metrics["test"].scalars
    assert set(trained) >= {"dice", "iou", "hd95", "dice_lesion", "empty_correct"}
    assert trained["dice_lesion"] > 0.6 and trained["dice_lesion"] > first["dice_lesion"] + 0.2
    assert 0.0 <= trained["iou"] <= trained["dice"] <= 1.0
    assert len(long.test_predictions["dice"]) == 9 and "_pred" not in long.test_predictions  # JSON-shaped


def test_the_pretrained_decoder_is_reused_and_a_fresh_one_is_not(plugins, data, pretrained):
    from safetensors.torch import load_file

    from sslkit.finetuning.tasks import get_task
    from sslkit.models import load_encoder
    from sslkit.models.decoder_export import output_layer_prefix

    task = get_task("segmentation", plugins)
    saved = load_file(str(pretrained / "decoder" / "decoder.safetensors"))
    run_config = {"decoder_skips": "all"}
    models = {}
    for decoder in ("pretrained", "fresh"):
        torch.manual_seed(0)
        config = settings(data, None, encoder=str(pretrained), decoder=decoder, protocol="full")
        models[decoder] = task.build_model(load_encoder(pretrained / "encoder", plugins=plugins), config, None,
                                           run_config=run_config, plugins=plugins)
    output = output_layer_prefix(models["pretrained"].decoder)
    reused = {k: v for k, v in models["pretrained"].decoder.state_dict().items() if not k.startswith(output)}
    assert reused and all(torch.equal(v, saved[k]) for k, v in reused.items())
    out_weight = models["pretrained"].decoder.state_dict()[output + "weight"]
    assert out_weight.shape[0] == 1 and not torch.equal(out_weight, saved[output + "weight"])  # a new output layer
    fresh = models["fresh"].decoder.state_dict()
    assert not any(torch.equal(fresh[k], saved[k]) for k in reused if saved[k].ndim == 4)


def test_a_run_writes_masks_overlay_tensorboard_and_reloads_to_the_same_figures(plugins, data, pretrained, tmp_path):
    from PIL import Image

    from sslkit.finetuning.saved import evaluate_saved_classifier

    out = tmp_path / "seg"
    result = run_finetuning(settings(data, out, encoder=str(pretrained), protocol="frozen"), plugins)
    masks = sorted((out / "masks").glob("*.png"))
    assert len(masks) == result.metrics["test"].n_samples == 9
    assert set(np.unique(np.asarray(Image.open(masks[0])))) <= {0, 255}
    assert (out / "overlay.png").is_file() and (out / "segmenter" / "segmenter.json").is_file()
    header = (out / "predictions.csv").read_text().splitlines()[0].split(",")
    assert header[:5] == ["image", "label", "dice", "iou", "hd95"]
    assert any(p.name.startswith("events") for p in (out / "tensorboard").iterdir())
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["task"] == "segmentation" and saved["protocol"] == "frozen"
    again = evaluate_saved_classifier(out, plugins=plugins)
    assert again.metrics.scalars == pytest.approx(result.metrics["test"].scalars, nan_ok=True)


def test_segmentation_refuses_data_without_masks_and_classification_protocols(plugins, tmp_path):
    plain = "npz:" + str(tiny_npz(tmp_path / "plain.npz"))
    with pytest.raises(UserError, match="no lesion masks"):
        run_finetuning(settings(plain, None, from_scratch=True, backbone="eval-tiny-cnn"), plugins)
    with pytest.raises(UserError, match="--protocol paper does not apply to --task segmentation"):
        run_finetuning(settings(plain, None, from_scratch=True, backbone="eval-tiny-cnn", protocol="paper"), plugins)
    with pytest.raises(UserError, match="did you mean 'segmentation'"):
        run_finetuning(settings(plain, None, from_scratch=True, backbone="eval-tiny-cnn", task="segmentaton"), plugins)


def test_a_pretrained_decoder_needs_a_pretraining_run(plugins, data, tmp_path):
    from evaluation.eval_helpers import tiny_encoder_dir

    exported = tiny_encoder_dir(tmp_path / "enc", plugins)
    with pytest.raises(UserError, match="no pretrained decoder.*--decoder fresh"):
        run_finetuning(settings(data, None, encoder=str(exported)), plugins)
    fresh = run_finetuning(settings(data, None, encoder=str(exported), decoder="fresh", epochs=1), plugins)
    assert fresh.metrics["test"].n_samples == 9


def test_compare_pairs_the_decoders_and_scratch_with_intervals(plugins, data, tmp_path):
    from sslkit.comparison.config import CompareConfig
    from sslkit.comparison.run import run_compare
    from sslkit.comparison.stats import recompute_statistics

    config = CompareConfig(task="segmentation", maskers=["random-grid"], backbone="eval-tiny-cnn", data=data,
                           seeds=[0], labels=12, folds=1, pretrain_epochs=1, pretrain_batch_size=8,
                           pretrain_options={"decoder_skips": "all"}, finetune_epochs=2, finetune_batch_size=8,
                           image_size=SIZE, threads=1, device="cpu", bootstrap_resamples=200, out=str(tmp_path / "cmp"))
    result = run_compare(config, plugins, quiet=True)
    assert [r["method"] for r in result.rows] == ["random-grid", "random-grid+fresh-decoder", "scratch"]
    assert all(np.isfinite(r["dice"]) for r in result.rows)
    pairs = {(d.method, d.reference, d.metric) for d in result.differences["12"]}
    assert ("random-grid", "random-grid+fresh-decoder", "dice") in pairs
    assert ("random-grid+fresh-decoder", "scratch", "hd95") in pairs
    runs = config.runs_path()
    assert not (runs / "random-grid+fresh-decoder" / "seed0" / "pretrain").exists()  # shares random-grid's
    out = Path(config.out)
    assert sorted(p.name for p in (out / "overlays").glob("*.png")) == [
        "random-grid+fresh-decoder_labels12.png", "random-grid_labels12.png", "scratch_labels12.png"]
    assert "dice" in (out / "results.csv").read_text().splitlines()[0]
    again = recompute_statistics(out, n_resamples=200)
    before = {(d.method, d.reference, d.metric): d.difference for d in result.differences["12"]}
    after = {(d.method, d.reference, d.metric): d.difference for d in again["differences"]["12"]}
    assert after == pytest.approx(before, nan_ok=True)


def test_the_task_registry_is_listed_and_typos_get_a_suggestion(monkeypatch):
    from sslkit.cli import cli

    monkeypatch.setenv("SSLKIT_PLUGINS", str(TINY_PLUGIN))
    listed = CliRunner().invoke(cli, ["list", "tasks"])
    assert listed.exit_code == 0 and "classification" in listed.output and "segmentation" in listed.output
    typo = CliRunner().invoke(cli, ["finetune", "--task", "segmantation", "--from-scratch", "--epochs", "1"])
    assert typo.exit_code != 0 and "did you mean 'segmentation'" in typo.output


def test_a_task_from_one_plugin_file_trains_compares_and_reloads(data, tmp_path):
    """The README's claim: a new task is one file plus its registration (tests/plugins/lesion_area_task.py)."""
    from sslkit.comparison.config import CompareConfig
    from sslkit.comparison.run import run_compare
    from sslkit.finetuning.saved import evaluate_saved_classifier
    from sslkit.plugins import load_plugins

    plugins = load_plugins([TINY_PLUGIN, Path(__file__).parents[1] / "plugins" / "lesion_area_task.py"],
                           include_env=False)
    untrained = run_finetuning(settings(data, None, task="lesion-area", from_scratch=True, backbone="eval-tiny-cnn",
                                        epochs=1, lr=1e-7, labels="all"), plugins)
    out = tmp_path / "area"
    trained = run_finetuning(settings(data, out, task="lesion-area", from_scratch=True, backbone="eval-tiny-cnn",
                                      epochs=30, lr=1e-2, labels="all"), plugins)
    assert trained.metrics["test"].scalars["abs_error"] < 0.5 * untrained.metrics["test"].scalars["abs_error"]
    again = evaluate_saved_classifier(out, plugins=plugins)
    assert again.metrics.scalars["abs_error"] == pytest.approx(trained.metrics["test"].scalars["abs_error"], rel=1e-5)
    config = CompareConfig(task="lesion-area", maskers=["random-grid"], backbone="eval-tiny-cnn", data=data, seeds=[0],
                           labels=12, folds=1, pretrain_epochs=1, pretrain_batch_size=8, finetune_epochs=2,
                           finetune_batch_size=8, image_size=SIZE, threads=1, device="cpu", bootstrap_resamples=200,
                           out=str(tmp_path / "cmp"))
    result = run_compare(config, plugins, quiet=True)
    assert [(d.method, d.reference, d.metric) for d in result.differences["12"]] == [
        ("random-grid", "scratch", "abs_error")]


def test_images_without_a_mask_are_refused_not_scored_as_negatives(plugins, tmp_path):
    """An npz whose test split has no masks would score an empty prediction 1.0 on every image."""
    path = lesion_npz(tmp_path / "partial.npz")
    arrays = dict(np.load(path))
    del arrays["test_masks"]
    np.savez(path, **arrays)
    with pytest.raises(UserError, match="9 test images .* have no lesion mask"):
        run_finetuning(settings("npz:" + str(path), None, from_scratch=True, backbone="eval-tiny-cnn"), plugins)


def test_classification_compare_cells_keep_their_fingerprints(tmp_path):
    """A classification cell written before --task and --decoder existed still matches (scratch too)."""
    from sslkit.comparison.cells import _comparable, fingerprint
    from sslkit.comparison.config import Cell, CompareConfig

    config = CompareConfig(out=str(tmp_path))
    for method in ("random-grid", "scratch"):
        now = fingerprint(config, Cell(method, 0, 100, 0))
        old = json.loads(json.dumps(now))
        for key in ("task", "decoder"):
            old["finetune"].pop(key)
        assert _comparable(old) == _comparable(now)


def test_compare_refuses_another_decoder_for_segmentation(plugins, data, tmp_path):
    from sslkit.comparison.config import CompareConfig, validate

    config = CompareConfig(task="segmentation", maskers=["random-grid"], data=data,
                           pretrain_options={"decoder_skips": "none"}, out=str(tmp_path))
    with pytest.raises(UserError, match="cannot change it"):
        validate(config, plugins)


def test_compare_refuses_a_scratch_full_that_would_repeat_scratch(plugins, data, tmp_path):
    from sslkit.comparison.config import CompareConfig, validate

    config = CompareConfig(task="segmentation", maskers=["random-grid"], data=data, scratch_full=True, out=str(tmp_path))
    with pytest.raises(UserError, match="would repeat 'scratch'"):
        validate(config, plugins)
    validate(CompareConfig(task="segmentation", maskers=["random-grid"], data=data, scratch_full=True,
                           scratch_full_epochs=80, out=str(tmp_path)), plugins)
