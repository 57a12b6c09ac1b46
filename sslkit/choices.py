"""The fixed choices of the command-line options, in a module without torch.

``sslkit --help`` (and every command's ``--help``) builds its options from these tuples; keeping
them here, rather than beside the torch code that acts on them, keeps the CLI's start-up free of
the seconds a torch import costs. The modules that act on a choice import it from here.
"""

from __future__ import annotations

#: Autocast precisions (see :mod:`sslkit.engine.device`); ``auto`` resolves to one of them.
PRECISIONS = ("fp32", "bf16", "fp16")
PRECISION_CHOICES = ("auto", *PRECISIONS)
#: ``--device``.
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
#: ``--decoder-skips`` (see :mod:`sslkit.models.decoder`); ``auto`` means :data:`AUTO_SKIPS`
#: wherever the decoder can drop its skips.
SKIP_CHOICES = ("all", "deepest", "none")
SKIP_SETTINGS = ("auto", *SKIP_CHOICES)
AUTO_SKIPS = "none"
#: ``--optimizer`` (see :mod:`sslkit.optimizers`).
OPTIMIZERS = ("adam", "adamw")

#: ``--encoding``: how the encoder sees a masked image (see ``sslkit.models.sparse``).
ENCODINGS = ("dense", "sparse")
#: ``--target``: raw pixels, or pixels normalised per cell (MAE's norm_pix_loss).
TARGETS = ("pixels", "norm-pixels")


#: ``--task``'s default: the label of each image.
DEFAULT_TASK = "classification"
TASK_HELP = ("What fine-tuning learns: 'classification' (each image's class) or 'segmentation' (the binary lesion "
             "mask; images without a lesion are negatives), or a task a plugin registers ('sslkit list tasks').")
#: ``--decoder`` (segmentation): start from the pretraining's decoder, or a freshly initialised one
#: of the same architecture.
DECODER_CHOICES = ("pretrained", "fresh")
DECODER_HELP = ("Segmentation: 'pretrained' starts the decoder from the pretraining run's (its output layer new), "
                "'fresh' from random weights of the same architecture. From scratch it is always fresh.")

#: ``compare --keep-checkpoints``: what a finished pretraining keeps of its checkpoints (see
#: :mod:`sslkit.pretraining.kept_checkpoints`); an unfinished one always keeps its full ``last.pt``.
KEEP_CHECKPOINT_CHOICES = ("weights", "last", "none")
DEFAULT_KEEP_CHECKPOINTS = "weights"

#: The splits a data set has, in order (``--split``, ``--pretrain-splits``; see :mod:`sslkit.data.records`).
SPLIT_NAMES = ("train", "val", "test")
#: ``--bad-images``: what opening data does with an unreadable image (see :mod:`sslkit.data.opening`).
BAD_IMAGE_POLICIES = ("skip", "error")
