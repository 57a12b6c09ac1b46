"""Fine-tuning: a pretrained (or random) encoder trained on few labels for a downstream task.

- :mod:`~sslkit.finetuning.config`: :class:`FinetuneConfig`, every setting and its default.
- :mod:`~sslkit.finetuning.run`: :func:`run_finetuning` behind ``sslkit finetune``.
- :mod:`~sslkit.finetuning.protocols`: what trains (frozen probe, full fine-tuning, the paper's head).
- :mod:`~sslkit.finetuning.classifier`: the encoder plus head, trained and saved.
- :mod:`~sslkit.finetuning.loop`: the epoch loop and the choice of the best epoch on validation.
- :mod:`~sslkit.finetuning.labels`: which labelled examples a budget draws.
- :mod:`~sslkit.finetuning.fold_runs`: the same over grouped cross-validation folds.
- :mod:`~sslkit.finetuning.files` / :mod:`~sslkit.finetuning.saved`: what a run writes and reads back.

Never imports :mod:`sslkit.comparison` (a test checks the layering).
"""
