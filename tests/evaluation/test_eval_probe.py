"""Frozen-encoder heads standardise their input, so feature scale cannot decide the baseline.

A randomly initialised encoder's deepest features can sit at a scale far from a pretrained one's;
fed raw to the head, Adam at lr 1e-3 then collapses to predicting one class. These tests train the
real frozen-head loop on synthetic, class-informative features of a huge scale and offset.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sslkit.finetuning.config import FinetuneConfig
from sslkit.finetuning.loop import Recorder, train_frozen
from sslkit.finetuning.classifier import Classifier, FeatureStandardizer, build_head


class _NoEncoder(nn.Module):
    """Stands in for a frozen encoder: the frozen loop only trains the head on cached maps."""

    feature_channels = [8]

    def forward(self, images):  # pragma: no cover - never called by the frozen loop
        raise AssertionError("the frozen loop must train on cached features")


def _huge_features(n_per_class: int = 30, classes: int = 3, seed: int = 0):
    """(N, 8, 2, 2) maps at scale 1e4 around an offset of 1e5; class c raises channel c."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(classes).repeat_interleave(n_per_class)
    maps = torch.randn(len(labels), 8, 2, 2, generator=g)
    maps[torch.arange(len(labels)), labels] += 3.0
    return maps * 1e4 + 1e5, labels


def _train(protocol: str, standardize: bool):
    torch.manual_seed(0)
    features, labels = _huge_features()
    head = build_head(protocol, 8, 3, standardize=standardize)
    classifier = Classifier(_NoEncoder(), head, protocol)
    config = FinetuneConfig(protocol=protocol, epochs=150, seed=0, quiet=True)
    state, _ = train_frozen(classifier, features, labels, None, config, None, torch.device("cpu"),
                            ["a", "b", "c"], Recorder(None, 150, True))
    head.load_state_dict(state)
    head.eval()
    test_features, test_labels = _huge_features(seed=1)
    with torch.no_grad():
        predicted = head(test_features).argmax(dim=1)
    return predicted, test_labels


@pytest.mark.parametrize("protocol", ["linear", "paper"])
def test_standardised_head_learns_from_huge_features(protocol):
    predicted, truth = _train(protocol, standardize=True)
    assert len(set(predicted.tolist())) == 3
    assert (predicted == truth).float().mean() > 0.8


def test_raw_linear_head_collapses_on_huge_features():
    """The failure the standardiser exists for (kept as a test so the reason stays visible)."""
    predicted, truth = _train("linear", standardize=False)
    assert (predicted == truth).float().mean() < 0.6


def test_standardizer_fits_channel_statistics_and_keeps_dead_channels_finite():
    maps = torch.randn(50, 4, 3, 3) * torch.tensor([1.0, 10.0, 100.0, 0.0]).view(1, 4, 1, 1) + 7.0
    norm = FeatureStandardizer(4)
    norm.fit(maps)
    out = norm(maps)
    assert torch.allclose(out[:, :3].mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(out[:, :3].std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4)
    assert torch.equal(out[:, 3], torch.zeros_like(out[:, 3]))  # constant channel -> exactly 0


def test_a_channel_that_hardly_varies_is_not_blown_up():
    """A random paper-unet's deepest features vary by 1e-8 to 1e-5 across images: without a floor
    on the std, a test image 1e-4 away from the training mean landed 100 stds out."""
    from sslkit.finetuning.classifier import STD_EPS

    train = 0.5 + 1e-6 * torch.randn(40, 3)
    norm = FeatureStandardizer(3)
    norm.fit(train)
    assert torch.all(norm.std >= STD_EPS ** 0.5 * 0.999)
    test = norm(train[:1] + 1e-4)
    assert test.abs().max() < 0.05  # (1e-4 / sqrt(1e-5) = 0.032), not 1e-4 / 1e-6 = 100


def test_standardisation_travels_with_the_saved_classifier(tmp_path):
    from eval_helpers import tiny_plugins

    from sslkit.finetuning.classifier import load_classifier, new_classifier, save_classifier
    from sslkit.models import build_encoder

    plugins = tiny_plugins()
    encoder = build_encoder("eval-tiny-cnn", in_chans=1, plugins=plugins)
    classifier = new_classifier(encoder, "linear", 3)
    channels = encoder.feature_channels[-1]
    classifier.head.standardizer.fit(torch.randn(20, channels) * 50 + 3)
    save_classifier(classifier, tmp_path / "clf", {"class_names": ["a", "b", "c"]})
    loaded, info = load_classifier(tmp_path / "clf", plugins=plugins)
    assert info["feature_standardization"] is True
    assert torch.equal(loaded.head.standardizer.std, classifier.head.standardizer.std)
    assert new_classifier(encoder, "full", 3).head.standardizer is None  # full fine-tuning: no fixed statistics
