"""Dataset adapter ``nifti``: NIfTI volumes (.nii, .nii.gz) cut into 2-D slices.

Needs the optional extra: ``pip install 'sslkit[nifti]'`` (nibabel). ``x_mask.nii.gz`` /
``x_seg.nii.gz`` beside ``x.nii.gz`` are lesion masks; labels come from class sub-folders, or
from the masks (``label_from=mask``: 1 when the slice's mask is not empty). Each volume is a
group, so its slices stay in one split.
"""

from __future__ import annotations

from sslkit.data.folders import open_image_tree
from sslkit.data.volumes import NIFTI_EXTENSIONS, check_nonempty, nifti_expander, require
from sslkit.errors import UserError
from sslkit.hookspecs import hookimpl

NIFTI_MASK = r"^(?P<image>.+?)_(mask|seg)$"


def open_nifti(location: str, *, axis: int = 2, label_from: str = "folders", val_fraction: float = 0.1,
               test_fraction: float = 0.2, seed: int = 0):
    require("nibabel")
    if label_from not in ("folders", "mask", "none"):
        raise UserError(f"label_from must be folders, mask or none, got '{label_from}'")
    return open_image_tree(location, labels="auto" if label_from == "folders" else "none", mask_regex=NIFTI_MASK,
                           label_from_mask=label_from == "mask", extensions=NIFTI_EXTENSIONS,
                           expand=nifti_expander(int(axis)), check=check_nonempty, val_fraction=val_fraction,
                           test_fraction=test_fraction, seed=seed)


@hookimpl
def register_datasets(register):
    register(
        "nifti",
        open_nifti,
        "NIfTI volumes (.nii/.nii.gz) as 2-D slices, *_mask/*_seg lesion masks; needs the nifti extra (nibabel).",
        options={"axis": "slicing axis (0, 1 or 2)", "label_from": "folders | mask | none"},
    )
