"""The pretraining configuration: one dataclass, YAML files, command-line overrides, validation.

Precedence is defaults < ``--config FILE.yaml`` < options given on the command line. Every field
of :class:`PretrainConfig` is a key of the YAML file (hyphens or underscores) and an option of
``sslkit pretrain``; an unknown key is an error that suggests the closest known key, so a typo in
a long config file cannot be silently ignored. :func:`validate` turns every bad value into one
sentence (a :class:`~sslkit.errors.UserError`) before any data is read or model built.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from sslkit.choices import BAD_IMAGE_POLICIES
from sslkit.choices import SPLIT_NAMES
from sslkit.choices import DEVICE_CHOICES, ENCODINGS, OPTIMIZERS, PRECISION_CHOICES, SKIP_SETTINGS, TARGETS
from sslkit.defaults import BACKBONE, IMAGE_SIZE
from sslkit.errors import UserError, first_line
from sslkit.registry import closest
from sslkit.options import check_backbone_options, check_seed
from sslkit.runtime import check_threads

CHOICES: dict[str, tuple[str, ...]] = {
    "optimizer": OPTIMIZERS,
    "schedule": ("multistep", "cosine", "constant"),
    "loss": ("masked", "full"),
    "encoding": ENCODINGS,
    "target": TARGETS,
    "decoder_skips": SKIP_SETTINGS,
    "device": DEVICE_CHOICES,
    "precision": PRECISION_CHOICES,
    "on_bad_image": BAD_IMAGE_POLICIES,
}
MIN_IMAGE_SIZE = 16


@dataclass
class PretrainConfig:
    """Every setting of a pretraining run (what ``config.yaml`` in a run directory holds)."""

    # What is trained
    masker: str = "random-grid"
    """The recipe study's choice (``docs/results/recipe.md``): 75 % of an 8 x 8 grid hidden,
    decoder without skips, 30 epochs; the paper's setting is ``--masker dqn --decoder-skips all``."""
    masker_options: dict[str, Any] = field(default_factory=dict)
    backbone: str = BACKBONE
    backbone_options: dict[str, Any] = field(default_factory=dict)
    encoding: str = "dense"
    """How the encoder sees a masked image: ``dense`` (the masked pixels are zeros in an ordinary
    forward pass) or ``sparse`` (SparK: it computes on the visible cells only, masks are unions of
    its deepest map's cells, and the decoder fills the masked positions with learned tokens).
    Fine-tuning and export always use the encoder densely."""
    target: str = "pixels"
    """What the predictor reconstructs: ``pixels`` or ``norm-pixels`` (each cell of the encoder's
    cell grid normalised to zero mean and unit variance per channel, MAE's ``norm_pix_loss``)."""
    decoder_skips: str = "auto"
    """Skip connections of the decoder: ``all`` (U-Net), ``deepest`` or ``none``; with fewer, the
    reconstruction has to pass through the deep encoder layers that fine-tuning uses. ``auto``
    (the recipe) is ``none`` wherever the decoder can drop them (see ``sslkit.models.decoder``)."""
    # Data
    data: str | None = None
    """``ADAPTER:LOCATION``; None (or 'embedded') is the embedded BUSI 64 px set."""
    data_options: dict[str, Any] = field(default_factory=dict)
    """Extra options of the dataset adapter (``--data-opt key=value``)."""
    pretrain_splits: str = "train+val"
    """Splits the predictor sees; 'all' also uses test images (the paper did; it leaks test data)."""
    image_size: int = IMAGE_SIZE
    in_chans: int = 1
    on_bad_image: str = "skip"
    split_seed: int = 0
    """Seed of the train/val/test split for adapters without their own; kept apart from ``seed``
    so that fine-tuning with the default finds the same test split the pretraining left out."""
    workers: int = 0
    # Optimisation
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"
    schedule: str = "multistep"
    milestones: list[float] = field(default_factory=lambda: [1 / 3, 2 / 3])
    """MultiStep milestones as fractions of the planned steps (the paper: 1/3 and 2/3)."""
    gamma: float = 0.33
    warmup_epochs: float = 0.0
    loss: str = "masked"
    seed: int = 0
    # Where and how
    out: str | None = None
    device: str = "auto"
    precision: str = "auto"
    """``auto`` = bf16 where the hardware runs it natively, else fp32 (resolved when the run
    starts; ``config.yaml`` records the concrete choice, so ``--resume`` keeps it)."""
    channels_last: bool = True
    """Keep the predictor's weights and the images in channels_last (NHWC) memory layout: oneDNN
    and cuDNN run 3x3 convolutions 1.3-2.5x faster in it, at the same arithmetic."""
    compile: bool = False
    threads: int = 0
    """CPU threads for PyTorch (0 = automatic: :func:`sslkit.runtime.default_threads`, half of the
    usable cores); 1 can be several times faster on a machine busy with other work."""
    # Logging and checkpoints
    logdir: str | None = None
    log_every: int = 10
    log_images_every: int = 100
    checkpoint_every: int = 10
    checkpoint_every_steps: int = 0
    knn_every: int = 0
    """Every N epochs, k-NN accuracy of the frozen encoder (train-split labels vote for the
    val split): the quick health check of what pretraining learns. 0 = never."""
    quiet: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], source: str = "config") -> "PretrainConfig":
        """Build from plain values (YAML or CLI), checking keys and coercing types."""
        config = cls()
        for key, value in normalise_keys(values, source).items():
            setattr(config, key, _coerce(key, value, source))
        return config


FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(PretrainConfig)}
#: Settings that do not change what a resumed run computes, so ``--resume`` accepts them.
RESUMABLE_OVERRIDES = frozenset(
    {"device", "workers", "threads", "quiet", "log_every", "log_images_every", "compile", "knn_every"}
)
#: Settings that never change a run's figures: the resumable ones, plus where and how often its
#: files are written (kept as they were on resume, so one run directory stays consistent).
#: ``sslkit compare`` leaves exactly these out of a cell's fingerprint.
NOT_RESULT_SETTINGS = RESUMABLE_OVERRIDES | {"out", "logdir", "checkpoint_every", "checkpoint_every_steps"}


def field_names() -> list[str]:
    return list(FIELD_TYPES)


def normalise_keys(values: Mapping[str, Any], source: str) -> dict[str, Any]:
    """``log-every`` -> ``log_every``; an unknown key is an error suggesting the closest."""
    known = field_names()
    out: dict[str, Any] = {}
    for raw_key, value in values.items():
        key = str(raw_key).strip().replace("-", "_")
        if key not in FIELD_TYPES:
            hint = closest(key, known)
            did_you_mean = f"; did you mean '{hint}'?" if hint else f"; known keys: {', '.join(known)}"
            raise UserError(f"{source} has an unknown key '{raw_key}'{did_you_mean}")
        out[key] = value
    return out


def _coerce(key: str, value: Any, source: str) -> Any:
    """YAML reads ``1e-3`` as text and users write ``epochs: '5'``; accept both, reject junk."""
    kind = FIELD_TYPES[key]
    where = f"{source} key '{key}'"
    if value is None:
        if "None" in kind:
            return None
        raise UserError(f"{where} must not be empty")
    if kind.startswith("dict"):
        if not isinstance(value, Mapping):
            raise UserError(f"{where} must be a mapping of option names to values, got {value!r}")
        return {str(k).replace("-", "_"): v for k, v in value.items()}
    if kind.startswith("list"):
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise UserError(f"{where} must be a list of numbers, got {value!r}")
        return [_number(item, float, where) for item in items]
    if kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "yes", "1", "on"):
            return True
        if text in ("false", "no", "0", "off"):
            return False
        raise UserError(f"{where} must be true or false, got {value!r}")
    if kind == "int":
        return _number(value, int, where)
    if kind == "float":
        return _number(value, float, where)
    return str(value)


def _number(value: Any, kind: type, where: str) -> Any:
    if isinstance(value, bool):
        raise UserError(f"{where} must be a number, got {value!r}")
    try:
        number = float(str(value).strip()) if not isinstance(value, (int, float)) else float(value)
    except ValueError:
        raise UserError(f"{where} must be a number, got {value!r}") from None
    if kind is int:
        if not number.is_integer():
            raise UserError(f"{where} must be a whole number, got {value!r}")
        return int(number)
    return number


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML config into raw values (keys checked, values not yet coerced)."""
    import yaml

    from sslkit.yaml_data import load_yaml

    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file '{path}' does not exist")
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        first = first_line(error)
        raise UserError(f"config file '{path}' is not valid YAML ({first})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file '{path}' must hold a mapping of option names to values")
    return normalise_keys(data, f"config file '{path}'")


def merge(
    file_values: Mapping[str, Any], cli_values: Mapping[str, Any], source: str = "config"
) -> PretrainConfig:
    """Defaults < file < command line. A new ``masker``/``backbone``/``data`` on the command line drops the
    file's options for the old one (they would not fit); otherwise options merge key by key."""
    values = dict(file_values)
    for name in ("masker", "backbone", "data"):
        opt_key = f"{name}_options"
        if name in cli_values and cli_values[name] != values.get(name, getattr(PretrainConfig, name)):
            values.pop(opt_key, None)
        if opt_key in cli_values:
            merged = dict(values.get(opt_key) or {})
            merged.update(cli_values[opt_key])
            values[opt_key] = merged
    for key, value in cli_values.items():
        if not key.endswith("_options"):
            values[key] = value
    return PretrainConfig.from_mapping(values, source)


def parse_splits(text: str) -> tuple[str, ...] | None:
    """``'train+val'`` -> ('train', 'val'); ``'all'`` -> None (every split the data has)."""
    text = str(text).strip().lower()
    if text == "all":
        return None
    parts = [p.strip() for p in text.replace(",", "+").split("+") if p.strip()]
    if not parts:
        raise UserError("pretrain-splits is empty; use e.g. 'train+val' or 'all'")
    for part in parts:
        if part not in SPLIT_NAMES:
            hint = closest(part, list(SPLIT_NAMES) + ["all"])
            suggestion = f" (did you mean '{hint}'?)" if hint else ""
            raise UserError(
                f"pretrain-splits names an unknown split '{part}'{suggestion}; use train, val and test joined by '+', or 'all'"
            )
    return tuple(dict.fromkeys(parts))


def check_plugin_names(config: PretrainConfig, plugins: Any) -> None:
    """Unknown masker, backbone or dataset-adapter names fail here with "did you mean", before
    torch is imported (a typo's error in well under a second; the registries build nothing). The
    backbone comes last: a timm name is found by listing timm's models, which imports timm."""
    plugins.maskers.get(config.masker)
    if config.data and str(config.data).strip() not in ("", "embedded"):
        from sslkit.data.opening import parse_spec

        plugins.datasets.get(parse_spec(str(config.data))[0])
    plugins.backbones.get(config.backbone)


def validate(config: PretrainConfig) -> PretrainConfig:
    """Reject impossible values with one sentence each, before anything expensive happens."""

    def need(ok: bool, message: str) -> None:
        if not ok:
            raise UserError(message)

    for key, choices in CHOICES.items():
        value = getattr(config, key)
        if value not in choices:
            hint = closest(str(value), list(choices))
            suggestion = f"; did you mean '{hint}'?" if hint else ""
            raise UserError(f"{key.replace('_', '-')} '{value}' is not one of {', '.join(choices)}{suggestion}")
    need(config.epochs >= 1, f"epochs must be at least 1, got {config.epochs}")
    need(config.batch_size >= 1, f"batch-size must be at least 1, got {config.batch_size}")
    need(
        config.image_size >= MIN_IMAGE_SIZE,
        f"image-size must be at least {MIN_IMAGE_SIZE} pixels, got {config.image_size}",
    )
    need(config.in_chans >= 1, f"in-chans must be at least 1, got {config.in_chans}")
    need(math.isfinite(config.lr) and config.lr > 0, f"lr must be a positive number, got {config.lr}")
    need(
        math.isfinite(config.weight_decay) and config.weight_decay >= 0,
        f"weight-decay must be zero or positive, got {config.weight_decay}",
    )
    need(0 < config.gamma <= 1, f"gamma must be in (0, 1], got {config.gamma}")
    need(
        all(0 < m < 1 for m in config.milestones) and list(config.milestones) == sorted(config.milestones),
        f"milestones must be increasing fractions of training between 0 and 1, got {config.milestones}",
    )
    need(
        0 <= config.warmup_epochs < config.epochs,
        f"warmup-epochs must be at least 0 and less than epochs ({config.epochs}), got {config.warmup_epochs}",
    )
    need(config.workers >= 0, f"workers must be zero or positive, got {config.workers}")
    check_threads(config.threads, "threads")
    check_seed(config.seed, "seed")
    check_backbone_options(config.backbone_options)
    check_seed(config.split_seed, "split-seed")
    for key in ("log_every", "log_images_every", "checkpoint_every", "checkpoint_every_steps", "knn_every"):
        need(getattr(config, key) >= 0, f"{key.replace('_', '-')} must be zero (never) or positive, got {getattr(config, key)}")
    need(config.log_every >= 1, f"log-every must be at least 1, got {config.log_every}")
    need(bool(config.masker), "masker must name a masker (see 'sslkit list maskers')")
    need(bool(config.backbone), "backbone must name a backbone (see 'sslkit list backbones')")
    parse_splits(config.pretrain_splits)
    return config


def save_config(config: PretrainConfig, path: str | Path) -> None:
    """Write the resolved config as YAML (a run's record; ``--config`` accepts it back)."""
    import yaml

    from sslkit.fileio import atomic_write_text

    header = "# Resolved configuration of this run (sslkit pretrain --config accepts this file).\n"
    atomic_write_text(Path(path), header + yaml.safe_dump(config.to_dict(), sort_keys=False))


#: Settings added after runs already existed, with the value those runs were trained with: a run
#: whose config.yaml lacks the key resumes (and is fingerprinted) as it was built, not with
#: today's default (a decoder without skips would not even load its checkpoint).
SETTINGS_BEFORE_THEY_EXISTED = {"decoder_skips": "all", "channels_last": False, "encoding": "dense", "target": "pixels"}


def load_run_config(run_dir: str | Path) -> PretrainConfig:
    """The saved config of a run directory (for ``--resume``)."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise UserError(f"'{run_dir}' is not a run directory (no config.yaml)")
    values = load_config_file(path)
    if "decoder_skips" not in values and values.get("backbone") == "paper-unet":
        # made before paper-unet became the authors' exact network: rebuild the earlier variant
        options = dict(values.get("backbone_options") or {})
        options.setdefault("block", "double")
        options.setdefault("bottleneck_kernel", 0)
        values["backbone_options"] = options
    for key, value in SETTINGS_BEFORE_THEY_EXISTED.items():
        values.setdefault(key, value)
    return PretrainConfig.from_mapping(values, f"'{path}'")
