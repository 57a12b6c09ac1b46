"""``open_dataset("ADAPTER:LOCATION")``: from a command-line spec to checked splits.

Adapter options may follow the location: ``folder:/scans?labels=none&groups=parent``.
The adapter is looked up in the dataset registry (an unknown name suggests the closest one);
None opens the embedded default, BUSI at 64 px shipped inside the package. Images found
unreadable while opening follow ``on_bad_image``: ``"error"`` stops with a UserError naming the
file, ``"skip"`` leaves them out and names them in a log warning.
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Any

from sslkit.data.records import DatasetSplits
from sslkit.choices import BAD_IMAGE_POLICIES, SPLIT_NAMES
from sslkit.data.splits import check_fractions
from sslkit.errors import UserError

log = logging.getLogger("sslkit.data")

EMBEDDED_DIR = Path(__file__).resolve().parent / "embedded"
EMBEDDED_DEFAULT = EMBEDDED_DIR / "busi_64.npz"
EMBEDDED_NAME = "busi-64 (embedded)"
#: Options every adapter factory may accept; passed only when its signature takes them.
COMMON_OPTIONS = ("val_fraction", "test_fraction", "seed")
#: Options open_dataset itself applies to any adapter's result (never passed to the adapter):
#: ``resplit=true`` replaces the data's own splits by sslkit's grouped ones.
GENERIC_OPTIONS = ("resplit", "duplicate_threshold")
MAX_NAMED = 10


def parse_spec(spec: str) -> tuple[str, str]:
    """``"busi:/data/x"`` -> ("busi", "/data/x"); only the first ':' separates."""
    adapter, sep, location = spec.partition(":")
    adapter = adapter.strip()
    if not sep or not adapter:
        raise UserError(
            f"data spec '{spec}' is not of the form ADAPTER:LOCATION (e.g. 'folder:/scans'); "
            "see 'sslkit list datasets'"
        )
    if not location.strip():
        raise UserError(f"data spec '{spec}' names no location after '{adapter}:'")
    return adapter, location.strip()


def split_location_options(location: str) -> tuple[str, dict[str, Any]]:
    """``"/scans?labels=none&groups=parent"`` -> ("/scans", {...}) for adapter options on the
    command line; only when the whole text is not itself an existing path."""
    if "?" not in location or Path(location).expanduser().exists():
        return location, {}
    path, _, query = location.rpartition("?")
    from sslkit.options import parse_options

    pairs = [p for p in query.split("&") if p.strip()]
    return path, parse_options(pairs, what="data option")


def check_policy(on_bad_image: str) -> None:
    if on_bad_image not in BAD_IMAGE_POLICIES:
        raise UserError(f"--on-bad-image must be one of {', '.join(BAD_IMAGE_POLICIES)}, got '{on_bad_image}'")


def bad_image_message(unreadable: list[tuple[str, str]]) -> str:
    file, reason = unreadable[0]
    more = f" (and {len(unreadable) - 1} more unreadable)" if len(unreadable) > 1 else ""
    return f"cannot read image '{file}': {reason}{more}; use --on-bad-image skip to leave such files out"


def apply_bad_image_policy(ds: DatasetSplits, on_bad_image: str) -> DatasetSplits:
    """Raise for ``error``; for ``skip`` warn once, naming up to MAX_NAMED files."""
    ds.on_bad_image = on_bad_image
    if not ds.unreadable:
        return ds
    if on_bad_image == "error":
        raise UserError(bad_image_message(ds.unreadable))
    named = "; ".join(f"{f} ({r})" for f, r in ds.unreadable[:MAX_NAMED])
    more = f"; and {len(ds.unreadable) - MAX_NAMED} more" if len(ds.unreadable) > MAX_NAMED else ""
    log.warning("skipped %d unreadable image(s) in %s: %s%s", len(ds.unreadable), ds.name, named, more)
    return ds


def open_embedded(
    *, seed: int = 0, val_fraction: float = 0.1, test_fraction: float = 0.2, label_key: str = "labels"
) -> DatasetSplits:
    """The shipped BUSI 64 px arrays (its own BreastMNIST train/val/test splits); it takes the
    ``npz`` adapter's option ``label_key``."""
    from sslkit.data.arrays import open_npz

    if not EMBEDDED_DEFAULT.is_file():
        raise UserError(f"the embedded dataset '{EMBEDDED_DEFAULT}' is missing; reinstall sslkit or pass --data")
    return open_npz(EMBEDDED_DEFAULT, name=EMBEDDED_NAME, seed=seed, val_fraction=val_fraction,
                    test_fraction=test_fraction, label_key=label_key)


def open_dataset(
    spec: str | None,
    *,
    plugins=None,
    on_bad_image: str = "skip",
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
    options: dict[str, Any] | None = None,
) -> DatasetSplits:
    """Open ``spec`` ("ADAPTER:LOCATION", or None for the embedded default) into splits.

    ``val_fraction`` / ``test_fraction`` / ``seed`` shape the seeded stratified splits of
    adapters without their own; ``options`` are extra adapter options (checked by the registry).
    """
    check_policy(on_bad_image)
    check_fractions(val_fraction, test_fraction)
    from sslkit.data.duplicates import check_threshold, current_threshold, using_threshold

    options = dict(options or {})
    threshold = options.get("duplicate_threshold")
    threshold = current_threshold() if threshold is None else check_threshold(threshold)
    with using_threshold(threshold):  # generated splits group near-duplicates at this threshold
        ds = _open_adapter(spec, plugins=plugins, on_bad_image=on_bad_image, val_fraction=val_fraction,
                           test_fraction=test_fraction, seed=seed, options=options)
        if "duplicate_threshold" in options:  # given in the spec (read by _open_adapter)
            threshold = check_threshold(options["duplicate_threshold"])
        ds.duplicate_threshold = threshold
        if _flag("resplit", options.get("resplit", False)):
            with using_threshold(threshold):
                ds = resplit_dataset(ds, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
    return ds


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise UserError(f"data option '{name}' must be true or false, got '{value}'")


def resplit_dataset(ds: DatasetSplits, *, val_fraction: float, test_fraction: float, seed: int) -> DatasetSplits:
    """``ds`` with its own splits pooled and split again by :func:`split_records` (stratified,
    seeded, patients and near-duplicates grouped)."""
    from sslkit.data.splits import split_records

    pooled = ds.records()
    ds.splits = split_records(pooled, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
    sizes = "/".join(str(len(ds.splits[s])) for s in SPLIT_NAMES)
    ds.notes.append(f"resplit: the data's own splits replaced by grouped, stratified ones ({sizes} train/val/test, "
                    f"seed {seed})")
    return ds


def _open_adapter(spec, *, plugins, on_bad_image, val_fraction, test_fraction, seed, options) -> DatasetSplits:
    if spec is None or not str(spec).strip() or str(spec).strip() == "embedded":
        # Options are checked here too: an unknown one must not be ignored silently.
        from sslkit.registry import check_options

        extra = {k: v for k, v in (options or {}).items() if k not in COMMON_OPTIONS + GENERIC_OPTIONS}
        check_options("the embedded data", lambda *, label_key="labels": None, extra)
        ds = open_embedded(seed=seed, val_fraction=val_fraction, test_fraction=test_fraction, **extra)
        return apply_bad_image_policy(ds, on_bad_image)

    adapter, location = parse_spec(str(spec))
    location, spec_options = split_location_options(location)
    for generic in GENERIC_OPTIONS:  # npz:/data/x.npz?resplit=true works like --data-opt resplit=true
        if generic in spec_options:
            options[generic] = spec_options.pop(generic)  # open_dataset reads it from the same dict
    from sslkit.plugins import plugins_or_default

    plugins = plugins_or_default(plugins)
    entry = plugins.datasets.get(adapter)
    if not Path(location).expanduser().exists():
        raise UserError(f"{adapter} data: '{location}' does not exist")
    common = {"val_fraction": val_fraction, "test_fraction": test_fraction, "seed": seed}
    accepted = _accepted_options(entry.factory)
    kwargs = {k: v for k, v in common.items() if accepted is None or k in accepted}
    kwargs.update(spec_options)
    kwargs.update({k: v for k, v in options.items() if k not in GENERIC_OPTIONS})
    from sslkit.data.duplicates import using_threshold

    with using_threshold(options.get("duplicate_threshold")):  # a threshold given in the spec
        ds = plugins.datasets.create(adapter, str(Path(location).expanduser()), **kwargs)
    if not isinstance(ds, DatasetSplits):
        raise UserError(f"dataset adapter '{adapter}' returned {type(ds).__name__}, not DatasetSplits")
    for split in SPLIT_NAMES:
        ds.splits.setdefault(split, [])
    if not any(ds.splits[s] for s in SPLIT_NAMES):
        if ds.unreadable and on_bad_image == "error":
            raise UserError(bad_image_message(ds.unreadable))
        raise UserError(f"{adapter} data: no readable images in '{location}'")
    return apply_bad_image_policy(ds, on_bad_image)


def _accepted_options(factory) -> set[str] | None:
    """Keyword names ``factory`` takes, or None when it takes ``**options``."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return None
    return {n for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
