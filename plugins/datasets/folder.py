"""Dataset adapter ``folder``: image files under a directory (png, jpg, tif, bmp; 8/16-bit;
grey, RGB, RGBA). Class sub-folders give labels; images directly in the folder mean unlabelled
data found recursively; ``train/``, ``val/``, ``test/`` folders at the top are used as splits.
"""

from __future__ import annotations

from sslkit.data.folders import open_image_tree
from sslkit.hookspecs import hookimpl


def open_folder(location: str, *, labels: str = "auto", groups: str = "none", val_fraction: float = 0.1,
                test_fraction: float = 0.2, seed: int = 0):
    return open_image_tree(location, labels=labels, groups=None if groups == "none" else groups,
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
        },
    )
