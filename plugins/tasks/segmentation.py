"""The ``segmentation`` task: each image's binary lesion mask (``batch["lesion"]``).

Images without a lesion (BUSI's ``normal`` class) are negatives: their mask is empty and a correct
answer leaves it empty. The model is the encoder and a decoder of the pretraining's architecture,
ending in one logit per pixel: with ``--decoder pretrained`` the decoder starts from the weights
pretraining trained (context prediction trains a decoder too; only its output layer is new), with
``--decoder fresh`` (and always from scratch) from random weights, so the two differ by the weights
alone. The loss is soft Dice + binary cross-entropy; the figures are per-image Dice, IoU and HD95
(:mod:`sslkit.evaluation.segmentation_metrics`), averaged over the images, with paired bootstrap
intervals per image in ``compare``; ``dice_lesion`` is the Dice over the images with a lesion only
and ``empty_correct`` the share of lesion-free images left empty. The best epoch
(``--select best-val``) has the best validation Dice.

A run writes ``segmenter/`` (reloadable by ``sslkit evaluate``), ``predictions.csv`` (per-image
figures), ``masks/`` (each test image's predicted mask as a PNG), ``overlay.png`` (a contact sheet:
truth green, prediction red, overlap yellow) and TensorBoard images of input | truth | prediction.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from sslkit.defaults import SEGMENTATION_DECODER_SKIPS
from sslkit.errors import UserError
from sslkit.evaluation.metrics import Metrics
from sslkit.evaluation.segmentation_metrics import LOWER_IS_BETTER, SEGMENTATION_METRICS
from sslkit.evaluation.statistics import ImageScores
from sslkit.finetuning.downstream_model import DownstreamModel
from sslkit.finetuning.tasks import Task

SEGMENTER_JSON = "segmenter.json"
DECODER_FILE = "decoder.safetensors"
ENCODER_SUBDIR = "encoder"
#: A pixel is lesion when its probability exceeds this.
THRESHOLD = 0.5
#: Per-image columns of the predictions (folds concatenate them; compare's CSV writes them).
PER_IMAGE = ("labels", "dice", "iou", "hd95", "lesion_pixels", "predicted_pixels")


class Segmenter(DownstreamModel):
    """encoder -> feature pyramid -> decoder -> one lesion logit per pixel (N, 1, H, W); under a
    frozen protocol the encoder neither trains nor updates its BatchNorm statistics."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, protocol: str, decoder_skips: str):
        super().__init__(encoder, protocol)
        self.decoder = decoder
        self.decoder_skips = decoder_skips

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.features(images), tuple(images.shape[-2:]))



def decoder_skips(run_config: dict[str, Any], exported: dict[str, Any] | None) -> str:
    """The decoder's skips: the pretraining's decoder's (its export's, else its run's config; a run
    made before the setting existed had every skip), so ``--decoder fresh`` differs from
    ``pretrained`` by the weights alone; without a run (an exported encoder, from scratch) a U-Net
    with every skip, the segmentation decoder. ``compare --task segmentation`` pretrains with every
    skip too, so its scratch cells have the very architecture its pretrained cells have."""
    from sslkit.pretraining.config import SETTINGS_BEFORE_THEY_EXISTED

    if exported and exported.get("skips"):
        return str(exported["skips"])
    if run_config:
        return str(run_config.get("decoder_skips", SETTINGS_BEFORE_THEY_EXISTED["decoder_skips"]))
    return SEGMENTATION_DECODER_SKIPS


def new_segmenter(encoder: nn.Module, protocol: str, skips: str) -> Segmenter:
    from sslkit.models.predictor import build_decoder

    return Segmenter(encoder, build_decoder(encoder, 1, skips), protocol, skips)


class SegmentationTask(Task):
    name: ClassVar[str] = "segmentation"
    target: ClassVar[str] = "lesion"
    metrics: ClassVar[tuple[str, ...]] = SEGMENTATION_METRICS
    extra_metrics: ClassVar[tuple[str, ...]] = ("dice_lesion", "empty_correct")
    lower_is_better: ClassVar[frozenset[str]] = LOWER_IS_BETTER
    selection_metric: ClassVar[str] = "dice"
    protocols: ClassVar[tuple[str, ...]] = ("full", "frozen")
    model_file: ClassVar[str] = SEGMENTER_JSON
    model_dir: ClassVar[str] = "segmenter"
    validate_every_epoch: ClassVar[bool] = False  # with --select last, validation once, after training

    def check_data(self, dataset) -> None:
        if not getattr(dataset, "has_lesion_masks", False):
            raise UserError(f"dataset '{dataset.name}' has no lesion masks, which --task segmentation learns; "
                            "use data with masks (e.g. BUSI, LGG, a folder with mask files)")

    def check_records(self, records, dataset_name: str) -> None:
        """Every image trained or scored on needs its mask: one without would silently count as a
        lesion-free negative (and a test split without masks would score an empty prediction 1.0)."""
        for role, recs in (("labelled training", records.labelled), ("validation", records.val),
                           ("test", records.test)):
            missing = sum(1 for r in recs if getattr(r, "lesion", None) is None)
            if missing:
                raise UserError(f"{missing} of the {len(recs)} {role} images of '{dataset_name}' have no lesion mask; "
                                "--task segmentation needs a mask for every image (an empty one for images without "
                                "a lesion): add the masks, or leave those images out of the data")

    def build_model(self, encoder, config, records, *, run_config, plugins=None) -> Segmenter:
        from sslkit.models.decoder_export import load_matching, output_layer_prefix, pretrained_decoder_state

        pretrained = config.decoder == "pretrained" and not config.from_scratch and config.encoder is not None
        state, exported = pretrained_decoder_state(config.encoder) if pretrained else ({}, None)
        model = new_segmenter(encoder, config.protocol, decoder_skips(run_config, exported))
        if pretrained:
            output = output_layer_prefix(model.decoder)
            fresh = load_matching(model.decoder, state, skip_prefixes=(output,))
            unexpected = [k for k in fresh if not k.startswith(output)]
            if unexpected:
                raise UserError(f"the pretrained decoder of '{config.encoder}' does not fit this encoder "
                                f"({len(unexpected)} tensors differ, e.g. {unexpected[0]}); use --decoder fresh")
        return model

    def loss(self, outputs, batch, state):
        from sslkit.evaluation.segmentation_loss import dice_bce_loss

        return dice_bce_loss(outputs, batch["lesion"].float())

    # ------------------------------------------------------------------ predictions and figures

    @torch.no_grad()
    def predict(self, model, loader, recs, records, device) -> dict[str, Any]:
        from sslkit.evaluation.segmentation_metrics import segmentation_metrics

        was_training = model.training
        model.eval()
        indices, labels, preds, truths, images = [], [], [], [], []
        try:
            for batch in loader:
                batch_images = batch["image"].to(device)
                probs = torch.sigmoid(model(batch_images).float())
                preds.append((probs[:, 0] > THRESHOLD).cpu().numpy())
                truths.append(batch["lesion"][:, 0].cpu().numpy().astype(bool))
                images.append(batch_images.cpu().to(torch.float16).numpy())
                labels.append(batch["label"].cpu().numpy())
                indices.append(batch["index"].cpu().numpy())
        finally:
            model.train(was_training)
        pred, truth = np.concatenate(preds), np.concatenate(truths)
        figures = segmentation_metrics(pred, truth)
        return {
            "ids": [records.image_id(recs[int(i)]) for i in np.concatenate(indices)],
            "labels": np.concatenate(labels).astype(int).tolist(),
            **{name: [float(v) for v in figures[name]] for name in self.metrics},
            "lesion_pixels": truth.reshape(len(truth), -1).sum(axis=1).astype(int).tolist(),
            "predicted_pixels": pred.reshape(len(pred), -1).sum(axis=1).astype(int).tolist(),
            "_pred": pred, "_truth": truth, "_images": np.concatenate(images),
        }

    def score(self, predictions, class_names) -> Metrics:
        from sslkit.evaluation.segmentation_metrics import summarise

        per_image = {name: np.asarray(predictions[name], dtype=float) for name in self.metrics}
        summary = summarise(per_image)
        has_lesion = np.asarray(predictions["lesion_pixels"]) > 0
        empty = ~has_lesion
        scalars = {name: summary[name] for name in self.metrics}
        scalars["dice_lesion"] = float(per_image["dice"][has_lesion].mean()) if has_lesion.any() else float("nan")
        predicted_empty = np.asarray(predictions["predicted_pixels"]) == 0
        scalars["empty_correct"] = float(predicted_empty[empty].mean()) if empty.any() else float("nan")
        notes = []
        if summary["hd95_nan"]:
            notes.append(f"HD95 is undefined for {summary['hd95_nan']} of {summary['images']} images (a lesion "
                         "missed, or one predicted on an image without): averaged over the rest; Dice and IoU "
                         "count those images as 0")
        return Metrics(scalars=scalars, confusion=[], per_class={}, class_names=["lesion"],
                       n_samples=int(summary["images"]), notes=notes)

    def paired(self, predictions) -> ImageScores:
        return ImageScores(list(predictions["ids"]),
                           {name: np.asarray(predictions[name], dtype=float) for name in self.metrics},
                           np.asarray(predictions["lesion_pixels"]), predictions.get("groups"))

    def pool_columns(self) -> tuple[str, ...]:
        return PER_IMAGE

    # ------------------------------------------------------------------ files

    def save_model(self, model: Segmenter, directory: Path, meta: dict[str, Any]) -> Path:
        from sslkit.fileio import atomic_write_text
        from sslkit.models import save_encoder
        from sslkit.models.export import save_weights

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_encoder(model.encoder, directory / ENCODER_SUBDIR)
        save_weights(model.decoder, directory / DECODER_FILE)
        info = {"format": "sslkit-segmenter/1", "task": self.name, "protocol": model.protocol,
                "decoder_skips": model.decoder_skips, "threshold": THRESHOLD, **meta}
        atomic_write_text(directory / SEGMENTER_JSON, json.dumps(info, indent=2, default=str))
        return directory

    def load_model(self, directory: Path, plugins=None) -> tuple[Segmenter, dict[str, Any]]:
        from sslkit.models import load_encoder
        from sslkit.models.export import load_weights

        directory = Path(directory)
        try:
            info = json.loads((directory / SEGMENTER_JSON).read_text())
            protocol, skips = info["protocol"], info["decoder_skips"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as error:
            raise UserError(f"'{directory / SEGMENTER_JSON}' is not a valid sslkit segmenter file ({error})") from None
        model = new_segmenter(load_encoder(directory / ENCODER_SUBDIR, plugins=plugins), protocol, skips)
        load_weights(model.decoder, directory / DECODER_FILE, "the segmenter's decoder")
        model.eval()
        return model, info

    def write_predictions(self, out: Path, predictions, records, *, writer=None) -> list[Path]:
        from sslkit.csvfiles import write_csv
        from sslkit.evaluation.mask_images import overlay_sheet, save_mask_pngs, tensorboard_triptych

        rows = self.prediction_rows(predictions, records.class_names)
        paths = [write_csv(out / "predictions.csv", rows, list(rows[0]) if rows else ["image"], float_format=".6g")]
        if "_pred" not in predictions:
            return paths
        images, truth, pred = predictions["_images"].astype(np.float32), predictions["_truth"], predictions["_pred"]
        paths += save_mask_pngs(pred, list(predictions["ids"]), out / "masks")
        # the sheet shows lesion images first (most informative), then the lesion-free ones
        order = np.argsort(~(truth.reshape(len(truth), -1).any(axis=1)), kind="stable")
        captions = [f"{predictions['ids'][i][-14:]} D{predictions['dice'][i]:.2f}" for i in order]
        paths.append(overlay_sheet(images[order], truth[order], pred[order], out / "overlay.png", captions=captions))
        if writer is not None:
            writer.add_image("test/input_truth_prediction", tensorboard_triptych(images[order], truth[order], pred[order]), 0)
            writer.flush()
        return paths

    def prediction_rows(self, predictions, class_names):
        """image, its class (``label``), then the per-image figures and mask sizes."""
        return [{"image": image, "label": int(predictions["labels"][i]),
                 **{c: predictions[c][i] for c in PER_IMAGE if c != "labels"}} for i, image in enumerate(predictions["ids"])]
