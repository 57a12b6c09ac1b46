"""Near-duplicate detection, leakage groups, duplicate-aware splits and ``sslkit data audit``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from sslkit.data.duplicates import find_duplicates, leakage_groups, count_test_twins
from sslkit.data.records import ArrayImage, ArrayStore, Record
from sslkit.data.splits import split_records

BUSI_64 = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "busi" / "busi_64.npz"


def records_from(images: np.ndarray, labels=None, groups=None) -> list[Record]:
    store = ArrayStore("mem", {"images": images})
    labels = labels if labels is not None else [0] * len(images)
    groups = groups if groups is not None else [None] * len(images)
    return [Record(f"img{i}", ArrayImage(store, "images", i), int(labels[i]), groups[i]) for i in range(len(images))]


def smooth_images(n: int, seed: int = 0, size: int = 32) -> np.ndarray:
    """Distinct, image-like (smooth) uint8 images: upsampled random 4x4 patterns."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(n, 4, 4)).astype(np.float32)
    return np.kron(coarse, np.ones((size // 4, size // 4), np.float32)).astype(np.uint8)


def test_twins_with_other_brightness_and_noise_are_found_and_others_are_not():
    base = smooth_images(6)
    rng = np.random.default_rng(1)
    twin = np.clip(base[0] * 0.8 + 20 + rng.normal(0, 2, base[0].shape), 0, 255).astype(np.uint8)
    images = np.concatenate([base, twin[None], base[3][None]])  # 6: near twin of 0, 7: exact copy of 3
    found = find_duplicates(records_from(images))
    pairs = {(a, b): exact for a, b, _, exact in found.pairs}
    assert pairs == {(0, 6): False, (3, 7): True}
    assert found.group[0] == found.group[6] and found.group[3] == found.group[7]
    assert len(set(found.group.tolist())) == 6
    assert [sorted(m) for m in found.members()] == [[0, 6], [3, 7]]


def test_the_threshold_is_checked():
    from sslkit.errors import UserError

    with pytest.raises(UserError, match="threshold"):
        find_duplicates(records_from(smooth_images(3)), threshold=1.5)


def test_leakage_groups_join_patients_and_duplicates_transitively():
    images = smooth_images(6)
    images[4] = images[1]  # 4 duplicates 1
    groups = ["p0", "p0", None, "p1", None, None]  # 0 and 1 are one patient
    ids = leakage_groups(records_from(images, groups=groups)).tolist()
    assert ids[0] == ids[1] == ids[4]  # patient edge + duplicate edge
    assert len({ids[0], ids[2], ids[3], ids[5]}) == 4


def test_generated_splits_never_separate_twins():
    images = smooth_images(40, seed=3)
    for i in range(0, 40, 4):
        images[i + 1] = images[i]  # 10 twin pairs
    recs = records_from(images, labels=[i % 2 for i in range(40)])
    for seed in range(5):
        splits = split_records(recs, val_fraction=0.2, test_fraction=0.3, seed=seed)
        where = {r.source: name for name, rs in splits.items() for r in rs}
        assert all(where[f"img{i}"] == where[f"img{i + 1}"] for i in range(0, 40, 4))
        assert count_test_twins(splits) == (0, len(splits["test"]))
    # the same records without grouping duplicates do separate some twins
    loose = [split_records(recs, val_fraction=0.2, test_fraction=0.3, seed=s, group_duplicates=False) for s in range(5)]
    assert any(count_test_twins(s)[0] > 0 for s in loose)


def tiny_dup_npz(path: Path) -> Path:
    images = smooth_images(24, seed=5)
    images[20] = images[0]  # a test image whose twin is in train, with another label
    labels = np.array([i % 2 for i in range(24)], dtype=np.uint8)
    np.savez(path, classes=np.array(["a", "b"]), train_images=images[:16], train_labels=labels[:16],
             val_images=images[16:20], val_labels=labels[16:20], test_images=images[20:], test_labels=labels[20:])
    return path


def test_audit_command_reports_groups_crossings_and_a_sheet(tmp_path):
    from sslkit.cli import cli

    data = tiny_dup_npz(tmp_path / "dup.npz")
    sheet = tmp_path / "sheet.png"
    result = CliRunner().invoke(cli, ["data", "audit", f"npz:{data}", "--json", "--sheet", str(sheet)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["images"] == 24 and report["pairs"] == 1 and report["exact_pairs"] == 1
    assert report["pairs_crossing_splits"] == 1 and report["pairs_test_to_train_or_val"] == 1
    assert report["test_images_with_twin_in_train_or_val"] == 1
    assert report["pairs_with_different_labels"] == 0  # 0 and 20 are both class a
    assert sheet.is_file() and sheet.stat().st_size > 0
    table = CliRunner().invoke(cli, ["data", "audit", f"npz:{data}", "--no-sheet"])
    assert table.exit_code == 0 and "test images with a twin in train/val" in table.output
    bad = CliRunner().invoke(cli, ["data", "audit", f"npz:{data}", "--threshold", "2"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output


def test_resplit_keeps_twins_together_and_inspect_says_how_many_test_images_leak(tmp_path):
    from sslkit.cli import cli
    from sslkit.data import open_dataset

    data = tiny_dup_npz(tmp_path / "dup.npz")
    own = CliRunner().invoke(cli, ["data", "inspect", f"npz:{data}"])
    assert "1 of 4 test images have a near-duplicate in train/val" in " ".join(own.output.split())
    ds = open_dataset(f"npz:{data}", options={"resplit": True}, test_fraction=0.25)
    assert count_test_twins(ds.splits)[0] == 0
    assert any("resplit" in n for n in ds.notes)


@pytest.mark.skipif(not BUSI_64.is_file(), reason=f"real BUSI data not found at {BUSI_64}")
def test_busi_near_duplicates_match_the_published_order_of_magnitude():
    from sslkit.data import open_dataset
    from sslkit.data.audit import audit_dataset

    report = audit_dataset(open_dataset(f"npz:{BUSI_64}"), threshold=0.99, size=16)
    assert (report.pairs, report.images_in_groups, report.crossing_pairs, report.label_pairs) == (180, 273, 97, 9)
    assert report.sweep[0.95] == 244
