"""How long do Dice, IoU and HD95 take on a test set of 64 px lesion masks?

Takes ``--images`` (default 200) lesion masks of the embedded 64 px BUSI set as the truth
(its "normal" images have empty masks, so both empty-mask conventions are exercised) and makes
a "prediction" from each by shifting it a few pixels and growing or shrinking it by one pixel,
then times :func:`sslkit.evaluation.segmentation_metrics.dice_iou` and
:func:`~sslkit.evaluation.segmentation_metrics.hd95` (median of ``--repeats`` runs after one
warm-up) and prints the summary figures.

    python benchmarks/bench_segmentation_metrics.py              # 200 images
    python benchmarks/bench_segmentation_metrics.py --images 780 --repeats 5
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import ndimage

from sslkit.data import open_dataset
from sslkit.evaluation.segmentation_metrics import dice_iou, hd95, summarise


def masks(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    records = open_dataset(None).records()
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(records), size=n, replace=n > len(records))
    truth = np.stack([records[i].load_lesion() for i in pick]).astype(bool)
    shifts = rng.integers(-3, 4, size=(n, 2))
    pred = np.stack([np.roll(m, tuple(s), axis=(0, 1)) for m, s in zip(truth, shifts)])
    grow = rng.random(n) < 0.5
    cross = ndimage.generate_binary_structure(2, 1)[None]
    pred[grow] = ndimage.binary_dilation(pred[grow], structure=cross)
    pred[~grow] = ndimage.binary_erosion(pred[~grow], structure=cross)
    return pred, truth


def timed(repeats: int, call) -> tuple[float, object]:
    result = call()
    times = []
    for _ in range(repeats):
        tick = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - tick)
    return float(np.median(times)), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    pred, truth = masks(args.images)
    t_overlap, (dice, iou) = timed(args.repeats, lambda: dice_iou(pred, truth))
    t_hd, distances = timed(args.repeats, lambda: hd95(pred, truth))
    summary = summarise({"dice": dice, "iou": iou, "hd95": distances})
    size = "x".join(map(str, truth.shape[1:]))
    print(f"{args.images} masks of {size} px ({int((~truth.any(axis=(1, 2))).sum())} empty truths)")
    print(f"dice+iou: {1000 * t_overlap:.2f} ms   hd95: {1000 * t_hd:.1f} ms "
          f"({1e6 * t_hd / args.images:.0f} us per image), median of {args.repeats}")
    print(f"mean Dice {summary['dice']:.3f}  IoU {summary['iou']:.3f}  HD95 {summary['hd95']:.2f} px "
          f"({summary['hd95_nan']:.0f} undefined)")


if __name__ == "__main__":
    main()
