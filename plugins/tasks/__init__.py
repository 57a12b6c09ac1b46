"""Built-in downstream tasks: ``classification`` and ``segmentation``.

Registered by reference exactly as a third-party task would be (``sslkit list tasks`` imports no
torch); a task is a :class:`sslkit.finetuning.tasks.Task` subclass.
"""

from __future__ import annotations

from sslkit.hookspecs import hookimpl


@hookimpl
def register_tasks(register):
    register("classification", "sslkit.finetuning.classification:ClassificationTask",
             "each image's class from the encoder's deepest map (accuracy, macro F1, AUROC, ECE)")
    register("segmentation", "sslkit_plugins.tasks.segmentation:SegmentationTask",
             "each image's binary lesion mask, encoder + (pretrained or fresh) decoder (Dice, IoU, HD95)")
