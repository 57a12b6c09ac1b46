"""Downstream classifiers: an encoder, a head, and the protocol that says what trains.

Protocols:

- ``linear``: frozen encoder, one linear layer on the globally pooled deepest features.
- ``paper``: frozen encoder, the authors' head: conv3x3 (C -> 32), global average pool,
  MLP 32 -> 16 -> classes with ReLU and dropout 0.3.
- ``full``: the whole network trains (encoder at a lower learning rate), linear head.

"Frozen" keeps the encoder in eval mode and out of the optimiser
(:class:`~sslkit.finetuning.downstream_model.DownstreamModel`, shared with every task's model).

Frozen heads standardise their input (:class:`FeatureStandardizer`): per-channel mean and
standard deviation measured once on the labelled training features, then frozen. Without it a
randomly initialised encoder, whose deepest features can be orders of magnitude larger or smaller
than a pretrained one's, gives the head logits so large (or small) that Adam at lr 1e-3 collapses
to predicting one class; the baseline then measures the optimiser, not the features. The shift
and scale are a per-channel affine map the head could represent itself, so its function class is
unchanged; only the conditioning differs (the MAE linear probe's affine-free BatchNorm does the
same with batch statistics). A saved classifier is a directory: the encoder (``sslkit.models.save_encoder``
format), ``head.safetensors`` and ``classifier.json`` (protocol, head, classes, data settings).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sslkit.errors import UserError
from sslkit.finetuning.downstream_model import DownstreamModel
from sslkit.finetuning.protocols import get_protocol
from sslkit.fileio import atomic_write_text

CLASSIFIER_JSON = "classifier.json"
HEAD_FILE = "head.safetensors"
ENCODER_SUBDIR = "encoder"


#: Added to each channel's variance before the square root, as BatchNorm's ``eps`` (the same
#: 1e-5): a floor of about 0.003 on the std. Without it a random ``paper-unet``'s deepest features,
#: which vary by 1e-8 to 1e-5 across images, were divided by stds of 1e-5, test images' features
#: landed hundreds of stds away, and the ``paper`` head sat at chance predicting one class.
STD_EPS = 1e-5


class FeatureStandardizer(nn.Module):
    """``(x - mean) / sqrt(var + eps)`` per channel (dim 1), with statistics fitted once and then
    frozen: an affine-free BatchNorm whose statistics come from the labelled training features.

    Fitted on those features (:meth:`fit`), stored as buffers so a saved head reloads with them.
    Before fitting it is the identity. ``eps`` (:data:`STD_EPS`) keeps a channel that hardly
    varies from being blown up; one that never varies (a dead ReLU of a random network) maps to 0.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, channels: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("std", torch.ones(channels))

    @torch.no_grad()
    def fit(self, inputs: torch.Tensor) -> None:
        """Statistics over every axis but the channel one (N for vectors, N, h, w for maps)."""
        dims = [d for d in range(inputs.ndim) if d != 1]
        values = inputs.double()
        mean = values.mean(dim=dims)
        var = values.var(dim=dims, unbiased=False) if inputs.shape[0] > 1 else torch.zeros_like(mean)
        std = (var + STD_EPS).sqrt()
        self.mean.copy_(mean.float())
        self.std.copy_(std.float())

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (inputs.ndim - 2)
        return (inputs - self.mean.view(shape)) / self.std.view(shape)


class LinearHead(nn.Module):
    """Global average pool of the deepest map, (standardise,) then one linear layer."""

    def __init__(self, in_channels: int, num_classes: int, *, standardize: bool = False):
        super().__init__()
        self.standardizer = FeatureStandardizer(in_channels) if standardize else None
        self.fc = nn.Linear(in_channels, num_classes)

    def head_input(self, features: torch.Tensor) -> torch.Tensor:
        """What the standardiser sees: the pooled vector the linear layer reads."""
        return features.mean(dim=(2, 3))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.head_input(features)
        if self.standardizer is not None:
            x = self.standardizer(x)
        return self.fc(x)


class PaperHead(nn.Module):
    """The authors' downstream head: conv3x3 -> ReLU -> GAP -> 32-16 MLP (ReLU, dropout) -> classes
    (with ``standardize``, the feature maps are standardised per channel before the conv)."""

    def __init__(self, in_channels: int, num_classes: int, *, conv_channels: int = 32,
                 hidden: int = 16, dropout: float = 0.3, standardize: bool = False):
        super().__init__()
        self.standardizer = FeatureStandardizer(in_channels) if standardize else None
        self.conv = nn.Conv2d(in_channels, conv_channels, kernel_size=3, padding=1)
        self.mlp = nn.Sequential(
            nn.Linear(conv_channels, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def head_input(self, features: torch.Tensor) -> torch.Tensor:
        return features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if self.standardizer is not None:
            features = self.standardizer(features)
        x = torch.relu(self.conv(features)).mean(dim=(2, 3))
        return self.mlp(x)


def fit_head_standardization(head: nn.Module, features: torch.Tensor) -> None:
    """Fit ``head``'s standardiser (if it has one) on the training feature maps ``features``."""
    standardizer = getattr(head, "standardizer", None)
    if standardizer is not None:
        standardizer.fit(getattr(head, "head_input")(features))


def build_head(protocol: str, in_channels: int, num_classes: int, *, standardize: bool | None = None) -> nn.Module:
    """The protocol's head; ``standardize`` None = on for the frozen protocols (see the module doc)."""
    spec = get_protocol(protocol)
    if standardize is None:
        standardize = spec.frozen
    heads = {"paper": PaperHead, "linear": LinearHead}
    return heads[spec.head](in_channels, num_classes, standardize=standardize)


class Classifier(DownstreamModel):
    """encoder -> deepest feature map -> head -> logits; the encoder frozen for linear/paper."""

    def __init__(self, encoder: nn.Module, head: nn.Module, protocol: str):
        super().__init__(encoder, protocol)
        self.head = head

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images)[-1])


def new_classifier(encoder: nn.Module, protocol: str, num_classes: int, *,
                   standardize: bool | None = None) -> Classifier:
    """A classifier with a freshly initialised head on ``encoder``'s deepest features."""
    channels = int(getattr(encoder, "feature_channels")[-1])
    return Classifier(encoder, build_head(protocol, channels, num_classes, standardize=standardize), protocol)


def save_classifier(classifier: Classifier, directory: str | Path, meta: dict[str, Any]) -> Path:
    """Write the classifier directory; ``meta`` (classes, data settings, ...) goes in the JSON."""
    from sslkit.models import save_encoder
    from sslkit.models.export import save_weights

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_encoder(classifier.encoder, directory / ENCODER_SUBDIR)
    save_weights(classifier.head, directory / HEAD_FILE)
    info = {
        "format": "sslkit-classifier/1",
        "protocol": classifier.protocol,
        "head": type(classifier.head).__name__,
        "head_in_channels": int(getattr(classifier.encoder, "feature_channels")[-1]),
        "feature_standardization": getattr(classifier.head, "standardizer", None) is not None,
        **meta,
    }
    atomic_write_text(directory / CLASSIFIER_JSON, json.dumps(info, indent=2, default=str))
    return directory


def find_classifier_dir(path: str | Path) -> Path:
    """A classifier directory from itself, its ``classifier.json`` or a finetune run dir."""
    path = Path(path).expanduser()
    candidates = [path.parent] if path.name == CLASSIFIER_JSON else [path, path / "classifier"]
    for candidate in candidates:
        if (candidate / CLASSIFIER_JSON).is_file():
            return candidate
    raise UserError(f"no saved classifier at '{path}' (expected a finetune run directory or a folder with {CLASSIFIER_JSON})")


def load_classifier(path: str | Path, plugins=None) -> tuple[Classifier, dict[str, Any]]:
    """(classifier in eval mode, its classifier.json) from what :func:`save_classifier` wrote."""
    from sslkit.models import load_encoder
    from sslkit.models.export import load_weights

    directory = find_classifier_dir(path)
    try:
        info = json.loads((directory / CLASSIFIER_JSON).read_text())
        protocol = info["protocol"]
        num_classes = len(info["class_names"])
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise UserError(f"'{directory / CLASSIFIER_JSON}' is not a valid sslkit classifier file ({error})") from None
    encoder = load_encoder(directory / ENCODER_SUBDIR, plugins=plugins)
    # classifiers saved before feature standardisation existed have no such key: no standardiser
    classifier = new_classifier(encoder, protocol, num_classes,
                                standardize=bool(info.get("feature_standardization", False)))
    load_weights(classifier.head, directory / HEAD_FILE, "classifier head")
    classifier.eval()
    return classifier, info


@torch.no_grad()
def predict_indexed(classifier: Classifier, loader,
                    device: torch.device | str = "cpu") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(record indices (N,), labels (N,), class probabilities (N, K)) over ``loader`` in eval mode.

    The one forward pass behind every reported figure (finetune's final scores, its saved
    predictions and ``sslkit evaluate``), so all give identical numbers. The indices are the
    loader's positions in its records, so predictions can be tied to image ids.
    """
    was_training = classifier.training
    classifier.eval()
    indices, labels, probs = [], [], []
    try:
        for batch in loader:
            logits = classifier(batch["image"].to(device))
            probs.append(torch.softmax(logits.float(), dim=1).cpu())
            labels.append(batch["label"].cpu())
            indices.append(batch["index"].cpu())
    finally:
        classifier.train(was_training)
    return torch.cat(indices).numpy(), torch.cat(labels).numpy(), torch.cat(probs).numpy()

