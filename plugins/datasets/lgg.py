"""Dataset adapter ``lgg``: the kaggle_3m brain MRI layout (LGG segmentation, Buda et al. 2019).

``TCGA_*`` patient folders hold ``*_N.tif`` slices and ``*_N_mask.tif`` FLAIR abnormality
masks. The label is 1 when the slice's mask has any positive pixel; the patient folder is the
group, so no patient is split across train/val/test.
"""

from __future__ import annotations

from sslkit.data.folders import open_image_tree
from sslkit.hookspecs import hookimpl

LGG_MASK = r"^(?P<image>.+)_mask$"


def open_lgg(location: str, *, val_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0):
    return open_image_tree(location, name="lgg", labels="none", mask_regex=LGG_MASK, label_from_mask=True,
                           mask_class_names=("no abnormality", "abnormality"), groups="parent",
                           extensions=(".tif", ".tiff"), val_fraction=val_fraction,
                           test_fraction=test_fraction, seed=seed)


@hookimpl
def register_datasets(register):
    register(
        "lgg",
        open_lgg,
        "Brain MRI, kaggle_3m layout: TCGA_* patient folders, *_mask.tif; label = mask not empty.",
    )
