"""dicom and nifti adapters (optional extras): real files written here, and the missing-extra
message. The extras' tests skip when pydicom / nibabel are not installed."""

import sys

import numpy as np
import pytest

from sslkit.data import make_loader, open_dataset
from sslkit.errors import UserError


def write_dicom(path, pixels, patient, frames=1):
    pytest.importorskip("pydicom")
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.PatientID = patient
    ds.Rows, ds.Columns = pixels.shape[-2:]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if int(pydicom.__version__.split(".")[0]) >= 3:
        ds.save_as(str(path), enforce_file_format=True)
    else:  # pydicom 2.x (the floor, 2.4) spells the same request write_like_original=False
        ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.save_as(str(path), write_like_original=False)


def test_dicom_frames_labels_and_patients(tmp_path):
    pytest.importorskip("pydicom")
    rng = np.random.default_rng(0)
    for cls in ("ct_a", "ct_b"):
        for p in range(3):
            write_dicom(tmp_path / cls / f"{p}.dcm", rng.integers(0, 4000, (12, 10)), f"{cls}-{p}")
    write_dicom(tmp_path / "ct_a" / "multi.dcm", rng.integers(0, 4000, (3, 12, 10)), "multi", frames=3)
    (tmp_path / "ct_b" / "broken.dcm").write_bytes(b"\x00" * 10)
    ds = open_dataset(f"dicom:{tmp_path}", val_fraction=0.0, test_fraction=0.3)
    assert ds.class_names == ["ct_a", "ct_b"] and len(ds.records()) == 9
    assert [f.endswith("broken.dcm") for f, _ in ds.unreadable] == [True]
    multi = [r for r in ds.records() if r.group == "multi"]
    assert len(multi) == 3 and len({s for s, rs in ds.splits.items() for r in rs if r.group == "multi"}) == 1
    image = multi[1].load_image()
    assert image.shape == (12, 10) and image.min() < 0  # rescale intercept applied
    batch = next(iter(make_loader(ds, purpose="eval", image_size=8, batch_size=9)))
    assert batch["image"].shape[1:] == (1, 8, 8)


def test_nifti_slices_masks_and_labels(tmp_path):
    nibabel = pytest.importorskip("nibabel")
    rng = np.random.default_rng(0)
    for v in range(3):
        volume = rng.normal(size=(16, 16, 5)).astype(np.float32)
        mask = np.zeros((16, 16, 5), np.uint8)
        mask[4:8, 4:8, 2] = 1
        nibabel.Nifti1Image(volume, np.eye(4)).to_filename(str(tmp_path / f"case{v}.nii.gz"))
        nibabel.Nifti1Image(mask, np.eye(4)).to_filename(str(tmp_path / f"case{v}_seg.nii.gz"))
    ds = open_dataset(f"nifti:{tmp_path}?label_from=mask", val_fraction=0.0, test_fraction=0.34)
    records = ds.records()
    assert len(records) == 15 and ds.has_lesion_masks and sum(r.label for r in records) == 3
    assert len({r.group for r in ds.splits["test"]} & {r.group for r in ds.splits["train"]}) == 0
    batch = next(iter(make_loader(ds, ("train", "test"), purpose="eval", image_size=16, batch_size=15, shuffle=False)))
    assert batch["has_lesion"].sum() == 3
    with pytest.raises(UserError, match="axis"):
        open_dataset(f"nifti:{tmp_path}?axis=3")


@pytest.mark.parametrize("adapter,module", [("dicom", "pydicom"), ("nifti", "nibabel")])
def test_missing_extra_names_it(tmp_path, monkeypatch, adapter, module):
    monkeypatch.setitem(sys.modules, module, None)  # import now raises ImportError
    with pytest.raises(UserError, match=rf"pip install 'sslkit\[{adapter}\]'"):
        open_dataset(f"{adapter}:{tmp_path}")
