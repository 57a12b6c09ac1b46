"""What a *finished* pretraining keeps of its checkpoints (``sslkit compare --keep-checkpoints``).

A full ``checkpoints/last.pt`` holds what exact resume needs: the weights, and beside them the
optimiser's moments, the scheduler, the precision scaler, the masker's state and every random
state, about three times the weights (162 MB for resnet18). Once a run has finished and exported
``encoder/`` and ``decoder/``, nothing resumes it again, so a comparison of many cells keeps by
default only a weights-only checkpoint (:data:`WEIGHTS`: the predictor's state dict, its epoch,
step and settings; no optimiser, scheduler, scaler, masker or random state), or none at all.

Only call :func:`keep_checkpoints` on a finished run: an interrupted one needs its full
``last.pt`` to resume. It tolerates being called twice at once on the same run (``--jobs``).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from sslkit.choices import KEEP_CHECKPOINT_CHOICES
from sslkit.errors import UserError
from sslkit.pretraining.train_state import CHECKPOINT_DIR, LAST

#: The weights-only checkpoint of a finished run (never named ``last.pt``: that name means
#: "resumable", and a weights-only file is not).
WEIGHTS = "weights.pt"
WEIGHTS_FORMAT = "sslkit-pretrain-weights"
WEIGHTS_FORMAT_VERSION = 1
#: Everything a full checkpoint holds that a weights-only one keeps.
_KEPT_KEYS = ("epoch", "step", "config", "model")


def weights_only(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """A full checkpoint's weights and where it stood, without the state only resuming needs."""
    return {"format": WEIGHTS_FORMAT, "format_version": WEIGHTS_FORMAT_VERSION,
            **{k: checkpoint[k] for k in _KEPT_KEYS if k in checkpoint}}


def keep_checkpoints(run_dir: str | Path, keep: str) -> None:
    """Leave a finished run's ``checkpoints/`` as ``keep`` says: ``last`` everything, ``weights``
    only :data:`WEIGHTS` (made from ``last.pt``, written atomically before anything is deleted),
    ``none`` no folder at all. A ``last.pt`` that cannot be read is kept as it is."""
    if keep not in KEEP_CHECKPOINT_CHOICES:
        raise UserError(f"--keep-checkpoints must be one of {', '.join(KEEP_CHECKPOINT_CHOICES)}, got '{keep}'")
    folder = Path(run_dir) / CHECKPOINT_DIR
    if keep == "last" or not folder.is_dir():
        return
    if keep == "none":
        shutil.rmtree(folder, ignore_errors=True)
        return
    if (folder / LAST).is_file():  # the newest weights, even over an older weights.pt
        from sslkit.pretraining.checkpoint import atomic_save, load_checkpoint

        try:
            full = load_checkpoint(folder / LAST)
        except Exception:  # gone meanwhile, or unreadable (torch raises many kinds): keep what is there
            return
        atomic_save(weights_only(full), folder / WEIGHTS)
    for path in folder.glob("*.pt"):  # last.pt and any epoch_N.pt: full checkpoints
        if path.name != WEIGHTS:
            path.unlink(missing_ok=True)
