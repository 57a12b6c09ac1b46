"""Sparse masked encoding (SparK, Tian et al. ICLR 2023) for any CNN encoder, without touching its code.

A convolutional encoder given a masked image sees the holes as image content: zeros with hard
edges, counted in BatchNorm's statistics, shrinking away layer by layer. SparK simulates
submanifold sparse convolution with dense layers instead: the encoder runs as if only the visible
cells existed. :func:`install_sparse_encoding` does that to an existing encoder in place:

* every ``Conv2d``, pooling layer, ``LayerNorm`` and ``Linear`` (timm applies the last two to NHWC
  maps in ConvNeXt blocks) gets a forward hook that zeroes its output at the masked positions, at
  that layer's own resolution (the cell grid mapped onto the map with the exact integer split of
  :func:`sslkit.masking.cell_index`);
* every BatchNorm layer's class is swapped for a subclass (same parameters and buffers, hence the
  same ``state_dict`` keys) that normalises over the visible positions only, running statistics
  included, then writes zeros at the masked positions. It calls the original class's own forward
  on the visible positions gathered as an ``(N, C, 1, 1)`` batch, so timm's ``BatchNormAct2d``
  (norm + activation), ``SyncBatchNorm`` and any other subclass keep their behaviour.

All of it is inert until :meth:`SparseEncoding.active` gives it the visible cells of a batch: the
k-NN probe, a ``saliency`` teacher copied from the encoder, fine-tuning and export all run the
same modules densely and see exactly the original network. Layers that normalise over positions
with per-image statistics (GroupNorm, InstanceNorm) are refused in one sentence rather than run
with statistics that mix in the holes.

The decoder side (:class:`MaskTokens`) fills every masked position of every feature map with a
learned vector per scale before decoding ("densifying"), so the decoder never reads the zeros.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch
from torch import nn

from sslkit.errors import UserError
from sslkit.masking import cell_index

#: Layers whose output is zeroed at masked positions (BatchNorm is handled by its own subclass).
_ZEROED = (nn.Conv2d, nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd, nn.LayerNorm, nn.Linear)
#: Layers whose statistics would mix visible and masked positions and that have no masked form here.
_REFUSED = (nn.GroupNorm, nn.modules.instancenorm._InstanceNorm, nn.LocalResponseNorm)


class SparseEncoding:
    """The visible cells of the batch being encoded, and the masks derived from them per resolution.

    One object per encoder; the hooks and BatchNorm layers installed by
    :func:`install_sparse_encoding` read it. Outside :meth:`active` it holds nothing and every
    layer runs densely."""

    def __init__(self, cell_grid: tuple[int, int]):
        self.cell_grid = (int(cell_grid[0]), int(cell_grid[1]))
        self._visible: torch.Tensor | None = None  # (B, gh, gw) bool
        self._cache: dict[tuple[int, int], torch.Tensor] = {}
        self._hidden_cache: dict[tuple[int, ...], torch.Tensor] = {}
        self._index_cache: dict[tuple[int, int], torch.Tensor] = {}

    @property
    def is_active(self) -> bool:
        return self._visible is not None

    @contextlib.contextmanager
    def active(self, visible_cells: torch.Tensor) -> Iterator[None]:
        """Encode sparsely inside the block: ``visible_cells`` is (B, gh, gw) bool, True = visible."""
        if tuple(visible_cells.shape[1:]) != self.cell_grid:
            raise ValueError(f"visible cells of shape {tuple(visible_cells.shape)} do not match the grid {self.cell_grid}")
        self._visible, self._cache, self._hidden_cache, self._index_cache = visible_cells.bool(), {}, {}, {}
        try:
            yield
        finally:
            self._visible, self._cache, self._hidden_cache, self._index_cache = None, {}, {}, {}

    def visible_at(self, height: int, width: int) -> torch.Tensor | None:
        """(B, 1, height, width) bool visible positions of a map of that size; None when inactive
        or for a 1 x 1 map (a global context vector such as a squeeze-excite's, which is not a place)."""
        if self._visible is None or height * width == 1:
            return None
        key = (int(height), int(width))
        found = self._cache.get(key)
        if found is None:
            cells = self._visible
            rows = cell_index(cells.shape[1], key[0], cells.device)
            cols = cell_index(cells.shape[2], key[1], cells.device)
            found = cells[:, rows][:, :, cols][:, None]
            self._cache[key] = found
        return found

    def hidden_at(self, height: int, width: int, nhwc: bool) -> torch.Tensor | None:
        """Bool masked positions of a map of that size, (B, H, W, 1) contiguous when ``nhwc`` else
        (B, 1, H, W), cached; None where nothing is to be zeroed (inactive, or a 1 x 1 map)."""
        key = (int(height), int(width), bool(nhwc))
        found = self._hidden_cache.get(key)
        if found is None:
            visible = self.visible_at(height, width)
            if visible is None:
                return None
            found = ~visible.permute(0, 2, 3, 1).contiguous() if nhwc else ~visible
            self._hidden_cache[key] = found
        return found

    def zero_masked_(self, output: torch.Tensor, nhwc: bool = False) -> torch.Tensor:
        """Write zeros at the masked positions of a 4-D map (in place unless channels_last), in the map's own memory layout
        (an NCHW mask against a channels_last map would make this and its backward pass copy the
        whole map). ``nhwc``: ``output`` is laid out (B, H, W, C), as ConvNeXt's MLP sees it."""
        if nhwc:
            hidden = self.hidden_at(output.shape[1], output.shape[2], True)
            return output if hidden is None else output.masked_fill_(hidden, 0.0)
        channels_last = output.shape[1] > 1 and output.is_contiguous(memory_format=torch.channels_last)
        hidden = self.hidden_at(output.shape[2], output.shape[3], channels_last)
        if hidden is None:
            return output
        if channels_last:  # on the contiguous (B, H, W, C) view; not in place, which on a view would copy
            return output.permute(0, 2, 3, 1).masked_fill(hidden, 0.0).permute(0, 3, 1, 2)
        return output.masked_fill_(hidden, 0.0)

    def visible_index(self, height: int, width: int) -> torch.Tensor:
        """Flat indices of the visible positions of a (B, H, W) map: one host sync per resolution
        and forward pass, shared by every BatchNorm layer at that resolution."""
        key = (int(height), int(width))
        found = self._index_cache.get(key)
        if found is None:
            visible = self.visible_at(*key)
            if visible is None:
                raise RuntimeError("visible_index needs an active mask on a map larger than 1 x 1")
            found = visible.reshape(-1).nonzero().squeeze(1)
            self._index_cache[key] = found
        return found


def _zero_masked(state: SparseEncoding, channels_last_map: bool):
    """A forward hook writing zeros at the masked positions of the layer's output."""

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor):
        if state._visible is None or not isinstance(output, torch.Tensor) or output.dim() != 4:
            return None
        # In place where it can be: these layers' backward passes need their inputs, not their outputs.
        return state.zero_masked_(output, channels_last_map)

    return hook


class _SparseBatchNormMixin:
    """BatchNorm over the visible positions only (see the module docstring)."""

    _sparse_state: SparseEncoding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        state = self._sparse_state
        visible = state.visible_at(x.shape[2], x.shape[3]) if x.dim() == 4 else None
        if visible is None:
            return super().forward(x)  # type: ignore[misc]
        b, c, h, w = x.shape
        index = state.visible_index(h, w)
        flat = x.permute(0, 2, 3, 1).reshape(b * h * w, c)
        normed = super().forward(flat.index_select(0, index)[:, :, None, None])[:, :, 0, 0]  # type: ignore[misc]
        out = flat.new_zeros(b * h * w, normed.shape[1], dtype=normed.dtype).index_copy(0, index, normed)
        out = out.view(b, h, w, -1).permute(0, 3, 1, 2)  # (B, C, H, W) in channels_last memory
        # in the input's layout: a layout change between layers costs a full copy of the map each time
        return out if x.is_contiguous(memory_format=torch.channels_last) else out.contiguous()


_SPARSE_CLASSES: dict[type, type] = {}


def _sparse_class(cls: type) -> type:
    """``Sparse<Name>``: the BatchNorm class ``cls`` normalising over visible positions only."""
    if cls not in _SPARSE_CLASSES:
        _SPARSE_CLASSES[cls] = type(f"Sparse{cls.__name__}", (_SparseBatchNormMixin, cls), {"__module__": __name__})
    return _SPARSE_CLASSES[cls]


def _is_channels_first_norm(module: nn.Module) -> bool:
    """timm's LayerNorm2d family normalise NCHW maps over channels; a plain LayerNorm sees NHWC."""
    return type(module).__name__.endswith("2d")


def install_sparse_encoding(encoder: nn.Module, cell_grid: tuple[int, int], name: str = "the encoder", *,
                            sample_size: tuple[int, int] | None = None, in_chans: int = 1) -> SparseEncoding:
    """Make ``encoder`` encode sparsely whenever the returned state is :meth:`~SparseEncoding.active`.

    The weights, their names and the dense behaviour are unchanged (an exported encoder loads into
    a freshly built one). Raises :class:`UserError` for a layer kind with no masked form.

    With ``sample_size`` (the training images' size), one dense forward pass finds the layers whose
    output goes to a BatchNorm and nowhere else (every conv of a ResNet): zeroing their output would
    be redundant, since that BatchNorm reads visible positions only and writes zeros at the others,
    so they get no hook (about a tenth of the sparse step's cost on a ResNet)."""
    existing = getattr(encoder, "_sparse_encoding", None)
    if existing is not None:
        return existing
    refused = sorted({type(m).__name__ for m in encoder.modules() if isinstance(m, _REFUSED)})
    if refused:
        raise UserError(
            f"--encoding sparse cannot run {name}: its {', '.join(refused)} layers normalise each image over all "
            "positions, holes included, and have no masked form; use --encoding dense or a BatchNorm/LayerNorm backbone"
        )
    state = SparseEncoding(cell_grid)
    # found before anything is swapped: the dense network's own graph
    normalised_next = _layers_feeding_only_batchnorm(encoder, sample_size, in_chans) if sample_size else set()
    for module in encoder.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.__class__ = _sparse_class(type(module))
            setattr(module, "_sparse_state", state)  # nn.Module.__setattr__ is typed for tensors and modules only
        elif module in normalised_next:
            continue  # its masked outputs are only read by a norm that ignores them and zeroes its own
        elif isinstance(module, _ZEROED):
            nhwc = isinstance(module, nn.Linear) or (isinstance(module, nn.LayerNorm) and not _is_channels_first_norm(module))
            module.register_forward_hook(_zero_masked(state, nhwc))
    setattr(encoder, "_sparse_encoding", state)
    return state


def _layers_feeding_only_batchnorm(encoder: nn.Module, sample_size: tuple[int, int],
                                   in_chans: int = 1) -> set[nn.Module]:
    """Zeroed-kind layers whose output tensor is the input of a BatchNorm layer and is read by
    nothing else, found on the autograd graph of one dense forward pass (no statistics change)."""
    outputs: dict[nn.Module, torch.Tensor] = {}
    norm_inputs: list[torch.Tensor] = []
    handles = []
    for module in encoder.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            handles.append(module.register_forward_hook(lambda m, i, o: norm_inputs.append(i[0])))
        elif isinstance(module, _ZEROED):
            handles.append(module.register_forward_hook(lambda m, i, o: outputs.__setitem__(m, o)))
    try:
        features = _dense_probe(encoder, sample_size, in_chans, grad=True)
    finally:
        for handle in handles:
            handle.remove()
    consumers: dict[Any, int] = {}
    seen: set[Any] = set()
    stack = [f.grad_fn for f in features if f.grad_fn is not None]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        for child, _ in node.next_functions:
            if child is not None:
                consumers[child] = consumers.get(child, 0) + 1
                stack.append(child)
    feeding = {id(t) for t in norm_inputs}
    return {m for m, out in outputs.items()
            if id(out) in feeding and out.grad_fn is not None and consumers.get(out.grad_fn, 0) == 1}


def encoder_cell_grid(encoder: nn.Module, image_size: tuple[int, int], in_chans: int) -> tuple[int, int]:
    """The deepest feature map's size for images of ``image_size``: the cells the encoder can
    represent as present or absent (SparK draws its masks on exactly this grid)."""
    deepest = _dense_probe(encoder, image_size, in_chans, grad=False)[-1]
    return int(deepest.shape[-2]), int(deepest.shape[-1])


def _dense_probe(encoder: nn.Module, size: tuple[int, int], in_chans: int, *, grad: bool) -> list[torch.Tensor]:
    """The encoder's maps for one blank image, in eval mode (its BatchNorm statistics unchanged)."""
    param = next(encoder.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = encoder.training
    encoder.eval()
    try:
        with torch.set_grad_enabled(grad):
            return list(encoder(torch.zeros(1, int(in_chans), *size, device=device)))
    finally:
        encoder.train(was_training)


class MaskTokens(nn.Module):
    """One learned vector per feature level, written into the masked positions of that level's map
    before the decoder reads it (SparK's densifying step; initialised like SparK's, N(0, 0.02))."""

    def __init__(self, feature_channels: list[int]):
        super().__init__()
        self.tokens = nn.ParameterList(nn.Parameter(torch.randn(1, int(c), 1, 1) * 0.02) for c in feature_channels)

    def forward(self, features: list[torch.Tensor], state: SparseEncoding) -> list[torch.Tensor]:
        out = []
        for feature, token in zip(features, self.tokens):
            visible = state.visible_at(feature.shape[2], feature.shape[3])
            out.append(feature if visible is None else torch.where(visible, feature, token.to(feature.dtype)))
        return out
