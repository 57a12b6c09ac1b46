"""Exporting a trained encoder on its own, and loading it back anywhere.

An export is a directory with ``encoder.safetensors`` (the weights) and ``encoder.json`` (how to
rebuild the module: backbone name, timm model, ``in_chans``, options, plus feature channels and
the sslkit version for humans). Loading rebuilds the encoder through the backbones registry and
loads the weights strictly, so fine-tuning and users' own code get exactly what was trained.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from torch import nn

from sslkit.errors import UserError, first_line
from sslkit.fileio import atomic_write_path

WEIGHTS_NAME = "encoder.safetensors"
SPEC_NAME = "encoder.json"
FORMAT = "sslkit-encoder"
FORMAT_VERSION = 1


def save_encoder(encoder: nn.Module, directory: str | os.PathLike) -> Path:
    """Write ``encoder.safetensors`` + ``encoder.json`` into ``directory``; returns the directory."""
    from safetensors.torch import save_model

    from sslkit import __version__
    from sslkit.models.flops import count_parameters

    spec = dict(getattr(encoder, "spec", None) or {})
    if "backbone" not in spec or "in_chans" not in spec:
        raise ValueError("encoder.spec lacks 'backbone'/'in_chans'; build it with sslkit.models.build_encoder")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "backbone": spec["backbone"],
        "timm_model": spec.get("timm_model"),
        "in_chans": int(spec["in_chans"]),
        "options": spec.get("options", {}),
        "feature_channels": list(getattr(encoder, "feature_channels")),
        "reductions": list(getattr(encoder, "reductions")),
        "num_parameters": count_parameters(encoder),
        "sslkit_version": __version__,
    }
    text = json.dumps(meta, indent=2, sort_keys=True) + "\n"
    atomic_write_path(out / WEIGHTS_NAME, lambda tmp: save_model(encoder, tmp, metadata={"format": FORMAT}))
    atomic_write_path(out / SPEC_NAME, lambda tmp: Path(tmp).write_text(text))
    return out


#: Where a pretraining run directory keeps its exported encoder.
RUN_ENCODER_DIR = "encoder"


def _locate(path: Path) -> tuple[Path, Path]:
    if path.is_dir():
        if not (path / SPEC_NAME).is_file() and (path / RUN_ENCODER_DIR / SPEC_NAME).is_file():
            path = path / RUN_ENCODER_DIR  # a pretraining run directory, as every command accepts
        return path / SPEC_NAME, path / WEIGHTS_NAME
    if path.suffix == ".json":
        return path, path.with_suffix(".safetensors")
    if path.suffix == ".safetensors":
        return path.with_suffix(".json"), path
    raise UserError(f"'{path}' is not an exported encoder: give its directory or its {SPEC_NAME}/{WEIGHTS_NAME}")


def read_encoder_spec(path_or_dir: str | os.PathLike) -> dict[str, Any]:
    """The parsed ``encoder.json`` of an export (missing/corrupt -> UserError naming the file)."""
    spec_path, _ = _locate(Path(path_or_dir).expanduser())
    if not spec_path.is_file():
        raise UserError(f"encoder description '{spec_path}' does not exist")
    try:
        meta = json.loads(spec_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"encoder description '{spec_path}' is not valid JSON ({error})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("backbone"), str) or not isinstance(meta.get("in_chans"), int):
        raise UserError(f"encoder description '{spec_path}' lacks the backbone name or in_chans")
    if not isinstance(meta.get("options", {}), dict):
        raise UserError(f"encoder description '{spec_path}' has options that are not a mapping")
    if "in_chans" in meta.get("options", {}):
        raise UserError(f"encoder description '{spec_path}' sets in_chans twice (as a field and as an option)")
    return meta


def load_encoder(path_or_dir: str | os.PathLike, plugins: Any = None) -> nn.Module:
    """Rebuild and load an encoder written by :func:`save_encoder`: give its directory, its
    ``encoder.json`` / ``encoder.safetensors``, or the pretraining run directory holding it."""
    from safetensors.torch import load_file

    from sslkit.models.predictor import build_encoder
    from sslkit.models.weights import load_state_strict

    meta = read_encoder_spec(path_or_dir)
    _, weights_path = _locate(Path(path_or_dir).expanduser())
    if not weights_path.is_file():
        raise UserError(f"encoder weights '{weights_path}' do not exist")
    try:
        state = load_file(str(weights_path), device="cpu")
    except Exception as error:
        first = first_line(error)
        raise UserError(f"encoder weights '{weights_path}' cannot be read ({first})") from None
    encoder = build_encoder(meta["backbone"], in_chans=meta["in_chans"], plugins=plugins, **meta.get("options", {}))
    load_state_strict(encoder, state, f"encoder weights '{weights_path}'")
    return encoder


def save_weights(module: nn.Module, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> Path:
    """``module``'s parameters and buffers (on the CPU) as one safetensors file, written atomically:
    the part a saved model keeps beside its encoder (a classifier's head, a decoder)."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    return atomic_write_path(Path(path), lambda tmp: save_file(state, tmp, metadata=metadata))


def load_weights(module: nn.Module, path: str | os.PathLike, what: str) -> None:
    """Load :func:`save_weights`' file into ``module`` strictly; a missing, corrupt or mismatched
    file is one sentence naming ``what`` and the file."""
    from safetensors.torch import load_file

    try:
        module.load_state_dict(load_file(str(path)))
    except Exception as error:  # missing, corrupt or mismatched file
        raise UserError(f"cannot load {what} '{path}': {error}") from None
