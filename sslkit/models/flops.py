"""Counting parameters and floating-point operations (for the benchmark and reports).

FLOPs are counted by :class:`torch.utils.flop_counter.FlopCounterMode` (matmuls and convolutions,
forward and backward; a multiply-add counts as 2), which is what "achieved FLOP/s" compares with
a plain conv/matmul's throughput. One correction: torch's formula for ``convolution_backward``
ignores ``groups``, so the backward pass of a depthwise conv was counted up to ``groups`` times
too high (EfficientNet-B0's training step came out 7x its real cost); here each requested
gradient (input, weight) costs exactly what the forward convolution costs, as it does for
ordinary convolutions in torch's own formula.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements (shared parameters counted once)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def _conv_backward_flop(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation,
                        transposed, _output_padding, _groups, output_mask, out_shape, **kwargs) -> int:
    from torch.utils.flop_counter import conv_flop_count

    forward = conv_flop_count(list(x_shape), list(w_shape), list(grad_out_shape), transposed)
    return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs executed by ``fn()`` (run once under the counter; include ``.backward()`` in ``fn``
    to count a training step)."""
    from torch.utils.flop_counter import FlopCounterMode

    mapping = {torch.ops.aten.convolution_backward: _conv_backward_flop}
    with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        fn()
    return int(counter.get_total_flops())
