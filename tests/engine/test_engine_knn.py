"""k-NN health check during pretraining (--knn-every): logged, and invisible to training."""

import json

import torch

from sslkit.pretraining.config import PretrainConfig
from sslkit.pretraining.run import run_pretraining


def _run(tmp_path, name, tiny_options, **extra):
    config = PretrainConfig.from_mapping({**tiny_options, "epochs": 2, "out": str(tmp_path / name), **extra})
    run_pretraining(config)
    return tmp_path / name


def test_knn_every_epoch_is_logged_and_does_not_change_training(tmp_path, tiny_options):
    plain = _run(tmp_path, "plain", tiny_options)
    with_knn = _run(tmp_path, "knn", tiny_options, knn_every=1)

    epochs = json.loads((with_knn / "metrics.json").read_text())["epochs"]
    assert len(epochs) == 2
    for row in epochs:
        assert 0.0 <= row["knn_accuracy"] <= 1.0 and "knn_macro_f1" in row
    assert "knn_accuracy" not in json.loads((plain / "metrics.json").read_text())["epochs"][0]

    a = torch.load(plain / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)["model"]
    b = torch.load(with_knn / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)["model"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_knn_every_is_skipped_for_data_without_labels(tmp_path, tiny_options, tiny_npz):
    import numpy as np

    arrays = dict(np.load(tiny_npz))
    unlabelled = {k: v for k, v in arrays.items() if not k.endswith("_labels") and k != "classes"}
    path = tmp_path / "unlabelled.npz"
    np.savez(path, **unlabelled)
    run = _run(tmp_path, "nolabels", {**tiny_options, "data": f"npz:{path}"}, knn_every=1)
    assert "knn_accuracy" not in json.loads((run / "metrics.json").read_text())["epochs"][0]
