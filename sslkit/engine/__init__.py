"""Training engines: pretraining, fine-tuning, comparison; checkpoints, logging.

- :mod:`~sslkit.engine.config`: :class:`PretrainConfig`, YAML files, command-line precedence, validation.
- :mod:`~sslkit.engine.pretrain`: :func:`run_pretraining`, the run behind ``sslkit pretrain``, from
  :mod:`~sslkit.engine.run_parts` (``build_run``), :mod:`~sslkit.engine.train_state` (counters and
  the checkpoint), :mod:`~sslkit.engine.train_loop` (``train_one_epoch``) and
  :mod:`~sslkit.engine.callbacks` (logging, checkpoints, k-NN, Ctrl-C), ordered in one list.
- :mod:`~sslkit.engine.checkpoint`: atomic checkpoints and the random states exact resume needs.
- :mod:`~sslkit.engine.device` / :mod:`~sslkit.engine.distributed`: device, precision;
  multi-process training (torchrun, DDP).
- :mod:`~sslkit.engine.schedules`: learning-rate schedules (MultiStep, cosine, warm-up).
- :mod:`~sslkit.engine.run_log`, :mod:`~sslkit.engine.image_grid`, :mod:`~sslkit.engine.progress`:
  TensorBoard, metrics files and the progress display.

Importing this package is cheap; the modules import torch when used.
"""
