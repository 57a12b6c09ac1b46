"""Reading and channel/dtype handling, presets, and user pipelines (YAML)."""

import numpy as np
import pytest
import torch

from sslkit.data import ArrayImage, ArrayStore, DatasetSplits, Record, make_loader
from sslkit.data.reading import quick_check, read_image_file, to_channels, to_unit_range
from sslkit.data.transforms import SamplePipeline, build_user_pipeline, preset
from sslkit.errors import UserError


def test_to_unit_range_and_channels():
    sixteen = np.array([[1000, 3000]], np.uint16)
    assert to_unit_range(sixteen).tolist() == [[0.0, 1.0]]  # min-max, not /65535
    assert to_unit_range(np.zeros((2, 2), np.int16)).max() == 0
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 255
    grey = to_channels(rgba, 1)
    assert grey.shape == (4, 4, 1) and 70 < grey[0, 0, 0] < 80  # luminance of pure red
    assert to_channels(np.ones((4, 4), np.uint8), 3).shape == (4, 4, 3)
    with pytest.raises(Exception, match="channels"):
        to_channels(np.ones((4, 4, 3), np.uint8), 2)


def test_reading_formats_and_depths(tmp_path):
    import cv2

    rng = np.random.default_rng(0)
    cases = {
        "g8.png": rng.integers(0, 255, (9, 7), dtype=np.uint8),
        "g16.png": rng.integers(0, 65535, (9, 7), dtype=np.uint16),
        "rgb.jpg": rng.integers(0, 255, (9, 7, 3), dtype=np.uint8),
        "rgba.png": rng.integers(0, 255, (9, 7, 4), dtype=np.uint8),
        "g16.tif": rng.integers(0, 65535, (9, 7), dtype=np.uint16),
        "rgb.bmp": rng.integers(0, 255, (9, 7, 3), dtype=np.uint8),
    }
    for name, array in cases.items():
        assert cv2.imwrite(str(tmp_path / name), array)
        assert quick_check(tmp_path / name) is None, name
        image = read_image_file(tmp_path / name)
        assert image.shape == array.shape and image.dtype == array.dtype, name
    bgr = cases["rgba.png"]
    assert np.array_equal(read_image_file(tmp_path / "rgba.png")[..., 0], bgr[..., 2])  # RGB order
    (tmp_path / "text.png").write_text("hello")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "cut.png").write_bytes((tmp_path / "g8.png").read_bytes()[:60])
    assert "not an image" in quick_check(tmp_path / "text.png")
    assert quick_check(tmp_path / "empty.png") == "empty file"
    assert "truncated PNG" in quick_check(tmp_path / "cut.png")


def _one_image_dataset(image):
    store = ArrayStore("x.npz", {"images": image[None]})
    return DatasetSplits("x", {"train": [Record("x", ArrayImage(store, "images", 0))], "val": [], "test": []})


def test_user_pipeline_from_yaml(tmp_path):
    (tmp_path / "aug.yaml").write_text(
        "- RandomCrop: {height: 20, width: 20}\n- HorizontalFlip: {p: 1.0}\n"
        "- OneOf:\n    transforms:\n      - Blur: {blur_limit: 3}\n      - GaussNoise: {}\n"
    )
    image = np.tile(np.arange(32, dtype=np.uint8) * 8, (32, 1))
    ds = _one_image_dataset(image)
    batch = next(iter(make_loader(ds, transform=tmp_path / "aug.yaml", image_size=16, batch_size=1)))
    assert batch["image"].shape == (1, 1, 16, 16)  # resized after the user's 20 px crop
    assert batch["label"].tolist() == [-1]


def test_user_pipeline_errors(tmp_path):
    with pytest.raises(UserError, match="did you mean 'HorizontalFlip'"):
        build_user_pipeline(["HorizontalFlp"])
    with pytest.raises(UserError, match="Normalize"):
        build_user_pipeline([{"Normalize": {}}])
    with pytest.raises(UserError, match="bad options for 'RandomCrop'"):
        build_user_pipeline([{"RandomCrop": {"height": "tall"}}])
    (tmp_path / "bad.yaml").write_text("- [unclosed\n")
    ds = _one_image_dataset(np.zeros((8, 8), np.uint8))
    with pytest.raises(UserError, match="not valid YAML"):
        make_loader(ds, transform=tmp_path / "bad.yaml")
    with pytest.raises(UserError, match="does not exist"):
        make_loader(ds, transform=tmp_path / "missing.yaml")


def test_albumentations_serialised_pipeline():
    import albumentations as A

    spec = A.to_dict(A.Compose([A.HorizontalFlip(p=1.0)]))
    flipped = build_user_pipeline(spec)(image=np.arange(6, dtype=np.uint8).reshape(1, 6, 1))["image"]
    assert flipped[0, :, 0].tolist() == [5, 4, 3, 2, 1, 0]


def test_sample_pipeline_same_key_same_output_and_prescale():
    image = np.random.default_rng(0).integers(0, 255, (300, 200, 3), dtype=np.uint8)
    pipe = SamplePipeline(preset("pretrain", 32), image_size=32, in_chans=1, seed=0, prescale=64)
    prepared, _ = pipe.prepare(image, None)
    assert prepared.shape == (96, 64, 1)  # shortest side shrunk to 2 x 32
    a, _ = pipe(image, None, epoch=3, index=7)
    b, _ = pipe(image, None, epoch=3, index=7)
    c, _ = pipe(image, None, epoch=4, index=7)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert torch.from_numpy(a).shape == (1, 32, 32)
