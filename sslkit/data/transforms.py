"""Per-sample processing: dtype and channels, albumentations augmentation, normalisation.

Presets (``purpose``):

- ``pretrain``: random resized crop (70-100 % of the area, near-square) to ``image_size``,
  horizontal flip, light brightness/contrast changes. No vertical flips or rotations: in
  ultrasound and most 2-D scans "up" has a meaning.
- ``finetune``: the same, milder (80-100 % of the area).
- ``eval``: deterministic: shortest side resized to ``image_size``, centre crop (the MedMNIST
  recipe, so raw BUSI images and the shipped arrays match).

Users can give their own pipeline (``transform=``): a YAML/JSON file or a list like
``[{"RandomResizedCrop": {"size": [64, 64]}}, "HorizontalFlip"]``, albumentations' own
serialised form, or an albumentations transform object. sslkit converts channels before it and
resizes to ``image_size`` and normalises after it, so a user pipeline never needs ``Normalize``.

Before augmentation, :meth:`SamplePipeline.prepare` converts dtype and channels and (for the
presets) shrinks large images so their shortest side is ``2 * image_size`` with area
interpolation: the presets only ever shrink further, so this changes nothing visible, and it is
what the loader caches.

Randomness: before each sample the pipeline's generators are re-seeded from
(seed, epoch, sample index), so augmentation does not depend on which worker runs it.
"""

from __future__ import annotations

import difflib
import os
import random
from pathlib import Path
from typing import Any

import numpy as np

from sslkit.data.reading import to_channels, to_unit_range
from sslkit.errors import UserError, first_line

#: albumentations' own switch for its update check (2.0.8 asks the package index on every import
#: and, offline, prints two warning lines into every command's output).
NO_UPDATE_CHECK_ENV = "NO_ALBUMENTATIONS_UPDATE"


def albumentations() -> Any:
    """The albumentations module, imported with its update check off (a user's own setting of
    ``NO_ALBUMENTATIONS_UPDATE`` wins; data-loading processes inherit it)."""
    os.environ.setdefault(NO_UPDATE_CHECK_ENV, "1")
    import albumentations as module

    return module


PURPOSES = ("pretrain", "finetune", "eval")
FORBIDDEN_IN_USER_PIPELINE = {"Normalize": "sslkit normalises to [-1, 1] itself",
                              "ToTensorV2": "sslkit builds the tensors itself"}


def preset(purpose: str, image_size: int):
    """The albumentations Compose for ``purpose`` (see the module docstring)."""
    A = albumentations()

    size = (int(image_size), int(image_size))
    if purpose == "pretrain":
        steps = [
            A.RandomResizedCrop(size=size, scale=(0.7, 1.0), ratio=(0.85, 1.18), area_for_downscale="image"),
            A.HorizontalFlip(p=0.5),
            A.RandomBrightnessContrast(brightness_limit=0.1, contrast_limit=0.1, p=0.5),
        ]
    elif purpose == "finetune":
        steps = [
            A.RandomResizedCrop(size=size, scale=(0.8, 1.0), ratio=(0.9, 1.11), area_for_downscale="image"),
            A.HorizontalFlip(p=0.5),
            A.RandomBrightnessContrast(brightness_limit=0.1, contrast_limit=0.1, p=0.3),
        ]
    elif purpose == "eval":
        steps = [A.SmallestMaxSize(max_size=size[0], area_for_downscale="image"), A.CenterCrop(height=size[0], width=size[1])]
    else:
        raise UserError(f"unknown loader purpose '{purpose}'; use one of {', '.join(PURPOSES)}")
    return A.Compose(steps)


def load_pipeline_file(path: str | Path):
    """A user pipeline from a YAML or JSON file (see :func:`build_user_pipeline`)."""
    import yaml

    from sslkit.yaml_data import load_yaml

    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"augmentation file '{path}' does not exist")
    try:
        spec = load_yaml(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise UserError(f"augmentation file '{path}' is not valid YAML: {first_line(error)}") from None
    return build_user_pipeline(spec, where=str(path))


def build_user_pipeline(spec: Any, where: str = "augmentation"):
    """An albumentations Compose from a list of steps, ``{"transforms": [...]}``, or the
    albumentations serialised dict (``{"transform": {"__class_fullname__": ...}}``)."""
    A = albumentations()

    if isinstance(spec, dict) and "transform" in spec:
        try:
            pipeline = A.from_dict(spec)
        except Exception as error:  # albumentations raises many kinds here
            raise UserError(f"{where}: cannot build the albumentations pipeline: {error}") from None
        _reject_forbidden(pipeline, where)
        return pipeline if isinstance(pipeline, A.BaseCompose) else A.Compose([pipeline])
    if isinstance(spec, dict) and "transforms" in spec:
        spec = spec["transforms"]
    if not isinstance(spec, list):
        raise UserError(f"{where}: expected a list of transforms like '- HorizontalFlip: {{p: 0.5}}'")
    return A.Compose([_build_step(step, where) for step in spec])


def _build_step(step: Any, where: str):
    A = albumentations()

    if isinstance(step, str):
        name, kwargs = step, dict[str, Any]()
    elif isinstance(step, dict) and len(step) == 1:
        name, kwargs = next(iter(step.items()))
        kwargs = dict(kwargs or {})
    else:
        raise UserError(f"{where}: each step must be a name or a one-key mapping NAME: {{options}}, got {step!r}")
    if name in FORBIDDEN_IN_USER_PIPELINE:
        raise UserError(f"{where}: remove '{name}' from the pipeline ({FORBIDDEN_IN_USER_PIPELINE[name]})")
    cls = getattr(A, str(name), None)
    if not isinstance(cls, type) or not issubclass(cls, (A.BasicTransform, A.BaseCompose)):
        known = [n for n in dir(A) if isinstance(getattr(A, n), type) and issubclass(getattr(A, n), (A.BasicTransform, A.BaseCompose))]
        hint = difflib.get_close_matches(str(name), known, n=1, cutoff=0.5)
        did_you_mean = f"; did you mean '{hint[0]}'?" if hint else ""
        raise UserError(f"{where}: unknown albumentations transform '{name}'{did_you_mean}")
    if "transforms" in kwargs and issubclass(cls, A.BaseCompose):
        kwargs["transforms"] = [_build_step(s, where) for s in kwargs["transforms"]]
    for key, value in kwargs.items():
        if isinstance(value, list) and all(isinstance(v, (int, float)) for v in value):
            kwargs[key] = tuple(value)
    try:
        return cls(**kwargs)
    except Exception as error:  # pydantic validation, TypeError, ValueError ...
        first = first_line(error)
        raise UserError(f"{where}: bad options for '{name}': {first}") from None


def _reject_forbidden(pipeline, where: str) -> None:
    stack = [pipeline]
    while stack:
        item = stack.pop()
        name = type(item).__name__
        if name in FORBIDDEN_IN_USER_PIPELINE:
            raise UserError(f"{where}: remove '{name}' from the pipeline ({FORBIDDEN_IN_USER_PIPELINE[name]})")
        stack.extend(getattr(item, "transforms", []) or [])


def resolve_transform(transform: Any, purpose: str, image_size: int):
    """``transform`` argument of make_loader -> an albumentations-style callable."""
    A = albumentations()

    if purpose not in PURPOSES:
        raise UserError(f"unknown loader purpose '{purpose}'; use one of {', '.join(PURPOSES)}")
    if transform is None:
        return preset(purpose, image_size)
    if isinstance(transform, (str, Path)):
        return load_pipeline_file(transform)
    if isinstance(transform, (list, dict)):
        return build_user_pipeline(transform)
    if isinstance(transform, A.BasicTransform):
        return A.Compose([transform])
    if callable(transform):
        return transform
    raise UserError(f"transform must be a file, a list of steps or an albumentations transform, not {type(transform).__name__}")


def sample_rng(seed: int, epoch: int, index: int) -> tuple[np.random.Generator, random.Random]:
    """Generators that depend only on (seed, epoch, index)."""
    generator = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch) & 0xFFFFFFFF, int(index)])
    return generator, random.Random(int(generator.integers(0, 2**63 - 1)))


#: Channel counts every image can be brought to (grey, RGB); others would reject every image.
SUPPORTED_IN_CHANS = (1, 3)


def check_in_chans(in_chans: int) -> None:
    """Only 1 (grey) and 3 (colour) channels: any image converts to those, while e.g. 2 or 4 would
    make every image unreadable and a run would train on nothing."""
    if int(in_chans) not in SUPPORTED_IN_CHANS:
        raise UserError(f"--in-chans must be 1 (grey) or 3 (colour), got {in_chans}")


class SamplePipeline:
    """image (any dtype/channels) + optional mask -> (float32 C x S x S in [-1, 1], bool S x S)."""

    def __init__(self, augment, *, image_size: int, in_chans: int, seed: int, prescale: int | None = None):
        if int(image_size) < 1:
            raise UserError(f"--image-size must be positive, got {image_size}")
        check_in_chans(in_chans)
        self.augment = augment
        self.size = int(image_size)
        self.in_chans = int(in_chans)
        self.seed = int(seed)
        self.prescale = None if prescale is None else int(prescale)

    def prepare(self, image: np.ndarray, lesion: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        """The deterministic first step: dtype, channels, mask alignment and, with ``prescale``,
        shrinking so the shortest side is at most ``prescale`` pixels. Its result is what the
        loader may cache, so a cached and an uncached sample give identical batches."""
        import cv2

        image = to_channels(to_unit_range(np.asarray(image)), self.in_chans)
        height, width = image.shape[:2]
        mask: np.ndarray | None = None
        if lesion is not None:
            mask = lesion.astype(np.uint8, copy=False)
            if mask.shape != (height, width):
                mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST)
        if self.prescale is not None and min(height, width) > self.prescale:
            factor = self.prescale / min(height, width)
            size = (max(1, round(width * factor)), max(1, round(height * factor)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            if image.ndim == 2:
                image = image[:, :, None]
            if mask is not None:
                mask = cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)
        return image, mask

    def __call__(self, image: np.ndarray, lesion: np.ndarray | None, epoch: int, index: int, *, prepared: bool = False):
        import cv2

        if not prepared:
            image, lesion = self.prepare(image, lesion)
        mask = lesion
        if self.augment is not None:
            setter = getattr(self.augment, "set_random_state", None)
            if setter is not None:
                setter(*sample_rng(self.seed, epoch, index))
            out = self.augment(image=image, mask=mask) if mask is not None else self.augment(image=image)
            image, mask = out["image"], out.get("mask", mask)
        image = np.asarray(image)
        if image.ndim == 2:
            image = image[:, :, None]
        if image.shape[:2] != (self.size, self.size):
            image = cv2.resize(image, (self.size, self.size), interpolation=cv2.INTER_AREA if image.shape[0] > self.size else cv2.INTER_LINEAR)
            if image.ndim == 2:
                image = image[:, :, None]
        if mask is not None and np.asarray(mask).shape[:2] != (self.size, self.size):
            mask = cv2.resize(np.asarray(mask, np.uint8), (self.size, self.size), interpolation=cv2.INTER_NEAREST)
        if image.shape[2] != self.in_chans:
            raise UserError(f"the augmentation pipeline changed the channels to {image.shape[2]} (expected {self.in_chans})")
        if image.dtype == np.uint8:
            chw = image.transpose(2, 0, 1).astype(np.float32) * np.float32(2.0 / 255.0) - np.float32(1.0)
        else:
            chw = np.clip(image.transpose(2, 0, 1).astype(np.float32) * np.float32(2.0) - np.float32(1.0), -1.0, 1.0)
        lesion_out = np.zeros((self.size, self.size), bool) if mask is None else np.asarray(mask) > 0
        return np.ascontiguousarray(chw), lesion_out
