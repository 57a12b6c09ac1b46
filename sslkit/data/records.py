"""What a dataset adapter produces: lazy, picklable sample records grouped into splits.

A :class:`Record` never holds pixels of its own; it holds a small *reference* that knows how to
load them (a file, a frame of a DICOM file, a slice of a NIfTI volume, a row of an in-memory
array). That keeps opening a dataset cheap and lets DataLoader workers receive the records by
pickling. References are frozen dataclasses, so they pickle by value and compare by value.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from sslkit.choices import SPLIT_NAMES

from sslkit.data.reading import BadImage, mask_of, read_image_file



@runtime_checkable
class ImageRef(Protocol):
    """Something that loads one 2-D image: ``load() -> ndarray`` (H, W) or (H, W, C)."""

    def load(self) -> np.ndarray: ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class FileImage:
    """An ordinary image file (png, jpg, tif, bmp, ...), decoded with OpenCV (PIL as fallback)."""

    path: str

    def load(self) -> np.ndarray:
        return read_image_file(self.path)

    def describe(self) -> str:
        return self.path


@dataclass(frozen=True)
class ArrayImage:
    """Row ``index`` of ``store[key]``: samples of ``.npz`` datasets held in memory."""

    store: "ArrayStore"
    key: str
    index: int

    def load(self) -> np.ndarray:
        return self.store.arrays[self.key][self.index]

    def describe(self) -> str:
        return f"{self.store.path}:{self.key}[{self.index}]"


@dataclass(frozen=True)
class LesionMask:
    """A lesion mask made of one or more parts merged with OR (BUSI has ``_mask`` and
    ``_mask_1`` files for images with two lesions). ``load()`` gives bool (H, W)."""

    parts: tuple[Any, ...]

    def load(self) -> np.ndarray:
        merged = None
        for part in self.parts:
            binary = mask_of(part.load())
            if merged is None:
                merged = binary
            elif binary.shape == merged.shape:
                merged |= binary
            else:
                raise BadImage(f"mask parts differ in size: {part.describe()} is {binary.shape[::-1]}")
        if merged is None:
            raise BadImage("lesion mask without parts")
        return merged

    def describe(self) -> str:
        return " + ".join(p.describe() for p in self.parts)


class ArrayStore:
    """Arrays read once from a ``.npz`` file and shared by all its records (and, through
    pickling, sent once to each DataLoader worker: pickle stores a shared object once)."""

    def __init__(self, path: str, arrays: dict[str, np.ndarray]):
        self.path = path
        self.arrays = arrays

    def __repr__(self) -> str:
        return f"ArrayStore({self.path!r}, keys={sorted(self.arrays)})"

    # Identity semantics: two stores are equal only if they are the same object, which keeps
    # record hashing/equality cheap (no array comparisons).
    __eq__ = object.__eq__
    __hash__ = object.__hash__


@dataclass(frozen=True)
class Record:
    """One sample, described lazily.

    ``source`` identifies it for people (a file path, ``file.npz:train_images[12]``);
    ``label`` is a class index into :attr:`DatasetSplits.class_names` or None;
    ``group`` is a patient/volume id used to keep splits leak-free, or None;
    ``image`` / ``lesion`` load the pixels and the optional lesion mask.
    """

    source: str
    image: Any
    label: int | None = None
    group: str | None = None
    lesion: Any = None

    def load_image(self) -> np.ndarray:
        return self.image.load()

    def load_lesion(self) -> np.ndarray | None:
        return None if self.lesion is None else self.lesion.load()


@dataclass
class DatasetSplits:
    """An opened dataset: records per split plus what is known about them.

    ``splits`` always has the keys ``train``, ``val`` and ``test`` (a split may be empty).
    ``unreadable`` lists (file, reason) pairs found while opening; such samples are not in any
    split. ``on_bad_image`` is the policy :func:`sslkit.data.make_loader` applies to images that
    turn out to be undecodable only when loaded.
    """

    name: str
    splits: dict[str, list[Record]]
    class_names: list[str] | None = None
    has_lesion_masks: bool = False
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    on_bad_image: str = "skip"
    notes: list[str] = field(default_factory=list)
    duplicate_threshold: float | None = None
    """The near-duplicate threshold its splits were grouped with (``--data-opt duplicate_threshold``);
    None: the default."""

    def records(self, *splits: str) -> list[Record]:
        """The records of ``splits`` concatenated in the given order (all splits if none)."""
        names = splits or SPLIT_NAMES
        out: list[Record] = []
        for name in names:
            out.extend(self.splits.get(name, []))
        return out

    @property
    def num_classes(self) -> int:
        return len(self.class_names) if self.class_names else 0

    def counts(self) -> dict[str, dict[str, int]]:
        """``{split: {class name or 'unlabelled': count}}`` for reports."""
        out: dict[str, dict[str, int]] = {}
        for split in SPLIT_NAMES:
            tally = Counter(self.label_name(r.label) for r in self.splits.get(split, []))
            out[split] = dict(sorted(tally.items()))
        return out

    def label_name(self, label: int | None) -> str:
        if label is None:
            return "unlabelled"
        if self.class_names and 0 <= label < len(self.class_names):
            return self.class_names[label]
        return str(label)

    def __repr__(self) -> str:
        sizes = "/".join(str(len(self.splits.get(s, []))) for s in SPLIT_NAMES)
        return f"DatasetSplits({self.name!r}, train/val/test={sizes}, classes={self.class_names})"
