"""sslkit from Python: what ``sslkit pretrain``, ``finetune`` and ``compare`` do, as functions.

::

    import sslkit

    run = sslkit.pretrain(masker="random", epochs=1, out="runs/quick")
    run                                   # PretrainResult(run_dir='runs/quick', epochs=1, loss=0.0977, ...)
    result = sslkit.finetune(encoder=run.run_dir, protocol="linear", labels=100)
    result                                # FinetuneResult(out=None, seed=0, test: accuracy 0.620, ...)
    encoder = sslkit.load_encoder(run.run_dir)   # the trained encoder, an nn.Module

Each function takes either keyword settings, named like the command's options with ``_`` for
``-`` (``batch_size=16``, ``masker_options={"size": 0.3}``), or one config object
(:class:`~sslkit.pretraining.config.PretrainConfig`, :class:`~sslkit.finetuning.config.FinetuneConfig`,
:class:`~sslkit.comparison.config.CompareConfig`). Those dataclasses are the one place the
defaults live: the command line reads its defaults from them too (a test checks every option),
so a script and a shell command with the same settings do the same thing. Keywords read better
for a one-off call; a config object is the form to keep, vary with :func:`dataclasses.replace`
and pass around. Bad settings raise :class:`~sslkit.errors.UserError` with the same one sentence
the command prints.

``import sslkit`` stays cheap (no torch): these functions are imported on first use.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sslkit.errors import UserError
from sslkit.registry import closest

if TYPE_CHECKING:  # pragma: no cover - types only
    from torch import nn

    from sslkit.comparison.run import CompareResult
    from sslkit.comparison.config import CompareConfig
    from sslkit.pretraining.config import PretrainConfig
    from sslkit.finetuning.config import FinetuneConfig
    from sslkit.finetuning.run import FinetuneResult
    from sslkit.plugins import Plugins


@dataclass(frozen=True)
class PretrainResult:
    """Where a pretraining run wrote its encoder, and its losses (``metrics``: every final figure)."""

    run_dir: str
    encoder: str
    """The exported encoder's directory (:func:`load_encoder` and ``finetune(encoder=...)`` take it,
    or ``run_dir`` itself)."""
    epochs: int
    loss: float | None
    """The last epoch's mean masked reconstruction loss."""
    first_epoch_loss: float | None
    metrics: dict[str, Any] = field(default_factory=dict, repr=False)


def _config(config_class: type, config: Any, settings: dict[str, Any], what: str) -> Any:
    """``config`` as given, or ``config_class(**settings)`` with unknown names refused in one sentence."""
    if config is not None:
        if settings:
            raise UserError(f"{what}: give either a {config_class.__name__} or keyword settings, not both")
        if not isinstance(config, config_class):
            raise UserError(f"{what}: expected a {config_class.__name__}, got {type(config).__name__}")
        return config
    known = [f.name for f in dataclasses.fields(config_class)]
    for key in settings:
        if key not in known:
            hint = closest(key, known)
            suggestion = f"; did you mean '{hint}'?" if hint else ";"
            raise UserError(f"{what} has no setting '{key}'{suggestion} its settings: {', '.join(known)}")
    return config_class(**settings)


def pretrain(config: PretrainConfig | None = None, *, resume: str | Path | None = None,
             plugins: Plugins | None = None, **settings: Any) -> PretrainResult:
    """Pretrain an encoder, as ``sslkit pretrain`` does; ``resume=RUN_DIR`` continues a run with
    its saved settings (then only the settings ``--resume`` accepts may be given)."""
    from sslkit.pretraining.config import PretrainConfig, validate
    from sslkit.pretraining.run import resume_config, run_pretraining

    if resume is not None:
        if config is not None:
            raise UserError("sslkit.pretrain(): a resumed run keeps its saved configuration; give settings, not a config")
        run_config = resume_config(resume, settings)
    elif config is not None:
        run_config = validate(_config(PretrainConfig, config, settings, "sslkit.pretrain()"))
    else:
        run_config = validate(PretrainConfig.from_mapping(settings, "sslkit.pretrain()"))
    final = run_pretraining(run_config, plugins, resume=resume)
    return PretrainResult(run_dir=final["run_dir"], encoder=final["encoder"], epochs=final["epochs"],
                          loss=final.get("loss"), first_epoch_loss=final.get("first_epoch_loss"), metrics=final)


def finetune(config: FinetuneConfig | None = None, *, plugins: Plugins | None = None,
             **settings: Any) -> FinetuneResult:
    """Fine-tune and score a classifier on an encoder, as ``sslkit finetune`` does (one seed)."""
    from sslkit.finetuning.config import FinetuneConfig
    from sslkit.finetuning.run import run_finetuning

    return run_finetuning(_config(FinetuneConfig, config, settings, "sslkit.finetune()"), plugins)


def compare(config: CompareConfig | None = None, *, plugins: Plugins | None = None, quiet: bool = True,
            **settings: Any) -> CompareResult:
    """Pretrain each masker and fine-tune every cell, as ``sslkit compare`` does; finished cells
    in ``out`` are reused. ``quiet=False`` prints what each cell does."""
    from sslkit.comparison.run import run_compare
    from sslkit.comparison.config import CompareConfig

    return run_compare(_config(CompareConfig, config, settings, "sslkit.compare()"), plugins, quiet=quiet,
                       say=(lambda text: None) if quiet else print)


def load_encoder(path: str | Path, plugins: Plugins | None = None) -> nn.Module:
    """The trained encoder (an ``nn.Module`` returning a list of feature maps, shallow to deep)
    from a pretraining run directory, an exported encoder directory, or its ``encoder.json``."""
    from sslkit.models.export import load_encoder as load

    return load(path, plugins)
