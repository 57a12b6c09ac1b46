"""Dataset adapter ``folder``: image files under a directory (png, jpg, tif, bmp; 8/16-bit;
grey, RGB, RGBA). Class sub-folders give labels; images directly in the folder mean unlabelled
data found recursively; ``train/``, ``val/``, ``test/`` folders at the top are used as splits.

Lesion masks named like BUSI's (``case_mask.png``, ``case_mask_1.png`` beside ``case.png``) are
taken as the lesion masks of their image, never as images of their own (``masks=auto``, the
default); ``masks=none`` treats every file as an image.
"""

from __future__ import annotations

from sslkit.data.folders import open_image_tree
from sslkit.errors import UserError
from sslkit.hookspecs import hookimpl

#: "case_mask", "case_mask_1" -> image stem "case" (the BUSI convention)
MASK_REGEX = r"^(?P<image>.+?)_mask(_\d+)?$"
MASK_MODES = ("auto", "none")


def open_folder(location: str, *, labels: str = "auto", groups: str = "none", masks: str = "auto",
                val_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0):
    if masks not in MASK_MODES:
        raise UserError(f"folder data option masks must be one of {', '.join(MASK_MODES)}, got '{masks}'")
    return open_image_tree(location, labels=labels, groups=None if groups == "none" else groups,
                           mask_regex=MASK_REGEX if masks == "auto" else None,
                           val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)


@hookimpl
def register_datasets(register):
    register(
        "folder",
        open_folder,
        "Image files under a folder; class sub-folders are labels, train/val/test folders are splits.",
        options={
            "labels": "auto | folders | none (none: every image found recursively, unlabelled)",
            "groups": "none | parent (each file's folder is its patient, kept within one split)",
            "masks": "auto | none (auto: NAME_mask.png / NAME_mask_N.png are lesion masks of NAME.png, not images)",
        },
    )
