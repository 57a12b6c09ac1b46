"""sslkit: plugin-based self-supervised pretraining for medical imaging.

The core orchestrates; every concrete masker, backbone and dataset adapter is a plugin
(see :mod:`sslkit.hookspecs`).
"""

__version__ = "0.1.0"
