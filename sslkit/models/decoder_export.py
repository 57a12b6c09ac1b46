"""The pretrained decoder, kept beside the exported encoder so a segmentation can start from both.

Context prediction trains an encoder *and* a decoder that maps the encoder's feature pyramid back
to pixels; a lesion segmenter needs exactly such a decoder. Pretraining therefore exports it
(``RUN/decoder/decoder.safetensors`` + ``decoder.json``: the skips it was built with and its
output channels), and :func:`pretrained_decoder_state` reads it back; a run made before the
export existed is read from its last (or weights-only) checkpoint instead (weights only, never code).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from torch import nn

from sslkit.errors import UserError
from sslkit.fileio import atomic_write_path

RUN_DECODER_DIR = "decoder"
WEIGHTS_NAME = "decoder.safetensors"
SPEC_NAME = "decoder.json"
FORMAT = "sslkit-decoder"


def save_decoder(decoder: nn.Module, directory: str | os.PathLike, *, skips: str, out_chans: int) -> Path:
    """Write the decoder's weights and how it was built (``skips``, ``out_chans``)."""
    from sslkit.models.export import save_weights

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT, "format_version": 1, "skips": skips, "out_chans": int(out_chans),
            "class": type(decoder).__name__}
    save_weights(decoder, out / WEIGHTS_NAME, metadata={"format": FORMAT})
    atomic_write_path(out / SPEC_NAME, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=2) + "\n"))
    return out


def pretrained_decoder_state(run_dir: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any]]:
    """(decoder state dict, its spec) from a pretraining run directory.

    Reads ``decoder/`` when the run exported it, else the ``decoder.*`` entries of the run's last
    checkpoint (loaded with ``weights_only``). A folder with neither (an exported encoder alone)
    is one sentence: there is no pretrained decoder to start from.
    """
    run = Path(run_dir).expanduser()
    exported = run / RUN_DECODER_DIR
    if (exported / WEIGHTS_NAME).is_file():
        from safetensors.torch import load_file

        try:
            spec = json.loads((exported / SPEC_NAME).read_text())
            return load_file(str(exported / WEIGHTS_NAME)), spec
        except Exception as error:  # corrupt or truncated
            raise UserError(f"cannot read the pretrained decoder in '{exported}': {error}") from None
    # the full last checkpoint, or the weights-only one a finished compare cell keeps
    # (sslkit.pretraining.kept_checkpoints.WEIGHTS); both hold the predictor's weights under "model"
    checkpoint = next((p for p in (run / "checkpoints" / n for n in ("last.pt", "weights.pt")) if p.is_file()),
                      run / "checkpoints" / "last.pt")
    if checkpoint.is_file():
        from sslkit.safeload import safe_load

        try:
            state = safe_load(checkpoint)
            model = state["model"]
        except Exception as error:
            raise UserError(f"cannot read the decoder from checkpoint '{checkpoint}': {error}") from None
        decoder = {k[len("decoder."):]: v for k, v in model.items() if k.startswith("decoder.")}
        if decoder:
            return decoder, {"format": FORMAT, "skips": None, "out_chans": None, "class": None}
    raise UserError(f"'{run}' holds no pretrained decoder (no {RUN_DECODER_DIR}/{WEIGHTS_NAME} and no "
                    "checkpoints/last.pt): give a pretraining run directory, or use --decoder fresh")


def load_matching(module: nn.Module, state: dict[str, Any], *, skip_prefixes: tuple[str, ...] = ()) -> list[str]:
    """Load the entries of ``state`` that ``module`` has with the same shape (except those under
    ``skip_prefixes``, e.g. a new output layer); returns the module's keys left as initialised."""
    own = module.state_dict()
    usable = {k: v for k, v in state.items()
              if k in own and tuple(v.shape) == tuple(own[k].shape) and not k.startswith(skip_prefixes)}
    module.load_state_dict(usable, strict=False)
    return sorted(set(own) - set(usable))


def output_layer_prefix(module: nn.Module) -> str:
    """The state-dict prefix of ``module``'s last convolution (its output layer), e.g. ``head.3.``."""
    last = None
    for name, child in module.named_modules():
        if isinstance(child, (nn.Conv2d, nn.ConvTranspose2d)):
            last = name
    if last is None:
        raise UserError(f"the decoder ({type(module).__name__}) has no convolution to turn into a segmentation output")
    return f"{last}."
