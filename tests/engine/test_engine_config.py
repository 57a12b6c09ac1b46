"""PretrainConfig: precedence (defaults < YAML < command line), key checks, coercion, validation."""

from __future__ import annotations

import re

import pytest

from sslkit.pretraining.config import (
    PretrainConfig,
    load_config_file,
    load_run_config,
    merge,
    parse_splits,
    save_config,
    validate,
)
from sslkit.errors import UserError


def test_precedence_defaults_file_cli(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 7\nbatch-size: 8\nlr: 1e-3\nmasker_options: {size: 0.3, count: 2}\n")
    config = merge(load_config_file(path), {"epochs": 2, "masker_options": {"count": 3}})
    assert config.epochs == 2  # command line beats the file
    assert config.batch_size == 8  # file beats the default
    assert config.lr == pytest.approx(1e-3)  # YAML reads 1e-3 as text; coerced
    assert config.image_size == PretrainConfig().image_size  # default
    assert config.masker_options == {"size": 0.3, "count": 3}  # merged key by key


def test_new_masker_on_command_line_drops_file_options(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("masker: random\nmasker_options: {size: 0.3}\n")
    config = merge(load_config_file(path), {"masker": "center"})
    assert config.masker == "center" and config.masker_options == {}


def test_unknown_yaml_key_suggests(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epoch: 3\n")
    with pytest.raises(UserError, match="unknown key 'epoch'; did you mean 'epochs'"):
        load_config_file(path)


@pytest.mark.parametrize(
    "text, message",
    [
        ("epochs: three\n", "key 'epochs' must be a number"),
        ("epochs: 2.5\n", "must be a whole number"),
        ("- a\n- b\n", "must hold a mapping"),
        ("epochs: [\n", "not valid YAML"),
        ("compile: maybe\n", "must be true or false"),
    ],
)
def test_bad_yaml_values(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        PretrainConfig.from_mapping(load_config_file(path), "config")


def test_missing_config_file(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_config_file(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"epochs": 0}, "epochs must be at least 1, got 0"),
        ({"image_size": 7}, "image-size must be at least 16 pixels, got 7"),
        ({"batch_size": 0}, "batch-size must be at least 1"),
        ({"lr": -1.0}, "lr must be a positive number"),
        ({"lr": float("nan")}, "lr must be a positive number"),
        ({"optimizer": "adan"}, "optimizer 'adan' is not one of adam, adamw; did you mean 'adam'"),
        ({"precision": "fp8"}, "precision 'fp8' is not one of"),
        ({"warmup_epochs": 3.0, "epochs": 3}, "warmup-epochs must be at least 0 and less than epochs"),
        ({"milestones": [0.7, 0.3]}, "milestones must be increasing"),
        ({"gamma": 0.0}, "gamma must be in"),
        ({"workers": -1}, "workers must be zero or positive"),
        ({"pretrain_splits": "train+tset"}, "unknown split 'tset' (did you mean 'test'?)"),
    ],
)
def test_validation_errors(changes, message):
    config = PretrainConfig()
    for key, value in changes.items():
        setattr(config, key, value)
    with pytest.raises(UserError, match=re.escape(message)):
        validate(config)


def test_every_error_is_one_sentence():
    config = PretrainConfig(epochs=0)
    with pytest.raises(UserError) as info:
        validate(config)
    assert "\n" not in info.value.message


def test_parse_splits():
    assert parse_splits("train+val") == ("train", "val")
    assert parse_splits("train, test") == ("train", "test")
    assert parse_splits("all") is None


def test_saved_config_round_trips(tmp_path):
    config = PretrainConfig(epochs=4, lr=3e-4, masker_options={"size": 0.5}, data="npz:x.npz", out=str(tmp_path))
    save_config(config, tmp_path / "config.yaml")
    assert load_run_config(tmp_path) == config
    # ...and --config accepts the saved file
    assert merge(load_config_file(tmp_path / "config.yaml"), {}) == config


def test_default_run_never_pretrains_on_test():
    assert "test" not in parse_splits(PretrainConfig().pretrain_splits)


def test_example_config_is_valid_and_complete(tmp_path):
    """``sslkit pretrain --config examples/pretrain_config.yaml`` builds its run: every part is made
    through the real registries as the command makes it (a masker or backbone option the plugin
    does not take fails here; the example once had random-grid's non-existent 'count'), and one
    batch of the data it names is masked and reconstructed at the right shape."""
    import dataclasses
    from pathlib import Path

    import torch

    from sslkit.masking import StepInfo, validate_masks
    from sslkit.plugins import load_plugins
    from sslkit.pretraining.config import check_plugin_names
    from sslkit.pretraining.run_parts import build_run

    path = Path(__file__).resolve().parents[2] / "examples" / "pretrain_config.yaml"
    values = load_config_file(path)
    assert set(values) == {f.name for f in dataclasses.fields(PretrainConfig)}  # documents every key
    config = validate(merge(values, {"epochs": 1, "device": "cpu", "threads": 1}, "options"))
    plugins = load_plugins(include_env=False)
    check_plugin_names(config, plugins)
    parts = build_run(dataclasses.replace(config, out=str(tmp_path / "run")), plugins)
    assert parts.config.masker == "random-grid" and parts.steps_per_epoch >= 1
    batch = next(iter(parts.loader))
    images = batch["image"].to(parts.device, memory_format=parts.memory_format)
    with torch.no_grad():
        masks = validate_masks(parts.masker.propose(images, StepInfo(0, 0, parts.total_steps)), images)
        reconstruction = parts.predictor(images.masked_fill(masks, 0.0))
    assert reconstruction.shape == images.shape
    assert 0.5 < masks.float().mean().item() < 0.95  # the example's ratio 0.75 of the grid hidden


def test_a_run_saved_before_new_settings_resumes_as_it_was_built(tmp_path):
    """config.yaml files written before --decoder-skips and --channels-last existed keep the
    architecture and layout they were trained with, not today's defaults."""
    from sslkit.pretraining.config import load_run_config

    (tmp_path / "config.yaml").write_text("masker: random\nprecision: fp32\nepochs: 10\n")
    old = load_run_config(tmp_path)
    assert (old.decoder_skips, old.channels_last, old.precision) == ("all", False, "fp32")
    (tmp_path / "config.yaml").write_text("masker: random\ndecoder_skips: none\nchannels_last: true\n")
    new = load_run_config(tmp_path)
    assert (new.decoder_skips, new.channels_last) == ("none", True)


def test_a_paper_unet_run_saved_before_the_exact_network_rebuilds_its_earlier_variant(tmp_path):
    from sslkit.pretraining.config import load_run_config

    (tmp_path / "config.yaml").write_text("backbone: paper-unet\nbackbone_options: {}\n")
    assert load_run_config(tmp_path).backbone_options == {"block": "double", "bottleneck_kernel": 0}
    (tmp_path / "config.yaml").write_text("backbone: paper-unet\nbackbone_options: {}\ndecoder_skips: auto\n")
    assert load_run_config(tmp_path).backbone_options == {}  # a new run: the authors' network
