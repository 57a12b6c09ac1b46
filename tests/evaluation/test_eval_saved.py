"""sslkit.finetuning.saved: scoring a saved classifier or an encoder on disk."""

from __future__ import annotations

import pytest

from sslkit.errors import UserError


def test_scoring_what_is_on_disk_takes_a_device_the_caller_resolved(tmp_path):
    """sslkit.evaluation does not import the engine, so ``auto`` is resolved by the command;
    a library caller passing ``auto`` gets one sentence, before anything is read."""
    from sslkit.finetuning.saved import evaluate_saved_classifier, knn_for_encoder

    with pytest.raises(UserError, match="device 'auto' must be resolved"):
        evaluate_saved_classifier(tmp_path / "missing", device="auto")
    with pytest.raises(UserError, match="device 'auto' must be resolved"):
        knn_for_encoder(tmp_path / "missing", device="auto")
