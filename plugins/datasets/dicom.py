"""Dataset adapter ``dicom``: DICOM files (.dcm) under a folder, one 2-D image per frame.

Needs the optional extra: ``pip install 'sslkit[dicom]'`` (pydicom). Class sub-folders are
labels as in ``folder``; the PatientID keeps each patient within one split.
"""

from __future__ import annotations

from sslkit.data.folders import open_image_tree
from sslkit.data.volumes import DICOM_EXTENSIONS, check_nonempty, expand_dicom, require
from sslkit.hookspecs import hookimpl


def open_dicom(location: str, *, labels: str = "auto", val_fraction: float = 0.1, test_fraction: float = 0.2,
               seed: int = 0):
    require("pydicom")
    return open_image_tree(location, labels=labels, extensions=DICOM_EXTENSIONS, expand=expand_dicom,
                           check=check_nonempty, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)


@hookimpl
def register_datasets(register):
    register(
        "dicom",
        open_dicom,
        "DICOM files (.dcm) under a folder, one image per frame; needs the dicom extra (pydicom).",
        options={"labels": "auto | folders | none, as for 'folder'"},
    )
