"""The methods a comparison measures every other against, shared by ``sslkit compare`` and
:func:`sslkit.evaluation.statistics.compare_predictions`, so the library's default pairs are the
ones ``sslkit compare`` and ``--stats-only`` report. Plain names, no imports: the CLI reads them
at start-up, and :mod:`sslkit.comparison` imports them from here (evaluation never imports it).
"""

from __future__ import annotations

from typing import Iterable

#: The no-pretraining baselines: random weights under the shared protocol, and fine-tuned end to end.
SCRATCH = "scratch"
SCRATCH_FULL = "scratch-full"
BASELINES = (SCRATCH, SCRATCH_FULL)
SIMPLE_MASKERS = ("random", "random-grid")
#: The methods every other is measured against, when present: the baselines, then the simple maskers.
REFERENCES = BASELINES + SIMPLE_MASKERS
#: Segmentation: a method fine-tuned from its pretrained encoder with a fresh decoder is named
#: METHOD + this suffix (it shares METHOD's pretraining).
FRESH_DECODER_SUFFIX = "+fresh-decoder"


def default_references(methods: Iterable[str]) -> tuple[str, ...]:
    """The references of a comparison of ``methods``: the baselines, each fresh-decoder twin among
    ``methods`` (in their order, so the pretrained decoder's worth is tested), then the simple
    maskers; twins come before the maskers, so a masker is read as "pretrained decoder minus fresh
    decoder" rather than the other way round."""
    twins = tuple(dict.fromkeys(m for m in methods if m.endswith(FRESH_DECODER_SUFFIX)))
    return BASELINES + twins + SIMPLE_MASKERS
