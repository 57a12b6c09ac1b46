"""Shared pieces of the evaluation tests: tiny synthetic data and the tiny-backbone plugins."""

from __future__ import annotations

from pathlib import Path

import numpy as np

TINY_PLUGIN = Path(__file__).with_name("eval_tiny_backbone.py")
CLASSES = ["left", "right", "centre"]
IMAGE_SIZE = 32


def tiny_npz(path: Path, per_split=None, seed: int = 0) -> Path:
    """A 3-class .npz with official splits; each class brightens its own region (learnable)."""
    per_split = per_split or {"train": (15, 9, 6), "val": (3, 3, 3), "test": (4, 3, 3)}
    rng = np.random.default_rng(seed)
    arrays = {"classes": np.array(CLASSES)}
    for split, counts in per_split.items():
        labels = np.concatenate([np.full(n, c) for c, n in enumerate(counts)]).astype(np.uint8)
        images = rng.integers(0, 80, size=(len(labels), IMAGE_SIZE, IMAGE_SIZE)).astype(np.uint8)
        half = IMAGE_SIZE // 2
        for i, label in enumerate(labels):
            region = [np.s_[:, :half], np.s_[:, half:], np.s_[8:24, 8:24]][label]
            images[i][region] += 150
        arrays[f"{split}_images"] = images
        arrays[f"{split}_labels"] = labels
    np.savez(path, **arrays)
    return path


def tiny_plugins():
    """Built-in plugins (for the npz adapter and maskers) plus the tiny backbone."""
    from sslkit.plugins import load_plugins

    return load_plugins([TINY_PLUGIN], include_env=False)


def tiny_encoder_dir(directory: Path, plugins, seed: int = 1) -> Path:
    """An exported tiny encoder whose BatchNorm statistics are not the defaults (as if pretrained)."""
    import torch

    from sslkit.models import build_encoder, save_encoder

    torch.manual_seed(seed)
    encoder = build_encoder("eval-tiny-cnn", in_chans=1, plugins=plugins)
    encoder.train()
    with torch.no_grad():
        for _ in range(3):
            encoder(torch.randn(8, 1, IMAGE_SIZE, IMAGE_SIZE) * 2 + 0.5)
    encoder.eval()
    return save_encoder(encoder, directory)
