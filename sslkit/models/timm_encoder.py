"""Any timm model as an :class:`~sslkit.models.encoder.Encoder` (``features_only=True``).

``pretrained`` is always False: weights come only from a local file (``weights=FILE``), either
a checkpoint of the full timm model (classifier dropped, first conv adapted to ``in_chans`` by
timm's own loader, exactly as for its hub weights) or an encoder exported by sslkit.
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from typing import Any, Iterator

from sslkit.errors import UserError
from sslkit.models.encoder import Encoder
from sslkit.models.weights import load_state_strict, read_state_file

#: options the user may not set: sslkit owns them. Every option that makes timm read a file or
#: fetch weights is here, so weights reach timm only through sslkit's safe reader
#: (:func:`~sslkit.models.weights.read_state_file`: safetensors, or ``torch.load(weights_only=True)``)
#: and a received ``encoder.json`` cannot hand timm a file to unpickle.
_RESERVED = {"pretrained": "weights come only from a local file: use the option weights=FILE",
             "pretrained_cfg": "weights come only from a local file: use the option weights=FILE",
             "pretrained_cfg_overlay": "weights come only from a local file: use the option weights=FILE",
             "cache_dir": "sslkit never downloads weights: use the option weights=FILE",
             "features_only": "sslkit always builds timm models with features_only=True",
             "in_chans": "use --in-chans"}

#: timm's own file option, read by sslkit's safe reader exactly like ``weights=FILE``
_WEIGHTS_ALIASES = ("checkpoint_path",)


class _LoadReport(logging.Handler):
    """Collects what timm's loader says about a checkpoint. For feature models timm loads
    non-strictly (the classifier is dropped), so its log is the only place a checkpoint of the
    wrong architecture shows up; sslkit turns that into an error instead of a silent partial load."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.missing: list[str] = []
        self.unused: list[str] = []
        self.notes: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        found = re.match(r"(Missing|Unexpected) keys \((.*?)\) ", text)
        if found:
            keys = [k for k in found.group(2).split(", ") if k]
            (self.missing if found.group(1) == "Missing" else self.unused).extend(keys)
        elif record.levelno >= logging.WARNING:
            self.notes.append(text)


@contextlib.contextmanager
def _timm_load_report() -> Iterator[_LoadReport]:
    logger = logging.getLogger("timm.models._builder")
    report, level, propagate = _LoadReport(), logger.level, logger.propagate
    logger.addHandler(report)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield report
    finally:
        logger.removeHandler(report)
        logger.setLevel(level)
        logger.propagate = propagate


def _is_classifier(model_name: str, key: str) -> bool:
    """The classifier is dropped by timm's loader (features need none), so it may be missing."""
    from timm.models import get_pretrained_cfg_value

    heads = get_pretrained_cfg_value(model_name, "classifier") or ()
    heads = (heads,) if isinstance(heads, str) else tuple(heads)
    return any(key.startswith(f"{head}.") for head in heads)


def timm_encoder(model_name: str, *, in_chans: int = 3, weights: str | None = None, **options: Any) -> Encoder:
    """Build timm ``model_name`` as a feature pyramid; ``options`` go to ``timm.create_model``."""
    import timm

    for key, why in _RESERVED.items():
        if key in options:
            raise UserError(f"backbone '{model_name}' does not take the option '{key}': {why}")
    for alias in _WEIGHTS_ALIASES:
        if alias in options:
            file = options.pop(alias)
            if weights is not None:
                raise UserError(f"backbone '{model_name}' got both weights= and {alias}=; give the file once, as weights=FILE")
            weights = file
    state = read_state_file(weights, "weights file") if weights is not None else None
    sslkit_export = state is not None and all(k.startswith("body.") for k in state)
    kwargs: dict[str, Any] = dict(pretrained=False, features_only=True, in_chans=int(in_chans), **options)
    if state is not None and not sslkit_export:
        # timm's loader drops the classifier and adapts the first conv to in_chans; every other
        # weight source is blanked so that nothing can be downloaded.
        kwargs["pretrained"] = True
        kwargs["pretrained_cfg_overlay"] = dict(state_dict=state, file=None, url=None, hf_hub_id=None, source="")
    try:
        with _timm_load_report() as report:
            body = timm.create_model(model_name, **kwargs)
    except TypeError as error:
        raise UserError(f"timm model '{model_name}' rejected an option ({error}); options given: {sorted(options) or 'none'}") from None
    except Exception as error:
        lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
        if state is not None and lines and ("state_dict" in lines[0] or "size mismatch" in lines[0]):
            detail = " ".join(lines[:2])[:300]
            raise UserError(f"weights file '{weights}' does not fit timm model '{model_name}': {detail}") from None
        if state is not None and isinstance(error, KeyError):  # older timm (1.0.25 and before) looks the first conv up by name
            raise UserError(
                f"weights file '{weights}' does not fit timm model '{model_name}': it has no tensor "
                f"{error.args[0] if error.args else error!r}"
            ) from None
        why = f"{type(error).__name__}: {lines[0][:200]}" if lines else type(error).__name__
        raise UserError(
            f"timm model '{model_name}' cannot be used as an encoder (building it with features_only=True "
            f"and options {options or {}} failed: {why})"
        ) from None
    missing = [k for k in report.missing if not _is_classifier(model_name, k)]
    if missing:
        raise UserError(
            f"weights file '{weights}' does not fit timm model '{model_name}': {len(missing)} of the "
            f"model's tensors are not in it (e.g. '{missing[0]}')"
        )
    for note in report.notes:
        warnings.warn(f"weights file '{weights}': {note}", stacklevel=2)
    info: Any = body.feature_info
    fmt = getattr(getattr(body, "output_fmt", "NCHW"), "value", getattr(body, "output_fmt", "NCHW"))
    encoder = Encoder(
        body,
        info.channels(),
        info.reduction(),
        {"timm_model": model_name},
        channels_last_output=str(fmt) == "NHWC",
    )
    if sslkit_export and state is not None:
        load_state_strict(encoder, state, f"weights file '{weights}'")
    return encoder
