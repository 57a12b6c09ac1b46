"""Encoders, decoders and the predictor (encoder + decoder) used for context prediction.

- :class:`Encoder`: a feature pyramid (``forward(x) -> list of maps``, shallow to deep) with
  ``feature_channels``, ``reductions`` and ``spec``; backbones (plugins) build them.
- :func:`build_encoder` / :func:`build_predictor`: by backbone name, through the registry.
- :class:`UNetDecoder`: the generic decoder; a backbone may offer its own (``make_decoder``).
- :func:`save_encoder` / :func:`load_encoder`: the encoder on its own (safetensors + JSON).
"""

from sslkit.models.decoder import UNetDecoder
from sslkit.models.encoder import Encoder
from sslkit.models.export import load_encoder, read_encoder_spec, save_encoder
from sslkit.models.flops import count_flops, count_parameters
from sslkit.models.predictor import Predictor, build_decoder, build_encoder, build_predictor, check_input_size
from sslkit.models.weights import load_state_strict, read_state_file

__all__ = [
    "Encoder",
    "Predictor",
    "UNetDecoder",
    "build_decoder",
    "build_encoder",
    "build_predictor",
    "check_input_size",
    "count_flops",
    "count_parameters",
    "load_encoder",
    "load_state_strict",
    "read_encoder_spec",
    "read_state_file",
    "save_encoder",
]
