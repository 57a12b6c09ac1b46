"""Defaults that layers which may not import each other share, each defined once (no torch here).

Every other default is the field default of its config dataclass
(:class:`~sslkit.pretraining.config.PretrainConfig`,
:class:`~sslkit.finetuning.config.FinetuneConfig`, :class:`~sslkit.comparison.config.CompareConfig`),
which the commands read. These two are needed below those dataclasses as well: fine-tuning
builds a from-scratch baseline and falls back to an image size without a pretraining run to
inherit them from, but may not import the pretraining package (a test checks the layering), and
the data loader and k-NN helpers sit below every engine.
"""

from __future__ import annotations

#: The encoder backbone: pretraining's default, and the network of a from-scratch baseline
#: fine-tuned without a pretraining run to copy it from.
BACKBONE = "resnet18"
#: Square input size in pixels: pretraining's default, and what fine-tuning, evaluation and the
#: data loader use when no pretraining run says otherwise.
IMAGE_SIZE = 64
#: The decoder skips of a segmenter with no pretraining run to mirror (a U-Net with every skip),
#: and so of every pretraining `compare --task segmentation` runs, whose scratch cells must match.
SEGMENTATION_DECODER_SKIPS = "all"
