"""Pictures of lesion masks: PNG files per mask, an overlay contact sheet, a TensorBoard triptych.

Numbers alone hide how a segmentation fails (a lesion missed, a shadow taken for one, a boundary
off by a few pixels); these pictures let a reader check the Dice and HD95 figures by eye.

- :func:`save_mask_pngs`: one 8-bit PNG per mask (0 background, 255 lesion), the format most
  viewers and other tools read, named after the images with file-system-safe, unique names.
- :func:`overlay_sheet`: one PNG with a tile per image: the image in grey, the true mask in
  green, the prediction in red, their overlap in yellow (a translucent fill plus a solid one-pixel
  outline of each mask), a legend line on top and a caption under each tile (its position in the
  batch and its Dice, unless captions are given). Images of 32-64 px are scaled up with nearest
  neighbours to about 128 px so single pixels stay visible.
- :func:`tensorboard_triptych`: a (3, H', W') grid, one row per image (input | truth |
  prediction), for ``SummaryWriter.add_image``; laid out like the pretraining grid, by
  :func:`sslkit.image_tiles.tile_grid`.

Pixels are computed with whole-batch numpy / torch operations; only the placement of tiles on
the sheet and the text loop over images.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import IO, Any, Callable, Sequence

import numpy as np
import torch
from scipy import ndimage

from sslkit.evaluation.segmentation_metrics import as_masks, dice_iou
from sslkit.fileio import atomic_write
from sslkit.image_tiles import tile_grid, to_unit

#: Overlay colours (RGB): truth only, prediction only, both.
TRUTH_COLOUR = (0, 255, 0)
PRED_COLOUR = (255, 0, 0)
OVERLAP_COLOUR = (255, 255, 0)
#: Weight of the fill colour over the grey image inside a mask.
FILL_ALPHA = 0.4
#: Images are scaled up by an integer factor until their longer side reaches about this many pixels.
TARGET_TILE = 128

_IMAGE_SUFFIX = re.compile(r"\.(png|jpe?g|bmp|gif|tiff?|dcm|nii(\.gz)?|npy|npz)$", re.IGNORECASE)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
_CAPTION_HEIGHT = 12
_HEADER_HEIGHT = 18
_GAP = 4
_CHAR_WIDTH = 6  # Pillow's default font, for truncating captions to their tile


def safe_png_names(names: Sequence[str]) -> list[str]:
    """File names ``STEM.png`` for ``names``: an image suffix dropped, runs of characters other than
    letters, digits, ``.``, ``_`` and ``-`` (path separators included) replaced by ``_``, leading and
    trailing dots, dashes and underscores removed (no hidden files, no ``..``), at most 100
    characters, Windows device names prefixed with ``_``, and duplicates -- compared ignoring
    case, as macOS and Windows file systems do -- given ``_2``, ``_3``, ... in order."""
    seen: set[str] = set()
    out: list[str] = []
    for name in names:
        stem = _UNSAFE.sub("_", _IMAGE_SUFFIX.sub("", str(name))).strip("._-")[:100].rstrip("._-") or "mask"
        if stem.split(".")[0].upper() in _WINDOWS_RESERVED:
            stem = "_" + stem
        candidate, k = stem, 2
        while candidate.lower() in seen:
            candidate, k = f"{stem}_{k}", k + 1
        seen.add(candidate.lower())
        out.append(candidate + ".png")
    return out


def save_mask_pngs(masks: Any, names: Sequence[str], folder: str | Path) -> list[Path]:
    """Write ``masks`` ((N, H, W) bool or 0/1, numpy or torch) as 8-bit grey PNGs (0 / 255) in
    ``folder`` (created if missing), named by :func:`safe_png_names`; returns the paths in order.
    Existing files of the same name are replaced (atomically)."""
    array = as_masks(masks)
    if len(names) != array.shape[0]:
        raise ValueError(f"{array.shape[0]} masks but {len(names)} names")
    from PIL import Image

    folder = Path(folder)
    pixels = array.astype(np.uint8) * np.uint8(255)
    paths = []
    for file_name, mask in zip(safe_png_names(names), pixels):
        paths.append(atomic_write(folder / file_name, _png_writer(Image.fromarray(mask))))
    return paths


def _png_writer(picture: Any) -> Callable[[IO[bytes]], None]:
    return lambda handle: picture.save(handle, format="PNG")


def _numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x)


def grey_unit(images: Any) -> np.ndarray:
    """(N, C, H, W) or (N, H, W) images in any range -> (N, H, W) float32 in [0, 1]: the channel
    mean, stretched per image from its minimum to its maximum (non-finite values count as 0)."""
    x = _numpy(images).astype(np.float32)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise ValueError(f"images must have shape (N, C, H, W) or (N, H, W), got {tuple(x.shape)}")
    x = np.nan_to_num(x.mean(axis=1), nan=0.0, posinf=0.0, neginf=0.0)
    low = x.min(axis=(1, 2), keepdims=True)
    span = x.max(axis=(1, 2), keepdims=True) - low
    return (x - low) / np.where(span > 0, span, 1.0)


def auto_scale(height: int, width: int) -> int:
    """The integer factor that brings the longer side to about :data:`TARGET_TILE` pixels (at least 1)."""
    return max(1, TARGET_TILE // max(1, height, width))


def overlay_tiles(images: Any, truth: Any, pred: Any, scale: int = 1, alpha: float = FILL_ALPHA) -> np.ndarray:
    """(N, H*scale, W*scale, 3) uint8 tiles: grey image, masks filled at ``alpha`` (truth green,
    prediction red, overlap yellow), each mask's outline drawn solid in its colour (yellow where
    both outlines meet)."""
    grey = grey_unit(images)
    t, p = as_masks(truth, "truth"), as_masks(pred, "pred")
    if not grey.shape == t.shape == p.shape:
        raise ValueError(f"images, truth and pred differ in size: {grey.shape}, {t.shape}, {p.shape}")
    if scale > 1:
        grey, t, p = (np.repeat(np.repeat(a, scale, axis=1), scale, axis=2) for a in (grey, t, p))
    colours = np.array([(0, 0, 0), TRUTH_COLOUR, PRED_COLOUR, OVERLAP_COLOUR], dtype=np.float32) / 255.0
    kind = t.astype(np.uint8) + 2 * p.astype(np.uint8)  # 0 neither, 1 truth, 2 prediction, 3 both
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    inside = kind > 0
    rgb[inside] = (1.0 - alpha) * rgb[inside] + alpha * colours[kind[inside]]
    cross = ndimage.generate_binary_structure(2, 1)[None]
    t_edge = t & ~ndimage.binary_erosion(t, structure=cross)
    p_edge = p & ~ndimage.binary_erosion(p, structure=cross)
    edge_kind = t_edge.astype(np.uint8) + 2 * p_edge.astype(np.uint8)
    on_edge = edge_kind > 0
    rgb[on_edge] = colours[edge_kind[on_edge]]
    return np.round(rgb * 255.0).astype(np.uint8)


def overlay_sheet(images: Any, truth: Any, pred: Any, path: str | Path, columns: int = 8, max_images: int = 64,
                  scale: int | None = None, captions: Sequence[str] | None = None) -> Path:
    """Write a PNG contact sheet of the first ``max_images`` images, in the order given, ``columns``
    tiles per row (see :func:`overlay_tiles` for a tile). The top line is the legend ("truth",
    "prediction", "overlap" beside their colours); under each tile is its caption: ``captions[i]``
    when given, else ``"#i Dice 0.83"`` (position in the batch and that image's Dice), cut to the
    tile's width. ``scale`` defaults to :func:`auto_scale`. Returns the path."""
    from PIL import Image, ImageDraw

    grey = grey_unit(images)
    n_all = grey.shape[0]
    if captions is not None and len(captions) != n_all:
        raise ValueError(f"{n_all} images but {len(captions)} captions")
    t, p = as_masks(truth, "truth"), as_masks(pred, "pred")
    if not grey.shape == t.shape == p.shape:
        raise ValueError(f"images, truth and pred differ in size: {grey.shape}, {t.shape}, {p.shape}")
    n = max(0, min(int(max_images), n_all))
    t, p = t[:n], p[:n]
    height, width = grey.shape[1:]
    s = auto_scale(height, width) if scale is None else max(1, int(scale))
    tiles = overlay_tiles(grey[:n], t, p, scale=s)
    if captions is None:
        dice = dice_iou(p, t)[0]
        texts = [f"#{i} Dice {d:.2f}" for i, d in enumerate(dice)]
    else:
        texts = [str(c) for c in captions[:n]]
    cols = max(1, min(int(columns), max(n, 1)))
    rows = -(-n // cols) if n else 0
    tile_h, tile_w = height * s, width * s
    cell_h, cell_w = tile_h + _CAPTION_HEIGHT + _GAP, tile_w + _GAP
    sheet_h = _HEADER_HEIGHT + max(rows * cell_h, _CAPTION_HEIGHT + _GAP) + _GAP  # room for "no images"
    sheet = np.full((sheet_h, max(cols * cell_w + _GAP, 240), 3), 255, np.uint8)
    for i in range(n):
        top, left = _HEADER_HEIGHT + (i // cols) * cell_h, _GAP + (i % cols) * cell_w
        sheet[top:top + tile_h, left:left + tile_w] = tiles[i]
    picture = Image.fromarray(sheet)
    draw = ImageDraw.Draw(picture)
    x = _GAP
    for label, colour in (("truth", TRUTH_COLOUR), ("prediction", PRED_COLOUR), ("overlap", OVERLAP_COLOUR)):
        draw.rectangle((x, 4, x + 9, 13), fill=colour, outline=(0, 0, 0))
        draw.text((x + 13, 3), label, fill=(0, 0, 0))
        x += 13 + _CHAR_WIDTH * len(label) + 12
    if n == 0:
        draw.text((_GAP, _HEADER_HEIGHT), "no images", fill=(0, 0, 0))
    fits = max(1, tile_w // _CHAR_WIDTH)
    for i, text in enumerate(texts):
        top, left = _HEADER_HEIGHT + (i // cols) * cell_h, _GAP + (i % cols) * cell_w
        draw.text((left, top + tile_h + 1), text[:fits], fill=(0, 0, 0))
    return atomic_write(Path(path), _png_writer(picture))


def tensorboard_triptych(images: Any, truth: Any, pred: Any, max_images: int = 8) -> torch.Tensor:
    """A (3, H', W') float grid in [0, 1] for ``SummaryWriter.add_image``: one row per image (the
    first ``max_images``), columns input | truth | prediction, white lines between tiles.

    ``images`` are sslkit's model inputs, (N, C, H, W) in [-1, 1] (shown as the pretraining grid
    shows them, :func:`sslkit.image_tiles.to_unit`); ``truth`` is an (N, H, W) or
    (N, 1, H, W) mask; ``pred`` the same shape, a mask or probabilities in [0, 1] (shown as grey
    levels, so an unsure prediction looks unsure).
    """
    x = images.detach().cpu() if isinstance(images, torch.Tensor) else torch.as_tensor(_numpy(images))
    if x.dim() != 4 or x.shape[0] == 0:
        raise ValueError(f"images must have shape (N, C, H, W) with N >= 1, got {tuple(x.shape)}")
    n = max(1, min(int(max_images), x.shape[0]))
    x = to_unit(x[:n])
    x = x if x.shape[1] == 3 else x[:, :1].expand(-1, 3, -1, -1)
    truth_panel = torch.from_numpy(as_masks(truth, "truth")[:n]).float()
    p = pred.detach().float().cpu() if isinstance(pred, torch.Tensor) else torch.as_tensor(_numpy(pred)).float()
    p = (p[:, 0] if p.dim() == 4 and p.shape[1] == 1 else p)[:n].clamp(0.0, 1.0)
    if not truth_panel.shape == p.shape == (x.shape[0], *x.shape[2:]):
        raise ValueError(f"images, truth and pred differ in size: {tuple(x.shape)}, {tuple(truth_panel.shape)}, "
                         f"{tuple(p.shape)}")
    panels = [x, truth_panel[:, None].expand(-1, 3, -1, -1), p[:, None].expand(-1, 3, -1, -1)]
    return tile_grid(panels)

