"""The machinery every engine (pretraining, fine-tuning, comparison) shares.

- :mod:`~sslkit.engine.device`: the device and numeric precision a run uses.
- :mod:`~sslkit.engine.run_lock`: one writer per output folder.
- :mod:`~sslkit.engine.progress`: the progress display.

Importing this package is cheap; the modules import torch when used.
"""
