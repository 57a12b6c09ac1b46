"""Datasets stored as arrays in one ``.npz`` file, held in memory (fast: no decoding per sample).

Two layouts, one reader:

- the sslkit/BUSI layout (``../shared/data/busi/busi_*.npz``, the embedded default): per split
  ``{split}_images`` (N, H, W[, C]), ``{split}_labels`` (N,), optional ``{split}_masks`` (lesion
  masks), ``{split}_files`` (source names), and ``classes`` (class names);
- MedMNIST (``train_images``, ``train_labels`` shaped N or N x 1, ...; class names from the
  MedMNIST tables below, chosen by the file name, e.g. ``breastmnist_28.npz``).

A file with plain ``images`` / ``labels`` / ``masks`` / ``groups`` keys (no split prefix) is split
with the seeded, stratified, group-aware splitter.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from sslkit.data.records import ArrayImage, ArrayStore, DatasetSplits, LesionMask, Record
from sslkit.choices import SPLIT_NAMES
from sslkit.data.splits import split_records
from sslkit.errors import UserError

#: MedMNIST v2 label names (medmnist.INFO[flag]["label"]) for the 2-D single-label datasets.
MEDMNIST_CLASSES: dict[str, list[str]] = {
    "breastmnist": ["malignant", "normal, benign"],
    "pneumoniamnist": ["normal", "pneumonia"],
    "pathmnist": [
        "adipose", "background", "debris", "lymphocytes", "mucus", "smooth muscle",
        "normal colon mucosa", "cancer-associated stroma", "colorectal adenocarcinoma epithelium",
    ],
    "dermamnist": [
        "actinic keratoses and intraepithelial carcinoma", "basal cell carcinoma",
        "benign keratosis-like lesions", "dermatofibroma", "melanoma", "melanocytic nevi",
        "vascular lesions",
    ],
    "octmnist": ["choroidal neovascularization", "diabetic macular edema", "drusen", "normal"],
    "bloodmnist": [
        "basophil", "eosinophil", "erythroblast",
        "immature granulocytes(myelocytes, metamyelocytes and promyelocytes)",
        "lymphocyte", "monocyte", "neutrophil", "platelet",
    ],
    "organamnist": [
        "bladder", "femur-left", "femur-right", "heart", "kidney-left", "kidney-right", "liver",
        "lung-left", "lung-right", "pancreas", "spleen",
    ],
}
MEDMNIST_CLASSES["organcmnist"] = MEDMNIST_CLASSES["organamnist"]
MEDMNIST_CLASSES["organsmnist"] = MEDMNIST_CLASSES["organamnist"]


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of ``path`` in memory; a missing or broken file is a UserError naming it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"'{path}' does not exist or is not a file")
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head not in (b"PK\x03\x04", b"PK\x05\x06"):  # numpy would talk about allow_pickle
        raise UserError(f"'{path}' is not a readable .npz file (a .npz is a zip archive of arrays; this file is not one)")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise UserError(f"'{path}' is not a readable .npz file ({error})") from None


def _labels(array: np.ndarray | None, key: str, path: Path) -> np.ndarray | None:
    if array is None:
        return None
    array = np.asarray(array)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise UserError(
            f"'{path}': {key} has shape {array.shape}; sslkit needs one class label per image "
            "(multi-label data is not supported)"
        )
    if not np.issubdtype(array.dtype, np.integer):
        if np.issubdtype(array.dtype, np.floating) and np.all(array == np.round(array)):
            array = array.astype(np.int64)
        else:
            raise UserError(f"'{path}': {key} must hold integer class indices, not {array.dtype}")
    return array.astype(np.int64)


def medmnist_class_names(path: Path, num_classes: int) -> list[str]:
    stem = path.stem.lower().split("_")[0]
    names = MEDMNIST_CLASSES.get(stem)
    if names is not None and len(names) >= num_classes:
        return list(names)
    return [str(i) for i in range(num_classes)]


def open_npz(
    path: str | Path,
    *,
    name: str | None = None,
    label_key: str = "labels",
    class_names: list[str] | None = None,
    medmnist: bool = False,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> DatasetSplits:
    """Open an arrays-in-``.npz`` dataset (see the module docstring for the layouts).

    ``label_key`` picks the label array per split (e.g. ``breastmnist_labels`` in the BUSI
    files). ``medmnist`` takes class names from the MedMNIST tables instead of ``classes``.
    """
    path = Path(path)
    arrays = load_npz(path)
    store = ArrayStore(str(path), arrays)
    prefixes = [s for s in SPLIT_NAMES if f"{s}_images" in arrays]
    if not prefixes and "images" not in arrays:
        keys = ", ".join(sorted(arrays)) or "none"
        raise UserError(f"'{path}' has no 'train_images' (or 'images') array; its keys: {keys}")

    def records_of(prefix: str) -> list[Record]:
        images_key = f"{prefix}images"
        images = arrays[images_key]
        if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[3] not in (1, 3, 4)):
            raise UserError(f"'{path}': {images_key} has shape {images.shape}, expected N x H x W [x C]")
        if not (np.issubdtype(images.dtype, np.integer) or np.issubdtype(images.dtype, np.floating)
                or images.dtype == np.bool_):  # complex numbers: numpy warned in two lines, then dropped a part
            raise UserError(f"'{path}': {images_key} holds {images.dtype} values; images must be whole or real numbers")
        n = len(images)
        labels = _labels(arrays.get(f"{prefix}{label_key}"), f"{prefix}{label_key}", path)
        if labels is None and label_key != "labels":
            raise UserError(f"'{path}' has no array '{prefix}{label_key}'")
        masks_key = f"{prefix}masks"
        if masks_key in arrays and arrays[masks_key].shape[:3] != images.shape[:3]:
            raise UserError(f"'{path}': {masks_key} {arrays[masks_key].shape} does not match {images_key} {images.shape}")
        for key, extra in ((f"{prefix}{label_key}", labels), (f"{prefix}files", arrays.get(f"{prefix}files"))):
            if extra is not None and len(extra) != n:
                raise UserError(f"'{path}': {key} has {len(extra)} entries for {n} images")
        files = arrays.get(f"{prefix}files")
        groups = arrays.get(f"{prefix}groups")
        out = []
        for i in range(n):
            source = str(files[i]) if files is not None else f"{path.name}:{images_key}[{i}]"
            lesion = LesionMask((ArrayImage(store, masks_key, i),)) if masks_key in arrays else None
            out.append(Record(
                source=source,
                image=ArrayImage(store, images_key, i),
                label=None if labels is None else int(labels[i]),
                group=None if groups is None else str(groups[i]),
                lesion=lesion,
            ))
        return out

    if prefixes:
        splits = {s: (records_of(f"{s}_") if s in prefixes else []) for s in SPLIT_NAMES}
    else:
        splits = split_records(records_of(""), val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)

    all_records = [r for s in SPLIT_NAMES for r in splits[s]]
    labels_seen = [r.label for r in all_records if r.label is not None]
    if class_names is None and labels_seen:
        num_classes = max(labels_seen) + 1
        if medmnist:
            class_names = medmnist_class_names(path, num_classes)
        elif "classes" in arrays and label_key == "labels":
            class_names = [str(c) for c in arrays["classes"].tolist()]
        else:
            class_names = [str(i) for i in range(num_classes)]
    if labels_seen and class_names and (min(labels_seen) < 0 or max(labels_seen) >= len(class_names)):
        raise UserError(f"'{path}': labels run from {min(labels_seen)} to {max(labels_seen)} but there are {len(class_names)} class names")
    return DatasetSplits(
        name=name or path.stem,
        splits=splits,
        class_names=class_names if labels_seen else None,
        has_lesion_masks=any(r.lesion is not None for r in all_records),
    )
