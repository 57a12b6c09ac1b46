"""folder, busi and lgg adapters on real BUSI files and small made-up trees."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from sslkit.data import make_loader, open_dataset
from sslkit.data.reading import mask_of
from sslkit.errors import UserError


@pytest.fixture()
def raw_sample(shared_data):
    return shared_data / "busi" / "raw_sample"


def write(path: Path, array: np.ndarray) -> Path:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)
    return path


def test_busi_raw_sample(raw_sample):
    ds = open_dataset(f"busi:{raw_sample}")
    assert ds.class_names == ["benign", "malignant", "normal"]
    totals = {c: sum(ds.counts()[s].get(c, 0) for s in ds.splits) for c in ds.class_names}
    assert totals == {"benign": 8, "malignant": 8, "normal": 8}
    assert ds.has_lesion_masks and not ds.unreadable
    by_name = {Path(r.source).name: r for r in ds.records()}
    two = by_name["benign (100).png"]
    assert len(two.lesion.parts) == 2  # _mask and _mask_1 merged
    parts = [mask_of(p.load()) for p in two.lesion.parts]
    assert np.array_equal(two.load_lesion(), parts[0] | parts[1])
    assert two.load_lesion().sum() > max(p.sum() for p in parts)  # two separate lesions
    assert not by_name["normal (1).png"].load_lesion().any()
    batch = next(iter(make_loader(ds, purpose="eval", image_size=32, batch_size=24, shuffle=False)))
    assert batch["image"].shape == (15, 1, 32, 32) and batch["has_lesion"].sum() == 10


def test_busi_copy_with_broken_files(raw_sample, tmp_path, caplog):
    root = tmp_path / "busi"
    shutil.copytree(raw_sample, root)
    cut = root / "benign" / "benign (1).png"
    cut.write_bytes(cut.read_bytes()[:5000])
    (root / "malignant" / "malignant (999).png").write_text("not an image")
    ds = open_dataset(f"busi:{root}")
    assert sorted(Path(f).name for f, _ in ds.unreadable) == ["benign (1).png", "malignant (999).png"]
    assert sum(len(s) for s in ds.splits.values()) == 23
    assert "benign (1).png" in caplog.text  # skip: named in the log
    with pytest.raises(UserError, match=r"cannot read image '.*(benign \(1\)|malignant \(999\))\.png'"):
        open_dataset(f"busi:{root}", on_bad_image="error")


def test_folder_labelled_mixed_formats_and_sizes(tmp_path):
    rng = np.random.default_rng(0)
    write(tmp_path / "cats" / "a.png", rng.integers(0, 255, (30, 20), dtype=np.uint8))
    write(tmp_path / "cats" / "sub" / "b.tif", rng.integers(0, 65535, (25, 25), dtype=np.uint16))
    write(tmp_path / "dogs" / "c.jpg", rng.integers(0, 255, (40, 50, 3), dtype=np.uint8))
    write(tmp_path / "dogs" / "d.bmp", rng.integers(0, 255, (12, 12, 3), dtype=np.uint8))
    write(tmp_path / "dogs" / "e.png", rng.integers(0, 255, (16, 16, 4), dtype=np.uint8))
    (tmp_path / "empty_class").mkdir()
    ds = open_dataset(f"folder:{tmp_path}", val_fraction=0.0, test_fraction=0.0)
    assert ds.class_names == ["cats", "dogs"] and len(ds.splits["train"]) == 5
    assert any("empty_class" in n for n in ds.notes)
    for chans in (1, 3):
        batch = next(iter(make_loader(ds, image_size=16, in_chans=chans, batch_size=5)))
        assert batch["image"].shape == (5, chans, 16, 16)
        assert torch_finite(batch["image"])


def torch_finite(tensor):
    return bool(tensor.isfinite().all())


def test_folder_unlabelled_recursive_and_split_folders(tmp_path):
    img = np.zeros((8, 8), np.uint8)
    for i in range(6):
        write(tmp_path / "flat" / f"p{i % 2}" / f"{i}.png", img)
    write(tmp_path / "flat" / "top.png", img)
    ds = open_dataset(f"folder:{tmp_path / 'flat'}", test_fraction=0.0, val_fraction=0.0)
    assert ds.class_names is None and len(ds.splits["train"]) == 7
    ds = open_dataset(f"folder:{tmp_path / 'flat'}?labels=none&groups=parent", test_fraction=0.0, val_fraction=0.0)
    assert {r.group for r in ds.records()} == {"p0", "p1", "flat"}
    noise = np.random.default_rng(0)
    for split in ("train", "test"):
        for cls in ("a", "b"):
            for i in range(4):  # distinct images: identical ones would form one duplicate group
                write(tmp_path / "split" / split / cls / f"{i}.png", noise.integers(0, 256, (8, 8), dtype=np.uint8))
    ds = open_dataset(f"folder:{tmp_path / 'split'}", val_fraction=0.25)
    assert len(ds.splits["test"]) == 8 and len(ds.splits["train"]) + len(ds.splits["val"]) == 8
    assert len(ds.splits["val"]) == 2  # carved out of train, stratified


def test_folder_bad_inputs(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no image files"):
        open_dataset(f"folder:{tmp_path / 'empty'}")
    (tmp_path / "only_bad").mkdir()
    (tmp_path / "only_bad" / "x.png").write_text("text")
    with pytest.raises(UserError, match="no readable images"):
        open_dataset(f"folder:{tmp_path / 'only_bad'}")
    with pytest.raises(UserError, match="x.png"):
        open_dataset(f"folder:{tmp_path / 'only_bad'}", on_bad_image="error")
    with pytest.raises(UserError, match="labels must be"):
        open_dataset(f"folder:{tmp_path / 'only_bad'}?labels=maybe")


def test_lgg_layout_labels_from_masks_and_patient_groups(tmp_path):
    rng = np.random.default_rng(0)
    for p in range(6):
        patient = tmp_path / f"TCGA_CS_{p:04d}_19960909"
        for s in range(1, 4):
            write(patient / f"{patient.name}_{s}.tif", rng.integers(0, 255, (16, 16, 3), dtype=np.uint8))
            mask = np.zeros((16, 16), np.uint8)
            if s == 2:
                mask[4:8, 4:8] = 255
            write(patient / f"{patient.name}_{s}_mask.tif", mask)
    (tmp_path / "data.csv").write_text("ignored")
    ds = open_dataset(f"lgg:{tmp_path}", val_fraction=0.2, test_fraction=0.2)
    records = ds.records()
    assert len(records) == 18 and ds.class_names == ["no abnormality", "abnormality"]
    assert sum(r.label for r in records) == 6
    where = {}
    for split, rs in ds.splits.items():
        for r in rs:
            assert where.setdefault(r.group, split) == split
    assert len(where) == 6
