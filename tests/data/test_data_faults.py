"""Data faults: BUSI-style lesion masks are never counted as images by the folder adapter, and
with several processes a batch share with no readable image stops every process in one sentence
(one process cannot skip a step the others take; they would wait for it forever)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sslkit.data import make_loader, open_dataset
from sslkit.errors import UserError


def _png(path, value: int = 120, size: int = 24) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.full((size, size), value, np.uint8)
    image[4:10, 4:10] = 255
    cv2.imwrite(str(path), image)


def _busi_like(root):
    """benign/ and normal/ with case.png, case_mask.png and a second mask case_mask_1.png."""
    for cls in ("benign", "normal"):
        for i in range(5):
            _png(root / cls / f"{cls} ({i}).png", 60 + i)
            _png(root / cls / f"{cls} ({i})_mask.png", 0 if cls == "normal" else 255)
        _png(root / cls / f"{cls} (0)_mask_1.png", 255)
    return root


@pytest.mark.parametrize("labels", ["none", "folders", "auto"])
def test_folder_adapter_pairs_mask_files_instead_of_counting_them(tmp_path, labels):
    root = _busi_like(tmp_path / "busi")
    ds = open_dataset(f"folder:{root}?labels={labels}")
    records = ds.records("train", "val", "test")
    assert len(records) == 10  # 22 files: 10 images, 12 masks
    assert not any("_mask" in Path(r.source).name for r in records)
    assert ds.has_lesion_masks
    with_mask = [r for r in records if r.lesion is not None]
    assert len(with_mask) == 10


def test_folder_adapter_masks_none_keeps_every_file(tmp_path):
    root = _busi_like(tmp_path / "busi")
    ds = open_dataset(f"folder:{root}?labels=none&masks=none")
    assert len(ds.records("train", "val", "test")) == 22
    with pytest.raises(UserError, match="masks must be one of auto, none"):
        open_dataset(f"folder:{root}?masks=maybe")


def _corrupt(path) -> None:
    data = bytearray(path.read_bytes())
    start = data.find(b"IDAT") + 10
    for k in range(start, start + 8):
        data[k] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_process_whose_batch_share_is_all_unreadable_stops_with_one_sentence(tmp_path):
    root = tmp_path / "imgs"
    for i in range(8):
        _png(root / f"{i}.png", 40 + 10 * i)
    ds = open_dataset(f"folder:{root}?labels=none", seed=0)
    records = ds.records("train", "val", "test")
    shards = []
    for rank in range(2):
        loader = make_loader(ds, records=records, image_size=16, batch_size=2, shuffle=False, rank=rank, world_size=2)
        shards.append(loader.batch_indices(0))
    # both images of rank 1's first batch share become unreadable; rank 0's stay fine
    for index in shards[1][0]:
        _corrupt(Path(records[index].source))
    fine = make_loader(ds, records=records, image_size=16, batch_size=2, shuffle=False, rank=0, world_size=2)
    assert len(next(iter(fine))["index"]) == 2
    broken = make_loader(ds, records=records, image_size=16, batch_size=2, shuffle=False, rank=1, world_size=2)
    with pytest.raises(UserError) as info:
        next(iter(broken))
    assert info.value.message.startswith("every image of this process's share of batch 1 failed to decode")
    assert "a step cannot be skipped by one of them alone" in info.value.message


def test_one_process_skips_an_unreadable_batch_and_goes_on(tmp_path):
    root = tmp_path / "imgs"
    for i in range(4):
        _png(root / f"{i}.png", 40 + 10 * i)
    ds = open_dataset(f"folder:{root}?labels=none", seed=0)
    records = ds.records("train", "val", "test")
    loader = make_loader(ds, records=records, image_size=16, batch_size=2, shuffle=False)
    for index in loader.batch_indices(0)[0]:
        _corrupt(Path(records[index].source))
    batches = list(loader)
    assert [len(b["index"]) for b in batches] == [2]
    assert len(loader.skipped) == 2
