"""How long does a near-duplicate audit take on 10,000 images?

Builds an in-memory data set of ``--images`` (default 10,000) 64 px images from the embedded BUSI
set: every BUSI image once, then copies that are flipped, shifted by a few pixels, re-contrasted
and noised (so a known share are near-duplicates and the rest are not trivially identical), and
times the two parts of :func:`sslkit.data.duplicates.find_duplicates` separately: the signatures
(downsampling every image) and the similarity search (one blocked matrix product) with grouping.
Prints the times, the pairs and groups found, and images per second.

    python benchmarks/bench_duplicate_audit.py                 # 10,000 images, 1 thread
    python benchmarks/bench_duplicate_audit.py --images 50000 --threads 2
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from sslkit.data import open_dataset
from sslkit.data.duplicates import compute_signatures, find_duplicates
from sslkit.data.records import ArrayImage, ArrayStore, Record


def synthetic_set(n: int, seed: int = 0) -> list[Record]:
    base = np.stack([r.load_image() for r in open_dataset(None).records()]).astype(np.float32)
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(base), n - len(base))
    copies = base[pick]
    flip = rng.random(len(copies)) < 0.5
    copies[flip] = copies[flip, :, ::-1]
    shifts = rng.integers(-3, 4, size=(len(copies), 2))
    copies = np.stack([np.roll(img, tuple(s), axis=(0, 1)) for img, s in zip(copies, shifts)])
    copies = copies * rng.uniform(0.7, 1.3, (len(copies), 1, 1)) + rng.normal(0, 6, copies.shape)
    images = np.concatenate([base, copies]).clip(0, 255).astype(np.uint8)
    store = ArrayStore("synthetic", {"images": images})
    return [Record(f"img{i}", ArrayImage(store, "images", i), 0) for i in range(len(images))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--threshold", type=float, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    records = synthetic_set(args.images)
    tick = time.perf_counter()
    signatures = compute_signatures(records)
    signed = time.perf_counter() - tick
    tick = time.perf_counter()
    found = find_duplicates(records, signatures=signatures, threshold=args.threshold)
    searched = time.perf_counter() - tick
    groups = found.members()
    print(f"{len(records)} images of 64 px, {args.threads} thread(s), threshold {found.threshold}")
    print(f"signatures {signed:.2f} s, similarity search + groups {searched:.2f} s, "
          f"total {signed + searched:.2f} s ({len(records) / (signed + searched):,.0f} images/s)")
    print(f"{len(found.pairs)} pairs, {len(groups)} groups holding {sum(map(len, groups))} images")


if __name__ == "__main__":
    main()
