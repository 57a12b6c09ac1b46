"""Pretraining: context prediction (mask, reconstruct) behind ``sslkit pretrain``.

- :mod:`~sslkit.pretraining.config`: :class:`PretrainConfig`, YAML files, command-line precedence, validation.
- :mod:`~sslkit.pretraining.run`: :func:`run_pretraining`, from :mod:`~sslkit.pretraining.run_parts`
  (``build_run``), :mod:`~sslkit.pretraining.train_state` (counters and the checkpoint),
  :mod:`~sslkit.pretraining.train_loop` (``train_one_epoch``) and :mod:`~sslkit.pretraining.callbacks`
  (logging, checkpoints, k-NN, Ctrl-C), ordered in one list.
- :mod:`~sslkit.pretraining.step` / :mod:`~sslkit.pretraining.loss` / :mod:`~sslkit.pretraining.soft_mask`:
  one optimisation step, the masked reconstruction loss, soft (learned) masks.
- :mod:`~sslkit.pretraining.checkpoint`: atomic checkpoints and the random states exact resume needs.
- :mod:`~sslkit.pretraining.distributed` / :mod:`~sslkit.pretraining.launch`: multi-process training
  (torchrun, DDP).
- :mod:`~sslkit.pretraining.schedules`: learning-rate schedules (MultiStep, cosine, warm-up).
- :mod:`~sslkit.pretraining.run_log`, :mod:`~sslkit.pretraining.image_grid`: TensorBoard and metrics files.

Importing this package is cheap; the modules import torch when used. It never imports
:mod:`sslkit.finetuning` or :mod:`sslkit.comparison` (a test checks the layering).
"""
