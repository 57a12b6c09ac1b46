"""Exact and near-duplicate images: found once, then kept on one side of every split.

Medical data sets are full of near-duplicates (BUSI: the same lesion saved twice, crops and
re-exports of one scan). When two such images land on opposite sides of a train/test split, a
fine-tuned network can score on the test image by remembering its twin, so every figure measured
on that split is inflated. This module finds them, cheaply enough to run on every split sslkit
makes:

* each image becomes a *signature*: grey, area-resized to ``SIGNATURE_SIZE`` x ``SIGNATURE_SIZE``,
  standardised (zero mean, unit norm), so the dot product of two signatures is the Pearson
  correlation of the two downsampled images: robust to brightness/contrast changes, re-encoding,
  small resamplings, and blind to what the image shows;
* two images are *near-duplicates* when that correlation reaches ``threshold`` (default
  :data:`DEFAULT_THRESHOLD`), *exact* duplicates when their pixels are identical (a digest);
* the pairs are joined into groups (connected components, :mod:`scipy.sparse.csgraph`), so a chain
  of near-copies is one group.

The similarity search is one blocked matrix product (torch), so 10,000 images compare in about a
second (``benchmarks/bench_duplicate_audit.py``); reading the images is the rest. Signatures of
file-based data are cached on disk (keyed by each file's path, size and modification time) so
opening the same folder again does not decode it again.

Why 0.95 at 16 x 16 by default, measured on BUSI 64 px (780 images; pairs at a threshold:
0.90 1086, 0.93 300, 0.95 244, 0.97 224, 0.99 180): on contact sheets every pair above 0.97 is
the same scan (a duplicated file, a re-export with a calliper mark or caption, the next frame of
one sweep), about half of the 0.935-0.955 band still shows the same lesion, and below 0.93
different patients' scans join and chain into components of 22 (0.93) and 172 images (0.90),
against at most 7 at 0.95. Erring low is the safe side for evaluation: a twin left apart inflates
test figures, a group joined needlessly only constrains the split a little.
``sslkit data audit`` prints the counts at other thresholds for any data set.
"""

from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

#: Side of the downsampled image whose correlation decides near-duplicates.
SIGNATURE_SIZE = 16
#: Correlation at or above which two signatures are near-duplicates (see the module docstring).
DEFAULT_THRESHOLD = 0.95
#: Rows of the similarity matrix computed at once (memory: BLOCK x N floats).
_BLOCK = 2048
#: The threshold in force (``--data-opt duplicate_threshold=...``, set by ``open_dataset`` while an
#: adapter builds its splits); a context variable, so nested or concurrent opens cannot leak it.
_THRESHOLD: ContextVar[float] = ContextVar("sslkit_duplicate_threshold", default=DEFAULT_THRESHOLD)


@contextmanager
def using_threshold(threshold: float | None):
    """Within the block, duplicate grouping uses ``threshold`` (None: leave it as it is)."""
    if threshold is None:
        yield
        return
    token = _THRESHOLD.set(check_threshold(threshold))
    try:
        yield
    finally:
        _THRESHOLD.reset(token)


def current_threshold() -> float:
    return _THRESHOLD.get()


def check_threshold(value) -> float:
    try:
        threshold = float(value)
    except (TypeError, ValueError):
        threshold = float("nan")
    if not 0.0 < threshold <= 1.0:
        from sslkit.errors import UserError

        raise UserError(f"the duplicate threshold is a correlation in (0, 1], got {value}")
    return threshold


@dataclass
class Signatures:
    """One row per record: ``vectors`` (N, S*S) unit-norm, standardised; ``digests`` exact-pixel
    hashes; ``unreadable`` positions whose image could not be read (never duplicates)."""

    vectors: np.ndarray
    digests: list[str]
    unreadable: list[int] = field(default_factory=list)


def _grey_float(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 3:
        image = image[..., :3].mean(axis=2) if image.shape[2] > 1 else image[..., 0]
    return image.astype(np.float32, copy=False)


def _standardise(small: np.ndarray) -> np.ndarray:
    """(N, S, S) -> (N, S*S) rows of zero mean and unit norm (a constant image stays all zero)."""
    flat = small.reshape(len(small), -1).astype(np.float32)
    flat = flat - flat.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(flat, axis=1, keepdims=True)
    return np.divide(flat, norm, out=np.zeros_like(flat), where=norm > 1e-6)


def _shrink_stack(stack: np.ndarray, size: int) -> np.ndarray:
    """Area-resize a stack (N, H, W[, C]) of same-sized images to (N, size, size), vectorised."""
    import torch
    import torch.nn.functional as F

    grey = stack.astype(np.float32)
    if grey.ndim == 4:
        grey = grey[..., :3].mean(axis=3) if grey.shape[3] > 1 else grey[..., 0]
    pooled = F.adaptive_avg_pool2d(torch.from_numpy(np.ascontiguousarray(grey))[:, None], size)
    return pooled[:, 0].numpy()


def _shrink_one(image: np.ndarray, size: int) -> np.ndarray:
    import cv2

    return cv2.resize(_grey_float(image), (size, size), interpolation=cv2.INTER_AREA)


def _digest(image: np.ndarray) -> str:
    image = np.ascontiguousarray(image)
    return hashlib.blake2b(image.tobytes() + str(image.shape).encode(), digest_size=16).hexdigest()


def compute_signatures(records: Sequence, *, size: int = SIGNATURE_SIZE,
                       progress: Callable[[int, int], None] | None = None) -> Signatures:
    """Signatures of ``records`` (anything with ``.image`` and ``.load_image()``).

    Rows of one in-memory array (``ArrayImage``, e.g. npz data) are shrunk as one stack; other
    images are read one by one (file decoding dominates there) and cached on disk.
    """
    from sslkit.data.reading import BadImage

    n = len(records)
    vectors = np.zeros((n, size * size), dtype=np.float32)
    digests = [""] * n
    unreadable: list[int] = []
    stacks: dict[tuple[int, str], list[int]] = {}
    singles: list[int] = []
    for i, record in enumerate(records):
        ref = record.image
        store = getattr(ref, "store", None)
        if store is not None and hasattr(ref, "key") and hasattr(ref, "index"):
            stacks.setdefault((id(store), ref.key), []).append(i)
        else:
            singles.append(i)
    done = 0
    for positions in stacks.values():
        first = records[positions[0]].image
        array = first.store.arrays[first.key][[records[i].image.index for i in positions]]
        vectors[positions] = _standardise(_shrink_stack(array, size))
        for i, image in zip(positions, array):
            digests[i] = _digest(image)
        done += len(positions)
        if progress is not None:
            progress(done, n)
    cache = _SignatureCache(size) if singles else None
    for i in singles:
        record = records[i]
        if record.image is None:  # nothing to compare (records built without pixels)
            unreadable.append(i)
            continue
        cached = cache.get(record) if cache is not None else None
        if cached is None:
            try:
                image = record.load_image()
            except BadImage:
                unreadable.append(i)
                continue
            cached = (_standardise(_shrink_one(image, size)[None])[0], _digest(image))
            if cache is not None:
                cache.put(record, cached)
        vectors[i], digests[i] = cached
        done += 1
        if progress is not None and (done % 64 == 0 or done == n):
            progress(done, n)
    if cache is not None:
        cache.save()
    return Signatures(vectors, digests, unreadable)


class _SignatureCache:
    """Signatures of image files, keyed by (absolute path, size, mtime), in one ``.npz`` per
    signature size under ``$SSLKIT_CACHE_DIR`` (default ``~/.cache/sslkit``). Only plain arrays
    and strings are stored and it is read with ``allow_pickle=False``, so a cache file cannot run
    code; a damaged cache is ignored and rewritten."""

    def __init__(self, size: int):
        root = Path(os.environ.get("SSLKIT_CACHE_DIR") or Path.home() / ".cache" / "sslkit").expanduser()
        self.path = root / f"signatures_{size}.npz"
        self.entries: dict[str, tuple[np.ndarray, str]] = {}
        self.changed = False
        try:
            with np.load(self.path, allow_pickle=False) as saved:
                for key, vector, digest in zip(saved["keys"].tolist(), saved["vectors"], saved["digests"].tolist()):
                    self.entries[key] = (vector, digest)
        except (OSError, ValueError, KeyError):
            pass

    @staticmethod
    def _key(record) -> str | None:
        path = getattr(record.image, "path", None)
        if path is None:
            return None
        try:
            stat = os.stat(path)
        except OSError:
            return None
        return f"{os.path.abspath(path)}|{stat.st_size}|{stat.st_mtime_ns}"

    def get(self, record):
        key = self._key(record)
        return None if key is None else self.entries.get(key)

    def put(self, record, value) -> None:
        key = self._key(record)
        if key is not None:
            self.entries[key] = value
            self.changed = True

    def save(self) -> None:
        if not self.changed:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            keys = list(self.entries)
            tmp = self.path.with_name(self.path.name + f".{os.getpid()}.tmp.npz")
            np.savez(tmp, keys=np.array(keys), vectors=np.stack([self.entries[k][0] for k in keys]),
                     digests=np.array([self.entries[k][1] for k in keys]))
            os.replace(tmp, self.path)
        except OSError:
            pass  # a cache that cannot be written only costs time


def similar_pairs(vectors: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, correlation) of every pair i < j whose signatures correlate at ``threshold`` or more.

    Blocked so memory stays at ``_BLOCK`` x N floats whatever N is.
    """
    import torch

    matrix = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))
    n = matrix.shape[0]
    rows, cols, values = [], [], []
    for start in range(0, n, _BLOCK):
        block = matrix[start:start + _BLOCK] @ matrix[start:].T  # only columns >= start: upper triangle
        hit = torch.nonzero(block >= threshold)
        i, j = hit[:, 0] + start, hit[:, 1] + start
        keep = j > i
        rows.append(i[keep].numpy())
        cols.append(j[keep].numpy())
        values.append(block[hit[:, 0], hit[:, 1]][keep].numpy())
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(values)


def exact_pairs(digests: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(i, j) pairs of records with identical pixels (each joined to the first of its digest)."""
    first: dict[str, int] = {}
    rows, cols = [], []
    for i, digest in enumerate(digests):
        if not digest:
            continue
        if digest in first:
            rows.append(first[digest])
            cols.append(i)
        else:
            first[digest] = i
    return np.array(rows, dtype=np.int64), np.array(cols, dtype=np.int64)


def components(n: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Component id per node of the undirected graph with edges (rows, cols): ids 0..C-1."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n, n))
    return connected_components(graph, directed=False)[1].astype(np.int64)


@dataclass
class DuplicateGroups:
    """Near-duplicate structure of a list of records.

    ``group`` gives each record a group id (records without a twin are groups of one); the pairs
    are those found (exact pairs have correlation 1.0 and ``exact`` True).
    """

    group: np.ndarray
    pairs: list[tuple[int, int, float, bool]]
    threshold: float
    unreadable: list[int] = field(default_factory=list)

    def members(self) -> list[list[int]]:
        """Groups of two or more records, largest first."""
        by: dict[int, list[int]] = {}
        for i, g in enumerate(self.group.tolist()):
            by.setdefault(g, []).append(i)
        return sorted((m for m in by.values() if len(m) > 1), key=lambda m: (-len(m), m[0]))


def find_duplicates(records: Sequence, *, threshold: float | None = None, size: int = SIGNATURE_SIZE,
                    signatures: Signatures | None = None,
                    progress: Callable[[int, int], None] | None = None) -> DuplicateGroups:
    """Exact and near-duplicate groups of ``records`` (see the module docstring); ``threshold``
    None: the one in force (:func:`using_threshold`, default :data:`DEFAULT_THRESHOLD`)."""
    threshold = current_threshold() if threshold is None else check_threshold(threshold)
    signatures = signatures or compute_signatures(records, size=size, progress=progress)
    i, j, corr = similar_pairs(signatures.vectors, threshold)
    ei, ej = exact_pairs(signatures.digests)
    pairs = {(int(a), int(b)): (float(c), False) for a, b, c in zip(i, j, corr)}
    for a, b in zip(ei.tolist(), ej.tolist()):
        pairs[(a, b)] = (1.0, True)
    rows = np.array([p[0] for p in pairs], dtype=np.int64)
    cols = np.array([p[1] for p in pairs], dtype=np.int64)
    group = components(len(records), rows, cols)
    listed = sorted(((a, b, c, e) for (a, b), (c, e) in pairs.items()), key=lambda p: (-p[2], p[0], p[1]))
    return DuplicateGroups(group, listed, float(threshold), list(signatures.unreadable))


def leakage_groups(records: Sequence, *, threshold: float | None = None,
                   duplicates: DuplicateGroups | None = None) -> np.ndarray:
    """One id per record such that records sharing a patient/volume group *or* a near-duplicate
    group share the id: the unit that must never straddle train and test."""
    duplicates = duplicates or find_duplicates(records, threshold=threshold)
    keys: list[tuple[str, object] | None] = [("patient", str(r.group)) if r.group is not None else None
                                             for r in records]
    keys += [("twins", int(g)) for g in duplicates.group.tolist()]
    # every record is joined to the first record holding the same patient id or duplicate group
    first: dict[tuple, int] = {}
    rows, cols = [], []
    for position, key in enumerate(keys):
        if key is None:
            continue
        i = position % len(records)
        j = first.setdefault(key, i)
        if j != i:
            rows.append(j)
            cols.append(i)
    return components(len(records), np.array(rows, dtype=np.int64), np.array(cols, dtype=np.int64))


def count_test_twins(splits: dict[str, list], *, threshold: float | None = None) -> tuple[int, int]:
    """(test images with a near-duplicate in train or val, test images) for a data set's splits."""
    train_val = list(splits.get("train", [])) + list(splits.get("val", []))
    test = list(splits.get("test", []))
    if not test or not train_val:
        return 0, len(test)
    found = find_duplicates(train_val + test, threshold=threshold)
    inside = set(found.group[: len(train_val)].tolist())
    leaked = sum(1 for g in found.group[len(train_val):].tolist() if g in inside)
    return leaked, len(test)


def leak_sentence(leaked: int, total: int) -> str | None:
    """The one line finetune, compare and ``data inspect`` print about a split's duplicates."""
    if not total:
        return None
    if not leaked:
        return f"no test image has a near-duplicate in train/val ({total} test images checked)"
    return (f"{leaked} of {total} test images have a near-duplicate in train/val, so test figures on these splits "
            "are optimistic; grouped folds (--folds) or --data-opt resplit=true keep twins together")
