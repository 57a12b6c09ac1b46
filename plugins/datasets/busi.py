"""Dataset adapter ``busi``: the original ``Dataset_BUSI_with_GT`` layout.

Class folders ``benign/``, ``malignant/``, ``normal/``; ``benign (3)_mask.png`` (and
``_mask_1.png`` for a second lesion) are the lesion masks of ``benign (3).png``, merged with OR.
Citation: Al-Dhabyani et al., Data in Brief 28 (2020) 104863.
"""

from __future__ import annotations

from sslkit.data.folders import open_image_tree
from sslkit.hookspecs import hookimpl

#: "benign (3)_mask", "benign (3)_mask_1" -> image stem "benign (3)"
BUSI_MASK = r"^(?P<image>.+?)_mask(_\d+)?$"


def open_busi(location: str, *, val_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0):
    return open_image_tree(location, name="busi", labels="folders", mask_regex=BUSI_MASK, extensions=(".png",),
                           val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)


@hookimpl
def register_datasets(register):
    register(
        "busi",
        open_busi,
        "Breast ultrasound, Dataset_BUSI_with_GT layout: class folders, *_mask*.png lesion masks.",
    )
