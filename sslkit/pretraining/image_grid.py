"""The picture TensorBoard shows of a training step: one row per image, one column per panel
(input | mask | masked input | reconstruction | filled | each of the masker's own maps).

"filled" is the input with the reconstruction pasted into the hidden pixels: with the default
masked loss the predictor is never asked to reproduce visible pixels, so the raw reconstruction
looks poor there while the filled image shows what was actually learnt.

Images arrive normalised to [-1, 1]; panels are mapped to [0, 1]. The grid is in colour when the
input or any masker map has three channels (e.g. a heat map beside grey scans); otherwise grey. Masker maps of another size
(e.g. a 9 x 9 grid of Q-values) are scaled up with nearest neighbours so cells stay visible.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sslkit.image_tiles import tile_grid, to_unit


def _panel(x: torch.Tensor, channels: int, size: tuple[int, int]) -> torch.Tensor:
    x = x.detach().float().cpu()
    if x.shape[-2:] != size:
        x = F.interpolate(x, size=size, mode="nearest")
    if x.shape[1] == channels:
        return x
    if x.shape[1] == 1 or (channels == 3 and x.shape[1] != 3):
        return x[:, :1].expand(-1, channels, -1, -1)
    return x[:, :1].expand(-1, channels, -1, -1) if channels == 1 else x[:, :channels]


def step_grid(
    images: torch.Tensor,
    masks: torch.Tensor,
    masked: torch.Tensor,
    reconstruction: torch.Tensor,
    masker_maps: dict[str, torch.Tensor] | None = None,
    max_rows: int = 8,
    pad: int = 2,
) -> tuple[torch.Tensor, list[str]]:
    """A (3 or 1, H', W') image in [0, 1] and the column titles, left to right."""
    n = min(max_rows, images.shape[0])
    size = (int(images.shape[-2]), int(images.shape[-1]))
    maps = {k: v for k, v in (masker_maps or {}).items() if isinstance(v, torch.Tensor) and v.dim() == 4 and v.shape[0] >= 1}
    channels = 3 if images.shape[1] == 3 or any(v.shape[1] == 3 for v in maps.values()) else 1
    columns = {
        "input": to_unit(images[:n]),
        "mask": masks[:n].float(),
        "masked": to_unit(masked[:n]),
        "reconstruction": to_unit(reconstruction[:n]),
        "filled": to_unit(torch.where(masks[:n].expand_as(images[:n]), reconstruction[:n].to(images.dtype), images[:n])),
    }
    for name, value in maps.items():
        columns[name] = value[:n].float().clamp(0.0, 1.0)
    return tile_grid([_panel(v, channels, size) for v in columns.values()], pad), list(columns)
