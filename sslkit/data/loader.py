"""``make_loader``: batches whose content is a pure function of (seed, epoch, batch position).

Why not a plain DataLoader with ``shuffle=True``: its order and its workers' random streams
depend on global state and on the number of workers, so a run resumed mid-epoch would see other
data. Here the order of an epoch is a permutation seeded by (seed, epoch), sharded by
rank/world_size like ``DistributedSampler``; each sample's augmentation is seeded by
(seed, epoch, sample index); and each *batch* is one unit of work (the DataLoader's sampler
yields lists of indices and its dataset builds whole batches). ``set_epoch(e, start_batch=k)``
therefore reproduces exactly the batches an uninterrupted run would have seen from batch k on,
with any number of workers.

Images that fail to decode only when loaded (they passed the cheap check at open time) are
handled in the main process: with ``on_bad_image="error"`` a UserError names the file; with
``"skip"`` the sample is dropped from its batch, counted in :attr:`EpochLoader.skipped` and
named once in a log warning. A worker never raises for a bad image. A pass in which every image
fails is a UserError (no run may train on nothing), and so is, with several processes, a batch
share with no readable image (one process cannot skip a step the others take).
"""

from __future__ import annotations

import logging
import signal
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from sslkit.data.records import ArrayImage, DatasetSplits, Record
from sslkit.data.reading import BadImage
from sslkit.data.transforms import SamplePipeline, resolve_transform
from sslkit.defaults import IMAGE_SIZE
from sslkit.errors import UserError
from sslkit.seeding import derive_seed

log = logging.getLogger("sslkit.data")


class BatchBuilder(torch.utils.data.Dataset):
    """Builds one whole batch from ``(epoch, [indices])``; picklable for worker processes.

    Decoded files are kept after the pipeline's deterministic ``prepare`` step (dtype, channels,
    and for the presets a shrink to twice the working size) up to ``cache_bytes`` per process,
    so from the second epoch on a file-based dataset costs no decoding. In-memory arrays are
    never cached (they are already in memory).
    """

    def __init__(self, records: list[Record], pipeline: SamplePipeline, cache_bytes: int = 0):
        self.records = records
        self.pipeline = pipeline
        self.cache_bytes = int(cache_bytes)
        self._cache: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
        self._cached_bytes = 0

    def __len__(self) -> int:  # the DataLoader never relies on it (it gets explicit keys)
        return len(self.records)

    def prepared(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        hit = self._cache.get(index)
        if hit is not None:
            return hit
        record = self.records[index]
        image, lesion = self.pipeline.prepare(record.load_image(), record.load_lesion())
        if self.cache_bytes and not isinstance(record.image, ArrayImage):
            size = image.nbytes + (0 if lesion is None else lesion.nbytes)
            if self._cached_bytes + size <= self.cache_bytes:
                self._cache[index] = (image, lesion)
                self._cached_bytes += size
        return image, lesion

    def __getitem__(self, key: tuple[int, list[int]]) -> dict[str, Any]:
        epoch, indices = key
        images, lesions, labels, kept = [], [], [], []
        bad: list[tuple[str, str]] = []
        for index in indices:
            record = self.records[index]
            try:
                image, lesion = self.prepared(index)
                chw, mask = self.pipeline(image, lesion, epoch, index, prepared=True)
            except BadImage as error:
                bad.append((record.source, str(error)))
                continue
            images.append(chw)
            lesions.append(mask)
            labels.append(-1 if record.label is None else record.label)
            kept.append(index)
        size = self.pipeline.size
        if images:
            image_batch = torch.from_numpy(np.stack(images))
            lesion_batch = torch.from_numpy(np.stack(lesions)[:, None])
        else:
            image_batch = torch.zeros((0, self.pipeline.in_chans, size, size), dtype=torch.float32)
            lesion_batch = torch.zeros((0, 1, size, size), dtype=torch.bool)
        return {
            "image": image_batch,
            "label": torch.tensor(labels, dtype=torch.int64),
            "lesion": lesion_batch,
            "has_lesion": lesion_batch.flatten(1).any(dim=1),
            "index": torch.tensor(kept, dtype=torch.int64),
            "_bad": bad,
        }


class EpochBatches(torch.utils.data.Sampler):
    """Yields ``(epoch, [indices])`` for the loader's current epoch, from its start batch."""

    def __init__(self, loader: "EpochLoader"):
        self.loader = loader

    def __iter__(self):
        epoch = self.loader.epoch
        for batch in self.loader.batch_indices(epoch)[self.loader.start_batch:]:
            yield epoch, batch

    def __len__(self) -> int:
        return max(0, len(self.loader) - self.loader.start_batch)


def _identity(batch):
    return batch


def _worker_init(_worker_id: int) -> None:
    """One torch thread per worker: the workers are the parallelism (avoids oversubscription).

    OpenCV's thread count is deliberately not touched here: ``cv2.setNumThreads`` in a forked
    child whose parent already used OpenCV's thread pool deadlocks (seen with OpenCV 5.0).
    Ctrl-C is left to the main process, which saves a checkpoint before it exits; a worker
    dying of the same SIGINT first would turn that clean stop into a DataLoader error."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)


class EpochLoader:
    """Iterable over the batches of one epoch; see the module docstring for the guarantees."""

    def __init__(
        self,
        records: list[Record],
        pipeline: SamplePipeline,
        *,
        batch_size: int,
        workers: int,
        seed: int,
        shuffle: bool,
        drop_last: bool,
        rank: int,
        world_size: int,
        on_bad_image: str,
        pin_memory: bool = False,
        cache_mb: float = 0,
    ):
        if batch_size < 1:
            raise UserError(f"--batch-size must be at least 1, got {batch_size}")
        if workers < 0:
            raise UserError(f"--workers must be 0 or more, got {workers}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise UserError(f"rank {rank} is not valid for world size {world_size}")
        self.records = records
        self.builder = BatchBuilder(records, pipeline, cache_bytes=int(max(0.0, cache_mb) * 2**20))
        self.batch_size = int(batch_size)
        self.workers = int(workers)
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.on_bad_image = on_bad_image
        self.pin_memory = bool(pin_memory)
        self.epoch = 0
        self.start_batch = 0
        self.skipped: list[tuple[str, str]] = []
        self._warned: set[str] = set()
        self._dataloader: torch.utils.data.DataLoader | None = None

    # -- order -------------------------------------------------------------------------
    def shard_indices(self, epoch: int) -> list[int]:
        """This rank's sample indices for ``epoch`` (padded by wrapping, like DistributedSampler)."""
        n = len(self.records)
        if self.shuffle:
            generator = torch.Generator().manual_seed(derive_seed(self.seed, epoch))
            order = torch.randperm(n, generator=generator).tolist()
        else:
            order = list(range(n))
        if self.world_size > 1 and n:
            if self.drop_last:
                per_rank = n // self.world_size
                order = order[: per_rank * self.world_size]
            else:
                per_rank = -(-n // self.world_size)
                pad = per_rank * self.world_size - n
                order = order + (order * (pad // n + 1))[:pad]
            order = order[self.rank :: self.world_size]
        return order

    def batch_indices(self, epoch: int) -> list[list[int]]:
        order = self.shard_indices(epoch)
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        return batches

    def __len__(self) -> int:
        n = len(self.records)
        if self.world_size > 1:
            n = n // self.world_size if self.drop_last else -(-n // self.world_size)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        if start_batch < 0:
            raise ValueError("start_batch must be >= 0")
        self.epoch = int(epoch)
        self.start_batch = int(start_batch)

    # -- iteration ---------------------------------------------------------------------
    def _raw_batches(self) -> Iterator[dict[str, Any]]:
        if self.workers == 0:
            for key in EpochBatches(self):
                yield self.builder[key]
            return
        if self._dataloader is None:
            self._dataloader = torch.utils.data.DataLoader(
                self.builder,
                batch_size=None,
                sampler=EpochBatches(self),
                num_workers=self.workers,
                collate_fn=_identity,
                persistent_workers=True,
                pin_memory=self.pin_memory,
                worker_init_fn=_worker_init,
            )
        yield from self._dataloader

    def __iter__(self) -> Iterator[dict[str, Any]]:
        yielded, bad_here = 0, []
        for position, batch in enumerate(self._raw_batches(), start=self.start_batch):
            bad = batch.pop("_bad")
            if bad:
                self._handle_bad(bad)
                bad_here.extend(bad)
            if len(batch["index"]) == 0:
                if self.world_size > 1:
                    raise UserError(self._empty_shard_message(position, bad))
                continue
            yielded += 1
            yield batch
        if yielded == 0 and bad_here:
            # Every image of the pass failed to decode: training on nothing must not "succeed".
            file, reason = bad_here[0]
            raise UserError(
                f"no usable image: all {len(bad_here)} image(s) read failed to decode (e.g. '{file}': {reason}); "
                "fix or remove the unreadable files"
            )

    def _empty_shard_message(self, position: int, bad: list[tuple[str, str]]) -> str:
        """With several processes one process cannot skip a step alone (the others would wait for
        it forever in the gradient all-reduce), so a batch share with no readable image stops all."""
        file, reason = bad[0] if bad else ("?", "?")
        return (
            f"every image of this process's share of batch {position + 1} failed to decode (e.g. '{file}': {reason}); "
            "with several processes a step cannot be skipped by one of them alone: remove the unreadable files "
            "or train in one process"
        )

    def _handle_bad(self, bad: list[tuple[str, str]]) -> None:
        if self.on_bad_image == "error":
            from sslkit.data.opening import bad_image_message

            raise UserError(bad_image_message(bad[:1]))
        for file, reason in bad:
            self.skipped.append((file, reason))
            if file not in self._warned:
                self._warned.add(file)
                log.warning("skipped unreadable image '%s': %s", file, reason)

    def close(self) -> None:
        """Stop worker processes now (they also stop when the loader is garbage-collected)."""
        if self._dataloader is not None:
            iterator = getattr(self._dataloader, "_iterator", None)
            if iterator is not None and hasattr(iterator, "_shutdown_workers"):
                iterator._shutdown_workers()
            self._dataloader = None


def make_loader(
    ds: DatasetSplits,
    splits: Sequence[str] = ("train",),
    *,
    purpose: str = "pretrain",
    image_size: int = IMAGE_SIZE,
    in_chans: int = 1,
    batch_size: int = 32,
    workers: int = 0,
    seed: int = 0,
    shuffle: bool = True,
    drop_last: bool = False,
    rank: int = 0,
    world_size: int = 1,
    transform: Any = None,
    records: list[Record] | None = None,
    pin_memory: bool = False,
    cache_mb: float = 512,
) -> EpochLoader:
    """An :class:`EpochLoader` over ``splits`` of ``ds`` (or over ``records`` when given).

    Batches: ``image`` float32 (B, in_chans, image_size, image_size) in [-1, 1], ``label`` int64
    (-1 unknown), ``lesion`` bool (B, 1, S, S), ``has_lesion`` bool (B,) (the mask is not empty),
    ``index`` int64 (position in the concatenated split list, or in ``records``).
    ``transform``: None for the preset of ``purpose``, or a user pipeline (YAML/JSON file, list
    of steps, albumentations object; see :mod:`sslkit.data.transforms`).
    ``cache_mb``: decoded files kept per process (0 turns the cache off); ``pin_memory`` for
    faster copies to a GPU.
    """
    if isinstance(splits, str):
        splits = (splits,)
    if records is None:
        unknown = [s for s in splits if s not in ds.splits]
        if unknown:
            raise UserError(f"dataset {ds.name} has no split '{unknown[0]}'; it has {', '.join(ds.splits)}")
        records = ds.records(*splits)
        what = "+".join(splits)
    else:
        records = list(records)
        what = "the given records"
    if not records:
        raise UserError(f"dataset {ds.name} has no samples in {what}")
    from sslkit.data.transforms import check_in_chans

    check_in_chans(in_chans)
    augment = resolve_transform(transform, purpose, image_size)
    # Presets only ever shrink towards image_size, so files may be shrunk to twice that size
    # first (cheaper to augment and to cache); a user pipeline sees the full resolution.
    prescale = 2 * int(image_size) if transform is None else None
    pipeline = SamplePipeline(augment, image_size=image_size, in_chans=in_chans, seed=seed, prescale=prescale)
    return EpochLoader(
        records, pipeline, batch_size=batch_size, workers=workers, seed=seed, shuffle=shuffle,
        drop_last=drop_last, rank=rank, world_size=world_size,
        on_bad_image=getattr(ds, "on_bad_image", "skip"), pin_memory=pin_memory, cache_mb=cache_mb,
    )
