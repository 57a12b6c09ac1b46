"""Downstream classifiers: an encoder, a head, and the protocol that says what trains.

Protocols:

- ``linear``: frozen encoder, one linear layer on the globally pooled deepest features.
- ``paper``: frozen encoder, the authors' head: conv3x3 (C -> 32), global average pool,
  MLP 32 -> 16 -> classes with ReLU and dropout 0.3.
- ``full``: the whole network trains (encoder at a lower learning rate), linear head.

"Frozen" means more than ``requires_grad=False``: the encoder also stays in eval mode whatever
``.train()`` is called with, so BatchNorm neither uses batch statistics nor updates its running
statistics (the authors' code left them in training mode, silently changing the "frozen"
encoder). A saved classifier is a directory: the encoder (``sslkit.models.save_encoder``
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
from sslkit.fileio import atomic_write_path, atomic_write_text

PROTOCOLS = ("linear", "paper", "full")
FROZEN_PROTOCOLS = ("linear", "paper")
CLASSIFIER_JSON = "classifier.json"
HEAD_FILE = "head.safetensors"
ENCODER_SUBDIR = "encoder"


class LinearHead(nn.Module):
    """Global average pool of the deepest map, then one linear layer."""

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(features.mean(dim=(2, 3)))


class PaperHead(nn.Module):
    """The authors' downstream head: conv3x3 -> ReLU -> GAP -> 32-16 MLP (ReLU, dropout) -> classes."""

    def __init__(self, in_channels: int, num_classes: int, *, conv_channels: int = 32,
                 hidden: int = 16, dropout: float = 0.3):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, conv_channels, kernel_size=3, padding=1)
        self.mlp = nn.Sequential(
            nn.Linear(conv_channels, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv(features)).mean(dim=(2, 3))
        return self.mlp(x)


def build_head(protocol: str, in_channels: int, num_classes: int) -> nn.Module:
    if protocol not in PROTOCOLS:
        raise UserError(f"unknown protocol '{protocol}'; known: {', '.join(PROTOCOLS)}")
    if protocol == "paper":
        return PaperHead(in_channels, num_classes)
    return LinearHead(in_channels, num_classes)


class Classifier(nn.Module):
    """encoder -> deepest feature map -> head -> logits; the encoder frozen for linear/paper."""

    def __init__(self, encoder: nn.Module, head: nn.Module, protocol: str):
        super().__init__()
        if protocol not in PROTOCOLS:
            raise UserError(f"unknown protocol '{protocol}'; known: {', '.join(PROTOCOLS)}")
        self.encoder = encoder
        self.head = head
        self.protocol = protocol
        if self.frozen:
            self.encoder.requires_grad_(False)
            self.encoder.eval()

    @property
    def frozen(self) -> bool:
        return self.protocol in FROZEN_PROTOCOLS

    def train(self, mode: bool = True) -> "Classifier":
        super().train(mode)
        if self.frozen:
            self.encoder.eval()  # BatchNorm running statistics stay exactly as pretrained
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.frozen:
            with torch.no_grad():
                features = self.encoder(images)[-1]
        else:
            features = self.encoder(images)[-1]
        return self.head(features)


def new_classifier(encoder: nn.Module, protocol: str, num_classes: int) -> Classifier:
    """A classifier with a freshly initialised head on ``encoder``'s deepest features."""
    channels = int(encoder.feature_channels[-1])
    return Classifier(encoder, build_head(protocol, channels, num_classes), protocol)


def save_classifier(classifier: Classifier, directory: str | Path, meta: dict[str, Any]) -> Path:
    """Write the classifier directory; ``meta`` (classes, data settings, ...) goes in the JSON."""
    from safetensors.torch import save_file

    from sslkit.models import save_encoder

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_encoder(classifier.encoder, directory / ENCODER_SUBDIR)
    head_state = {k: v.detach().cpu().contiguous() for k, v in classifier.head.state_dict().items()}
    atomic_write_path(directory / HEAD_FILE, lambda tmp: save_file(head_state, tmp))
    info = {
        "format": "sslkit-classifier/1",
        "protocol": classifier.protocol,
        "head": type(classifier.head).__name__,
        "head_in_channels": int(classifier.encoder.feature_channels[-1]),
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
    from safetensors.torch import load_file

    from sslkit.models import load_encoder

    directory = find_classifier_dir(path)
    try:
        info = json.loads((directory / CLASSIFIER_JSON).read_text())
        protocol = info["protocol"]
        num_classes = len(info["class_names"])
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise UserError(f"'{directory / CLASSIFIER_JSON}' is not a valid sslkit classifier file ({error})") from None
    encoder = load_encoder(directory / ENCODER_SUBDIR, plugins=plugins)
    classifier = new_classifier(encoder, protocol, num_classes)
    try:
        classifier.head.load_state_dict(load_file(str(directory / HEAD_FILE)))
    except Exception as error:  # missing, corrupt or mismatched file
        raise UserError(f"cannot load classifier head '{directory / HEAD_FILE}': {error}") from None
    classifier.eval()
    return classifier, info


@torch.no_grad()
def predict(classifier: Classifier, loader, device: torch.device | str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """(labels (N,), class probabilities (N, K)) over ``loader`` in eval mode.

    The one forward pass behind every reported figure (finetune's final scores and
    ``sslkit evaluate``), so both give identical numbers.
    """
    was_training = classifier.training
    classifier.eval()
    labels, probs = [], []
    try:
        for batch in loader:
            logits = classifier(batch["image"].to(device))
            probs.append(torch.softmax(logits.float(), dim=1).cpu())
            labels.append(batch["label"].cpu())
    finally:
        classifier.train(was_training)
    return torch.cat(labels).numpy(), torch.cat(probs).numpy()


def evaluate_loader(classifier: Classifier, loader, device, class_names: list[str]):
    """:class:`~sslkit.evaluation.metrics.Metrics` of ``classifier`` over ``loader``."""
    from sslkit.evaluation.metrics import classification_metrics

    labels, probs = predict(classifier, loader, device)
    return classification_metrics(labels, probs, class_names)
