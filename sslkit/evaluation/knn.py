"""k-nearest-neighbour evaluation of frozen features: an encoder's health check in seconds.

No training: every labelled training image is a vote, weighted by its cosine similarity to the
query (``exp(sim / T)``, the weighting of Wu et al. 2018 / DINO), among the query's ``k``
nearest. Probabilities are the normalised votes, so AUROC is defined as for a trained head.
Cheap enough to run during pretraining every few epochs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from sslkit.defaults import IMAGE_SIZE
from sslkit.evaluation.features import deepest_features, global_pool
from sslkit.evaluation.metrics import Metrics, classification_metrics

if TYPE_CHECKING:
    from torch import nn


def knn_probabilities(
    bank: torch.Tensor,
    bank_labels: torch.Tensor,
    queries: torch.Tensor,
    num_classes: int,
    *,
    k: int = 20,
    temperature: float = 0.07,
    chunk: int = 1024,
) -> torch.Tensor:
    """Class probabilities (Q, K) of ``queries`` (Q, D) from a labelled ``bank`` (N, D).

    Cosine similarity; the ``k`` most similar bank entries vote with weight ``exp(sim / T)``
    (``temperature <= 0`` gives plain majority votes). ``k`` larger than the bank uses the whole
    bank. Queries are processed in chunks so memory stays O(chunk x N).
    """
    if bank.ndim != 2 or queries.ndim != 2 or bank.shape[1] != queries.shape[1]:
        raise ValueError(f"bank {tuple(bank.shape)} and queries {tuple(queries.shape)} must be (N, D) and (Q, D)")
    if bank.shape[0] == 0:
        raise ValueError("the k-NN bank is empty")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    k = min(k, bank.shape[0])
    bank_n = F.normalize(bank.float(), dim=1)
    one_hot = F.one_hot(bank_labels.long(), num_classes).float()  # (N, K)
    out = []
    for start in range(0, queries.shape[0], chunk):
        q = F.normalize(queries[start : start + chunk].float(), dim=1)
        sims, idx = (q @ bank_n.T).topk(k, dim=1)  # (q, k)
        weights = (sims / temperature).exp() if temperature > 0 else torch.ones_like(sims)
        votes = (weights.unsqueeze(-1) * one_hot[idx]).sum(dim=1)  # (q, K)
        out.append(votes / votes.sum(dim=1, keepdim=True).clamp_min(1e-12))
    return torch.cat(out)


@dataclass
class KnnResult:
    metrics: Metrics
    k: int
    temperature: float
    bank_size: int
    feature_dim: int


def knn_evaluate_features(
    bank: torch.Tensor,
    bank_labels: torch.Tensor,
    queries: torch.Tensor,
    query_labels: torch.Tensor,
    class_names: list[str],
    *,
    k: int = 20,
    temperature: float = 0.07,
) -> KnnResult:
    """k-NN metrics from pooled features; unlabelled entries (label -1) are dropped from both."""
    keep_b = bank_labels >= 0
    keep_q = query_labels >= 0
    bank, bank_labels = bank[keep_b], bank_labels[keep_b]
    queries, query_labels = queries[keep_q], query_labels[keep_q]
    probs = knn_probabilities(bank, bank_labels, queries, len(class_names), k=k, temperature=temperature)
    metrics = classification_metrics(query_labels.numpy(), probs.numpy(), class_names)
    return KnnResult(metrics, min(k, bank.shape[0]), temperature, int(bank.shape[0]), int(bank.shape[1]))


def knn_evaluate(
    encoder: "nn.Module",
    bank_loader,
    query_loader,
    class_names: list[str],
    *,
    k: int = 20,
    temperature: float = 0.07,
    device: torch.device | str = "cpu",
) -> KnnResult:
    """k-NN evaluation of ``encoder``: bank = ``bank_loader`` (train), queries = ``query_loader``.

    Features are the globally average-pooled deepest maps, computed in eval mode (no BatchNorm
    statistic changes), so calling this during pretraining does not disturb training.
    """
    bank_maps, bank_labels = deepest_features(encoder, bank_loader, device)
    query_maps, query_labels = deepest_features(encoder, query_loader, device)
    return knn_evaluate_features(
        global_pool(bank_maps), bank_labels, global_pool(query_maps), query_labels, class_names,
        k=k, temperature=temperature,
    )


def knn_on_dataset(
    encoder: "nn.Module",
    ds,
    *,
    bank_split: str = "train",
    query_split: str = "test",
    k: int = 20,
    temperature: float = 0.07,
    image_size: int = IMAGE_SIZE,
    in_chans: int | None = None,
    batch_size: int = 64,
    workers: int = 0,
    device: torch.device | str = "cpu",
) -> KnnResult:
    """k-NN on a :class:`sslkit.data.DatasetSplits` (the engine can call this every N epochs)."""
    from sslkit.data import make_loader
    from sslkit.errors import UserError

    for split in (bank_split, query_split):
        if split not in ds.splits or not ds.splits[split]:
            raise UserError(f"dataset '{ds.name}' has no '{split}' split (it has {', '.join(sorted(ds.splits))})")
    if not ds.class_names:
        raise UserError(f"dataset '{ds.name}' has no class labels, so k-NN evaluation is impossible")
    chans = in_chans if in_chans is not None else int(getattr(encoder, "spec", {}).get("in_chans", 1))
    loaders = [
        make_loader(ds, (split,), purpose="eval", image_size=image_size, in_chans=chans,
                    batch_size=batch_size, workers=workers, shuffle=False)
        for split in (bank_split, query_split)
    ]
    return knn_evaluate(encoder, loaders[0], loaders[1], list(ds.class_names), k=k,
                        temperature=temperature, device=device)

