"""A downstream task written as a user would: one file, one registration (the README's example).

``lesion-area`` regresses the share of each image the lesion covers from the encoder's pooled
deepest map; its figure is the absolute error per image. Nothing in sslkit names it: finetune,
compare and evaluate run it through the task seam alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sslkit.evaluation.metrics import Metrics
from sslkit.evaluation.statistics import ImageScores
from sslkit.finetuning.tasks import Task
from sslkit.hookspecs import hookimpl


class AreaModel(nn.Module):
    def __init__(self, encoder: nn.Module, frozen: bool):
        super().__init__()
        self.encoder, self.frozen = encoder, frozen
        self.head = nn.Linear(int(encoder.feature_channels[-1]), 1)
        if frozen:
            encoder.requires_grad_(False)

    def forward(self, images):
        with torch.set_grad_enabled(not self.frozen and torch.is_grad_enabled()):
            deepest = self.encoder(images)[-1]
        return torch.sigmoid(self.head(deepest.mean(dim=(2, 3)))[:, 0])


class LesionArea(Task):
    name, target = "lesion-area", "lesion"
    metrics, selection_metric = ("abs_error",), "neg_abs_error"
    lower_is_better = frozenset({"abs_error"})
    protocols, model_file, model_dir = ("full", "frozen"), "area.json", "area-model"

    def build_model(self, encoder, config, records, *, run_config, plugins=None):
        return AreaModel(encoder, frozen=config.protocol == "frozen")

    def loss(self, outputs, batch, state):
        return F.mse_loss(outputs, batch["lesion"].float().mean(dim=(1, 2, 3)))

    @torch.no_grad()
    def predict(self, model, loader, recs, records, device):
        model.eval()
        ids, share, predicted = [], [], []
        for batch in loader:
            predicted.append(model(batch["image"].to(device)).cpu())
            share.append(batch["lesion"].float().mean(dim=(1, 2, 3)))
            ids += [records.image_id(recs[int(i)]) for i in batch["index"]]
        share_, predicted_ = torch.cat(share).numpy(), torch.cat(predicted).numpy()
        return {"ids": ids, "share": share_.tolist(), "predicted": predicted_.tolist(),
                "abs_error": np.abs(share_ - predicted_).tolist()}

    def score(self, predictions, class_names):
        error = float(np.mean(predictions["abs_error"]))
        return Metrics({"abs_error": error, "neg_abs_error": -error}, [], {}, ["lesion"], len(predictions["ids"]))

    def paired(self, predictions):
        return ImageScores(list(predictions["ids"]), {"abs_error": np.asarray(predictions["abs_error"])},
                           np.asarray(predictions["share"]), predictions.get("groups"))

    def pool_columns(self):
        return ("share", "predicted", "abs_error")

    def save_model(self, model, directory, meta):
        from safetensors.torch import save_file

        from sslkit.models import save_encoder

        directory = Path(directory)
        save_encoder(model.encoder, directory / "encoder")
        save_file({k: v.contiguous() for k, v in model.head.state_dict().items()}, str(directory / "head.safetensors"))
        (directory / self.model_file).write_text(json.dumps({"protocol": meta.get("protocol", "full"), **meta}, default=str))
        return directory

    def load_model(self, directory, plugins=None):
        from safetensors.torch import load_file

        from sslkit.models import load_encoder

        info = json.loads((Path(directory) / self.model_file).read_text())
        model = AreaModel(load_encoder(Path(directory) / "encoder", plugins=plugins), frozen=False)
        model.head.load_state_dict(load_file(str(Path(directory) / "head.safetensors")))
        return model.eval(), info

    def write_predictions(self, out, predictions, records, *, writer=None):
        rows = self.prediction_rows(predictions, records.class_names)
        lines = ["image,share,predicted,abs_error"] + [",".join(str(r[c]) for c in ("image", "share", "predicted",
                                                                                  "abs_error")) for r in rows]
        (Path(out) / "predictions.csv").write_text("\n".join(lines) + "\n")
        return [Path(out) / "predictions.csv"]

    def prediction_rows(self, predictions, class_names):
        return [{"image": image, **{c: predictions[c][i] for c in self.pool_columns()}}
                for i, image in enumerate(predictions["ids"])]


@hookimpl
def register_tasks(register):
    register("lesion-area", LesionArea, "the share of each image the lesion covers")
