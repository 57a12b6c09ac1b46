"""make_loader / EpochLoader: batch format, exact-resume determinism, sharding, bad images."""

import logging

import numpy as np
import pytest
import torch

from sslkit.data import ArrayImage, ArrayStore, DatasetSplits, FileImage, LesionMask, Record, make_loader, open_dataset
from sslkit.errors import UserError


@pytest.fixture(scope="module")
def tiny():
    """40 small grey images with lesion masks in memory, 2 classes."""
    rng = np.random.default_rng(0)
    store = ArrayStore("tiny.npz", {
        "images": rng.integers(0, 255, (40, 24, 24), dtype=np.uint8),
        "masks": (rng.random((40, 24, 24)) > 0.9).astype(np.uint8),
    })
    records = [Record(f"tiny[{i}]", ArrayImage(store, "images", i), label=i % 2,
                      lesion=LesionMask((ArrayImage(store, "masks", i),)) if i % 4 else None)
               for i in range(40)]
    return DatasetSplits("tiny", {"train": records[:30], "val": records[30:35], "test": records[35:]}, ["a", "b"], True)


def collect(loader, epoch, start=0):
    loader.set_epoch(epoch, start)
    return [b for b in loader]


def test_batch_format(tiny):
    loader = make_loader(tiny, ("train",), purpose="pretrain", image_size=16, in_chans=3, batch_size=8)
    batches = collect(loader, 0)
    assert len(loader) == 4 == len(batches)
    b = batches[0]
    assert b["image"].shape == (8, 3, 16, 16) and b["image"].dtype == torch.float32
    assert -1.0 <= b["image"].min() and b["image"].max() <= 1.0
    assert b["label"].dtype == torch.int64 and b["lesion"].shape == (8, 1, 16, 16) and b["lesion"].dtype == torch.bool
    assert torch.equal(b["has_lesion"], b["lesion"].flatten(1).any(1))
    assert sorted(torch.cat([x["index"] for x in batches]).tolist()) == list(range(30))
    for x in batches:  # the label travels with its sample
        assert torch.equal(x["label"], x["index"] % 2)
        assert not x["lesion"][x["index"] % 4 == 0].any()  # no mask -> all False


def test_epochs_differ_and_resume_is_exact(tiny):
    loader = make_loader(tiny, ("train", "val"), batch_size=6, seed=4)
    e1, e1_again, e2 = collect(loader, 1), collect(loader, 1), collect(loader, 2)
    assert all(torch.equal(a["image"], b["image"]) for a, b in zip(e1, e1_again))
    assert not torch.equal(e1[0]["index"], e2[0]["index"])
    resumed = collect(make_loader(tiny, ("train", "val"), batch_size=6, seed=4), 1, start=3)
    assert len(resumed) == len(e1) - 3
    assert all(torch.equal(a["image"], b["image"]) and torch.equal(a["index"], b["index"]) for a, b in zip(e1[3:], resumed))


def test_workers_give_the_same_batches(tiny):
    plain = collect(make_loader(tiny, batch_size=7, seed=2), 5)
    loader = make_loader(tiny, batch_size=7, seed=2, workers=2)
    try:
        parallel = collect(loader, 5)
        again = collect(loader, 5, start=2)  # persistent workers, new epoch state
    finally:
        loader.close()
    assert len(plain) == len(parallel)
    assert all(torch.equal(a["image"], b["image"]) and torch.equal(a["lesion"], b["lesion"]) for a, b in zip(plain, parallel))
    assert all(torch.equal(a["image"], b["image"]) for a, b in zip(plain[2:], again))


def test_shards_partition_each_epoch(tiny):
    shards = [make_loader(tiny, batch_size=4, rank=r, world_size=3, seed=1) for r in range(3)]
    seen = [torch.cat([b["index"] for b in collect(s, 0)]).tolist() for s in shards]
    assert all(len(s) == 10 for s in seen) and sorted(sum(seen, [])) == list(range(30))
    assert all(len(s) == 3 for s in shards)
    dropped = make_loader(tiny, batch_size=4, drop_last=True)
    assert len(dropped) == 7 == len(collect(dropped, 0))
    with pytest.raises(UserError):
        make_loader(tiny, rank=3, world_size=3)


def test_eval_is_deterministic_and_unshuffled(tiny):
    loader = make_loader(tiny, ("test",), purpose="eval", shuffle=False, batch_size=5, image_size=24)
    a, b = collect(loader, 0), collect(loader, 9)
    assert torch.equal(a[0]["image"], b[0]["image"]) and a[0]["index"].tolist() == list(range(5))
    raw = tiny.splits["test"][0].load_image().astype(np.float32) / 127.5 - 1
    assert np.allclose(a[0]["image"][0, 0].numpy(), raw, atol=1e-5)  # same size: untouched pixels


def test_records_override_and_errors(tiny):
    subset = tiny.splits["train"][:5]
    batches = collect(make_loader(tiny, records=subset, purpose="finetune", batch_size=10), 0)
    assert sorted(batches[0]["index"].tolist()) == list(range(5))
    with pytest.raises(UserError, match="no split"):
        make_loader(tiny, ("training",))
    with pytest.raises(UserError, match="purpose"):
        make_loader(tiny, purpose="train")


def test_embedded_loader_runs():
    ds = open_dataset(None)
    loader = make_loader(ds, ("val",), purpose="eval", batch_size=32, shuffle=False)
    batch = next(iter(loader))
    assert batch["image"].shape == (32, 1, 64, 64) and batch["has_lesion"].any()


def _broken_dataset(tmp_path, on_bad_image):
    """Two good PNGs and one whose header and end are intact but whose data is garbage:
    it passes the cheap open-time check and fails only when decoded."""
    import cv2

    good = np.full((20, 20), 128, np.uint8)
    paths = []
    for name in ("a.png", "b.png", "c.png"):
        cv2.imwrite(str(tmp_path / name), good)
        paths.append(tmp_path / name)
    data = bytearray(paths[1].read_bytes())
    data[40:-20] = b"\x00" * (len(data) - 60)
    paths[1].write_bytes(bytes(data))
    records = [Record(str(p), FileImage(str(p)), label=0) for p in paths]
    return DatasetSplits("broken", {"train": records, "val": [], "test": []}, ["x"], on_bad_image=on_bad_image)


def test_bad_image_at_load_time_skip(tmp_path, caplog):
    ds = _broken_dataset(tmp_path, "skip")
    loader = make_loader(ds, batch_size=3, image_size=16)
    with caplog.at_level(logging.WARNING, logger="sslkit.data"):
        batches = collect(loader, 0)
    assert sum(len(b["index"]) for b in batches) == 2
    assert [f for f, _ in loader.skipped] == [str(tmp_path / "b.png")]
    assert "b.png" in caplog.text


def test_bad_image_at_load_time_error_in_worker(tmp_path):
    ds = _broken_dataset(tmp_path, "error")
    loader = make_loader(ds, batch_size=1, image_size=16, workers=1)
    try:
        with pytest.raises(UserError, match="b.png"):
            collect(loader, 0)
    finally:
        loader.close()
