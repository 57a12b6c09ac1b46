"""Per-cell (or per-pixel) maps as pictures for TensorBoard, shared by the learned maskers.

``dqn``'s Q map, ``hpm``'s predicted difficulty, ``saliency``'s saliency and ``adios``'s soft masks
are all shown the same way: scaled to [0, 1] per image (so every image uses the whole colour
scale, whatever the map's units) and coloured with a perceptual colour map, cells kept sharp.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_LUTS: dict[tuple[str, str], torch.Tensor] = {}


def _lut(name: str, device: torch.device) -> torch.Tensor:
    """(256, 3) colours of a matplotlib colour map, cached per device (matplotlib is a dependency)."""
    key = (name, str(device))
    if key not in _LUTS:
        from matplotlib import colormaps

        colours = colormaps[name](torch.linspace(0, 1, 256).numpy())[:, :3]
        _LUTS[key] = torch.as_tensor(colours, dtype=torch.float32, device=device)
    return _LUTS[key]


def normalize_per_image(maps: torch.Tensor) -> torch.Tensor:
    """(B, 1, h, w) -> the same scaled to [0, 1] per image (a constant map becomes 0)."""
    flat = maps.flatten(1)
    low = flat.min(dim=1).values[:, None, None, None]
    high = flat.max(dim=1).values[:, None, None, None]
    return (maps - low) / (high - low).clamp(min=1e-12)


def heat_map(values: torch.Tensor, size: tuple[int, int], colormap: str = "inferno") -> torch.Tensor:
    """(B, 1, h, w) values (a G x G cell map, or a map at image size) -> (B, 3, H, W) float RGB in
    [0, 1], scaled per image; cells stay sharp (nearest upsampling)."""
    scaled = normalize_per_image(values.detach().float())
    up = F.interpolate(scaled, size=size, mode="nearest")[:, 0]  # B,H,W
    index = (up * 255).round().long().clamp(0, 255)
    return _lut(colormap, values.device)[index].permute(0, 3, 1, 2).contiguous()
