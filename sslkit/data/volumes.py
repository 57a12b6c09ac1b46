"""2-D images out of DICOM files and NIfTI volumes (optional extras ``[dicom]``, ``[nifti]``).

A DICOM file gives one image per frame, with the modality rescale applied and MONOCHROME1
inverted; its PatientID is the group. A NIfTI volume gives one image per slice along ``axis``;
the volume is the group (no patient across splits). Volumes are read lazily: opening a dataset
reads headers only, and each process keeps the few most recently used volumes in memory.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sslkit.data.reading import BadImage
from sslkit.errors import UserError, first_line

EXTRAS = {"pydicom": "dicom", "nibabel": "nifti"}
DICOM_EXTENSIONS = (".dcm", ".dicom")
NIFTI_EXTENSIONS = (".nii", ".nii.gz")


def require(module: str):
    """Import an optional dependency, or a UserError naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        extra = EXTRAS.get(module, module)
        raise UserError(
            f"the {extra} adapter needs the optional package '{module}': pip install 'sslkit[{extra}]'"
        ) from None


# -- DICOM ------------------------------------------------------------------------------
@dataclass(frozen=True)
class DicomImage:
    path: str
    frame: int | None = None
    group: str | None = None

    def load(self) -> np.ndarray:
        pydicom = require("pydicom")
        try:
            dataset = pydicom.dcmread(self.path)
            pixels = dataset.pixel_array
        except Exception as error:  # pydicom raises many types for broken or compressed data
            raise BadImage(f"cannot decode DICOM pixels: {first_line(error)}") from None
        if self.frame is not None:
            pixels = pixels[self.frame]
        try:
            from pydicom.pixels import apply_modality_lut
        except ImportError:  # pydicom 2.x
            from pydicom.pixel_data_handlers.util import apply_modality_lut  # type: ignore[no-redef]
        photometric = str(getattr(dataset, "PhotometricInterpretation", "")).upper()
        if photometric.startswith("MONOCHROME"):
            pixels = apply_modality_lut(pixels, dataset).astype(np.float32)
            if photometric == "MONOCHROME1":
                pixels = pixels.max() - pixels
        return pixels

    def describe(self) -> str:
        return self.path if self.frame is None else f"{self.path}[{self.frame}]"


def expand_dicom(path: Path) -> list[DicomImage]:
    """One reference per frame, reading the header only."""
    pydicom = require("pydicom")
    try:
        header = pydicom.dcmread(str(path), stop_before_pixels=True)
    except Exception as error:
        raise BadImage(f"not a readable DICOM file ({type(error).__name__})") from None
    if "PixelData" not in header and not hasattr(header, "Rows"):
        raise BadImage("DICOM file without an image")
    frames = int(getattr(header, "NumberOfFrames", 1) or 1)
    patient = str(getattr(header, "PatientID", "") or "") or None
    if frames == 1:
        return [DicomImage(str(path), None, patient)]
    return [DicomImage(str(path), i, patient) for i in range(frames)]


# -- NIfTI ------------------------------------------------------------------------------
@functools.lru_cache(maxsize=4)
def _volume(path: str) -> np.ndarray:
    nibabel = require("nibabel")
    try:
        data = np.asanyarray(nibabel.load(path).dataobj)
    except Exception as error:
        raise BadImage(f"cannot read NIfTI data: {first_line(error)}") from None
    while data.ndim > 3:  # time series etc.: first volume
        data = data[..., 0]
    return data


@dataclass(frozen=True)
class NiftiSlice:
    path: str
    axis: int
    index: int

    def load(self) -> np.ndarray:
        volume = _volume(self.path)
        if volume.ndim == 2:
            return volume
        return np.take(volume, self.index, axis=self.axis)

    def describe(self) -> str:
        return f"{self.path}[axis {self.axis}, slice {self.index}]"


def nifti_expander(axis: int = 2):
    """A function that gives one :class:`NiftiSlice` per slice of a volume (header read only)."""
    if axis not in (0, 1, 2):
        raise UserError(f"axis must be 0, 1 or 2, got {axis}")

    def expand(path: Path) -> list[NiftiSlice]:
        nibabel = require("nibabel")
        try:
            shape = nibabel.load(str(path)).shape
        except Exception as error:
            raise BadImage(f"not a readable NIfTI file ({type(error).__name__})") from None
        if len(shape) < 2:
            raise BadImage(f"NIfTI data of shape {shape} is not an image")
        if len(shape) == 2:
            return [NiftiSlice(str(path), axis, 0)]
        return [NiftiSlice(str(path), axis, i) for i in range(shape[axis])]

    return expand


def check_nonempty(path: str) -> str | None:
    try:
        return "empty file" if Path(path).stat().st_size == 0 else None
    except OSError as error:
        return f"cannot open: {error.strerror or error}"
