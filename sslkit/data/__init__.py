"""Datasets for sslkit: adapters' records and splits, robust image reading, augmentation, loaders.

The public interface (what the engine, evaluation and plugins use)::

    from sslkit.data import open_dataset, make_loader, stratified_subset

    ds = open_dataset("busi:/data/Dataset_BUSI_with_GT")   # or None: embedded BUSI 64 px
    loader = make_loader(ds, ("train",), purpose="pretrain", image_size=64, in_chans=1)
    loader.set_epoch(3, start_batch=10)                    # exact resume
    for batch in loader: batch["image"], batch["label"], batch["lesion"], ...

    few = stratified_subset(ds.splits["train"], 100, seed=0)   # or 0.1 for 10 %
    finetune_loader = make_loader(ds, purpose="finetune", records=few)

Writing an adapter (a plugin's ``register_datasets`` hook registers ``factory(location, *,
val_fraction=0.1, test_fraction=0.2, seed=0, **own_options) -> DatasetSplits``): build
:class:`Record` objects with :class:`FileImage` / :class:`ArrayImage` / :class:`LesionMask`
references, then either use the data's own splits or :func:`split_records`.
:func:`scan_files` and :func:`check_files` give the shared file-discovery and bad-image checks.

Heavy modules (torch, albumentations) are imported only when :func:`make_loader` is used.
"""

from __future__ import annotations

from sslkit.data.opening import EMBEDDED_DEFAULT, open_dataset, parse_spec
from sslkit.data.records import ArrayImage, ArrayStore, DatasetSplits, FileImage, LesionMask, Record
from sslkit.data.reading import BadImage
from sslkit.choices import SPLIT_NAMES
from sslkit.data.splits import split_records, stratified_subset

_LAZY = {
    "make_loader": "sslkit.data.loader",
    "EpochLoader": "sslkit.data.loader",
    "SamplePipeline": "sslkit.data.transforms",
    "preset": "sslkit.data.transforms",
    "scan_files": "sslkit.data.files",
    "check_files": "sslkit.data.files",
    "read_image_file": "sslkit.data.reading",
    "inspect_dataset": "sslkit.data.inspection",
}

__all__ = [
    "ArrayImage", "ArrayStore", "BadImage", "DatasetSplits", "EMBEDDED_DEFAULT", "FileImage",
    "LesionMask", "Record", "SPLIT_NAMES", "open_dataset", "parse_spec", "split_records",
    "stratified_subset", *_LAZY,
]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sslkit.data' has no attribute '{name}'")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
