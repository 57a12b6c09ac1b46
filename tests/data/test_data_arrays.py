"""npz / medmnist adapters and the embedded default, on real arrays and small made-up files."""

import numpy as np
import pytest

from sslkit.data import EMBEDDED_DEFAULT, open_dataset
from sslkit.data.arrays import open_npz
from sslkit.errors import UserError


def test_embedded_default_is_busi_64_with_lesions():
    ds = open_dataset(None)
    assert EMBEDDED_DEFAULT.is_file()
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 546, "val": 78, "test": 156}
    assert ds.class_names == ["benign", "malignant", "normal"]
    assert ds.has_lesion_masks and ds.unreadable == []
    record = ds.splits["train"][0]
    assert record.load_image().shape == (64, 64) and record.load_lesion().dtype == bool
    assert record.source.endswith(".png")  # the original BUSI file name


def test_npz_busi_128_splits(shared_data):
    ds = open_dataset(f"npz:{shared_data / 'busi/busi_128.npz'}")
    assert [len(ds.splits[s]) for s in ("train", "val", "test")] == [546, 78, 156]
    assert ds.num_classes == 3
    # normal images have empty masks; benign/malignant ones mostly do not
    normal = [r for r in ds.splits["test"] if r.label == 2]
    assert all(not r.load_lesion().any() for r in normal)


def test_npz_label_key_selects_breastmnist_labels(shared_data):
    ds = open_dataset(f"npz:{shared_data / 'busi/busi_64.npz'}", options={"label_key": "breastmnist_labels"})
    assert ds.class_names == ["0", "1"]
    assert {r.label for r in ds.splits["train"]} == {0, 1}


def test_medmnist_breastmnist_real_file(shared_data):
    ds = open_dataset(f"medmnist:{shared_data / 'busi/breastmnist_28.npz'}")
    assert [len(ds.splits[s]) for s in ("train", "val", "test")] == [546, 78, 156]
    assert ds.class_names == ["malignant", "normal, benign"]
    assert not ds.has_lesion_masks


def test_medmnist_labels_n_by_1_and_rgb(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 12), ("val", 3), ("test", 4)):
        arrays[f"{split}_images"] = rng.integers(0, 255, (n, 28, 28, 3), dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, 9, (n, 1), dtype=np.uint8)
    path = tmp_path / "pathmnist.npz"
    np.savez(path, **arrays)
    ds = open_npz(path, medmnist=True)
    assert len(ds.splits["train"]) == 12 and ds.class_names[0] == "adipose"
    assert ds.splits["val"][0].label == int(arrays["val_labels"][0, 0])


def test_npz_without_splits_is_split_with_groups(tmp_path):
    rng = np.random.default_rng(1)
    n = 40
    np.savez(tmp_path / "plain.npz", images=rng.integers(0, 255, (n, 16, 16), dtype=np.uint8),
             labels=np.arange(n) % 2, groups=np.arange(n) // 4)
    ds = open_npz(tmp_path / "plain.npz", val_fraction=0.2, test_fraction=0.2, seed=3)
    where = {r.group: s for s, rs in ds.splits.items() for r in rs}
    assert sum(len(v) for v in ds.splits.values()) == n
    for split, records in ds.splits.items():
        assert all(where[r.group] == split for r in records)  # no patient in two splits


def test_npz_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        open_dataset(f"npz:{tmp_path / 'missing.npz'}")
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(UserError, match="not a readable .npz"):
        open_npz(tmp_path / "text.npz")
    np.savez(tmp_path / "nokeys.npz", x=np.zeros(3))
    with pytest.raises(UserError, match="train_images"):
        open_npz(tmp_path / "nokeys.npz")
    np.savez(tmp_path / "multi.npz", train_images=np.zeros((4, 8, 8), np.uint8), train_labels=np.zeros((4, 3)))
    with pytest.raises(UserError, match="multi-label"):
        open_npz(tmp_path / "multi.npz", medmnist=True)
