"""Dataset adapter ``npz``: arrays in one ``.npz`` file (the format of the shipped BUSI arrays).

Keys per split: ``{split}_images`` (N x H x W [x C]), ``{split}_labels``, optional
``{split}_masks`` (lesion masks), ``{split}_files``; ``classes`` holds the class names. A file
with plain ``images``/``labels`` keys is split with seeded stratified splits.
"""

from __future__ import annotations

from sslkit.data.arrays import open_npz
from sslkit.hookspecs import hookimpl


def open_npz_dataset(location: str, *, label_key: str = "labels", val_fraction: float = 0.1,
                     test_fraction: float = 0.2, seed: int = 0):
    return open_npz(location, label_key=label_key, val_fraction=val_fraction,
                    test_fraction=test_fraction, seed=seed)


@hookimpl
def register_datasets(register):
    register(
        "npz",
        open_npz_dataset,
        "Arrays in a .npz file: {split}_images/_labels/_masks/_files and classes (e.g. busi_128.npz).",
        options={"label_key": "which label array to use per split, e.g. breastmnist_labels"},
    )
