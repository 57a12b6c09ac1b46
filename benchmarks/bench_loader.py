"""Images per second of sslkit's loading + augmentation pipeline, per worker, beside a plain
PIL + torchvision-transforms pipeline doing the same work, measured in the same run.

The work, for each image of a BUSI-style folder (RGB PNGs of ~500 x 600 px and their lesion
mask PNGs): decode image and mask, convert to 1 channel, random resized crop (70-100 % of the
area) to 64 x 64 with antialiasing, horizontal flip, brightness/contrast jitter, normalise to
[-1, 1], batch. Both run in one process with one thread (what one DataLoader worker gets).

Three figures: "cold" decodes every file in both pipelines (the first epoch; the like-for-like
comparison, bounded by PNG decoding, which both do with libpng + zlib); "warm" is a later epoch,
when sslkit's loader serves decoded, pre-shrunk images from its per-process cache; the
"N-epoch run" is a fresh loader over N epochs, which is what training sees.

    python benchmarks/bench_loader.py [--data DIR] [--epochs 5] [--copies 2]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "busi" / "raw_sample"
SIZE = 64


def make_copies(source: Path, copies: int) -> Path:
    """A BUSI-layout folder with ``copies`` copies of every file (more images to time)."""
    target = Path(tempfile.mkdtemp(prefix="sslkit_bench_"))
    for class_dir in sorted(p for p in source.iterdir() if p.is_dir()):
        out = target / class_dir.name
        out.mkdir()
        for file in sorted(class_dir.glob("*.png")):
            for k in range(copies):
                stem, rest = file.name.split(")", 1)
                shutil.copyfile(file, out / f"{stem}{k:02d}){rest}")
    return target


def baseline_batches(records, epochs: int, batch_size: int):
    """Plain PIL + torchvision.transforms.v2, image and mask transformed together."""
    from PIL import Image
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    pipeline = v2.Compose([
        v2.RandomResizedCrop(SIZE, scale=(0.7, 1.0), ratio=(0.85, 1.18), antialias=True),
        v2.RandomHorizontalFlip(),
        v2.RandomApply([v2.ColorJitter(brightness=0.1, contrast=0.1)], p=0.5),
        v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True),
        v2.Normalize([0.5], [0.5]),
    ])
    count = 0
    for _ in range(epochs):
        order = torch.randperm(len(records)).tolist()
        for start in range(0, len(order), batch_size):
            images, masks = [], []
            for i in order[start:start + batch_size]:
                record = records[i]
                image = v2.functional.pil_to_tensor(Image.open(record.image.path).convert("L"))
                mask = np.zeros(image.shape[1:], bool)
                for part in record.lesion.parts if record.lesion is not None else ():
                    mask |= np.asarray(Image.open(part.path).convert("L")) > 0
                out_image, out_mask = pipeline(tv_tensors.Image(image), tv_tensors.Mask(torch.from_numpy(mask)[None]))
                images.append(out_image)
                masks.append(out_mask)
            batch = torch.stack(images), torch.stack(masks)
            count += len(batch[0])
    return count


def sslkit_batches(loader, epochs: int, first_epoch: int = 0):
    count = 0
    for epoch in range(first_epoch, first_epoch + epochs):
        loader.set_epoch(epoch)
        for batch in loader:
            count += len(batch["index"])
    return count


def timed(fn) -> tuple[float, int]:
    start = time.perf_counter()
    n = fn()
    return time.perf_counter() - start, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="BUSI-layout folder (raw_sample)")
    parser.add_argument("--copies", type=int, default=2, help="copies of each file, for a longer run")
    parser.add_argument("--epochs", type=int, default=5, help="epochs of the training-run comparison")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per pipeline (median reported)")
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    import cv2

    from sslkit.data import make_loader, open_dataset

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    folder = make_copies(args.data.resolve(), args.copies)
    try:
        ds = open_dataset(f"busi:{folder}", test_fraction=0.0, val_fraction=0.0)
        records = ds.splits["train"]
        print(f"{len(records)} images + lesion masks ({args.copies} copies of {args.data}), batch "
              f"{args.batch_size}, 64 px, 1 process with 1 thread (= one worker), median of {args.repeats} runs")

        def loader(cache_mb):
            return make_loader(ds, purpose="pretrain", image_size=SIZE, in_chans=1,
                               batch_size=args.batch_size, cache_mb=cache_mb)

        sslkit_batches(loader(0), 1)  # warm-up: imports, first-call costs
        baseline_batches(records, 1, args.batch_size)
        base, cold, warm, run, base_run = [], [], [], [], []
        for _ in range(args.repeats):
            t, n = timed(lambda: baseline_batches(records, 1, args.batch_size))
            base.append(n / t)
            t, n = timed(lambda: sslkit_batches(loader(0), 1))
            cold.append(n / t)
            cached = loader(512)
            sslkit_batches(cached, 1)
            t, n = timed(lambda: sslkit_batches(cached, 1, first_epoch=1))
            warm.append(n / t)
            t, n = timed(lambda: sslkit_batches(loader(512), args.epochs))
            run.append(n / t)
            t, n = timed(lambda: baseline_batches(records, args.epochs, args.batch_size))
            base_run.append(n / t)
        b, c, w = statistics.median(base), statistics.median(cold), statistics.median(warm)
        r, br = statistics.median(run), statistics.median(base_run)
        print("one epoch, every file decoded (like for like):")
        print(f"  PIL + torchvision.transforms.v2  : {b:8.1f} images/s")
        print(f"  sslkit (cv2 + albumentations)    : {c:8.1f} images/s   ratio {c / b:5.2f}x")
        print("a later epoch (sslkit serves decoded, pre-shrunk images from its cache):")
        print(f"  sslkit                           : {w:8.1f} images/s   ratio {w / b:5.2f}x")
        print(f"a {args.epochs}-epoch run from a fresh loader (what training sees):")
        print(f"  PIL + torchvision.transforms.v2  : {br:8.1f} images/s")
        print(f"  sslkit                           : {r:8.1f} images/s   ratio {r / br:5.2f}x")
        print(f"ratio: {r / br:.2f}x over {args.epochs} epochs, {c / b:.2f}x cold (target 2x)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
