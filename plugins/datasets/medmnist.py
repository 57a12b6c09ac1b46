"""Dataset adapter ``medmnist``: a MedMNIST ``.npz`` file with its own train/val/test splits.

Labels may be shaped N or N x 1; class names come from MedMNIST's tables, chosen by the file
name (``breastmnist_28.npz`` -> BreastMNIST: 0 malignant, 1 normal/benign).
"""

from __future__ import annotations

from sslkit.data.arrays import open_npz
from sslkit.hookspecs import hookimpl


def open_medmnist(location: str, *, val_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0):
    return open_npz(location, medmnist=True, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)


@hookimpl
def register_datasets(register):
    register(
        "medmnist",
        open_medmnist,
        "A MedMNIST .npz file (train/val/test_images and _labels), e.g. breastmnist_28.npz.",
    )
