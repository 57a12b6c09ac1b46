"""Training engines: pretraining, fine-tuning, comparison; checkpoints, logging.

- :mod:`~sslkit.engine.config`: :class:`PretrainConfig`, YAML files, command-line precedence, validation.
- :mod:`~sslkit.engine.pretrain`: :func:`run_pretraining`, the loop behind ``sslkit pretrain``.
- :mod:`~sslkit.engine.checkpoint`: atomic checkpoints and the random states exact resume needs.
- :mod:`~sslkit.engine.device` / :mod:`~sslkit.engine.distributed`: device, precision;
  multi-process training (torchrun, DDP).
- :mod:`~sslkit.engine.schedules`: learning-rate schedules (MultiStep, cosine, warm-up).
- :mod:`~sslkit.engine.run_log`, :mod:`~sslkit.engine.image_grid`, :mod:`~sslkit.engine.progress`:
  TensorBoard, metrics files and the progress display.

Importing this package is cheap; the modules import torch when used.
"""
