"""What a pretraining run directory holds, as fine-tuning and evaluation read it.

Fine-tuning (:mod:`sslkit.finetuning.run`) and scoring what is on disk
(:mod:`sslkit.finetuning.saved`) both accept a pretraining run directory or an exported encoder,
and both default their data settings to the run's, so the images pretraining held out stay held
out. Both read the directory through these helpers, which is why they live outside the engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sslkit.defaults import IMAGE_SIZE
from sslkit.errors import UserError


def locate_encoder(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """(exported encoder dir or file, the pretraining config.yaml or {}) from what users pass."""
    import yaml

    from sslkit.yaml_data import load_yaml

    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"encoder '{path}' does not exist (give a pretraining run dir or an exported encoder)")
    run_config: dict[str, Any] = {}
    if path.is_dir() and (path / "encoder" / "encoder.json").is_file():
        config_file = path / "config.yaml"
        if config_file.is_file():
            try:
                run_config = load_yaml(config_file.read_text(encoding="utf-8")) or {}
            except (yaml.YAMLError, UnicodeDecodeError) as error:
                raise UserError(f"'{config_file}' is not valid YAML ({error})") from None
        return path / "encoder", run_config if isinstance(run_config, dict) else {}
    if path.is_dir() and not (path / "encoder.json").is_file():
        raise UserError(f"'{path}' holds no encoder (no encoder/encoder.json: has its pretraining finished?)")
    return path, {}


def inherit_data_settings(
    run_config: dict[str, Any],
    data: str | None,
    data_options: dict[str, Any] | None,
    split_seed: int | None,
    image_size: int | None,
) -> tuple[str | None, dict[str, Any], int, int]:
    """(data, adapter options, split seed, image size): what the user gave, else the pretraining
    run's, so its held-out test images stay held out. The run's adapter options come along only
    with the run's data."""
    options = dict(data_options or {})
    if data is None:
        data = run_config.get("data")
        options = options or dict(run_config.get("data_options") or {})
    seed = split_seed if split_seed is not None else int(run_config.get("split_seed", 0))
    size = image_size if image_size is not None else int(run_config.get("image_size", IMAGE_SIZE))
    return data, options, seed, size
