"""Where training runs and in which precision.

``auto`` picks CUDA, then Apple's MPS, then the CPU. Precision is autocast: ``fp32`` (none),
``bf16`` (same range as fp32, no scaler needed) or ``fp16`` (needs a gradient scaler so small
gradients do not underflow; the scaler skips steps whose gradients overflowed). The loss itself is
always computed in fp32 from the autocast output.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch

from sslkit.errors import UserError

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def resolve_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` -> cuda:LOCAL_RANK, else mps, else cpu; an unavailable device is a UserError."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        if mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise UserError("device 'cuda' was asked for, but PyTorch sees no CUDA GPU; use --device auto or cpu")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if name == "mps":
        if not mps_available():
            raise UserError("device 'mps' was asked for, but this PyTorch has no MPS (Apple GPU) support here; use --device auto or cpu")
        return torch.device("mps")
    if name == "cpu":
        return torch.device("cpu")
    raise UserError(f"device '{name}' is not one of auto, cpu, cuda, mps")


@dataclass
class Precision:
    """Autocast and gradient scaling for one device and precision name."""

    name: str
    device: torch.device

    def __post_init__(self) -> None:
        if self.name not in DTYPES:
            raise UserError(f"precision '{self.name}' is not one of {', '.join(DTYPES)}")
        if self.name == "bf16" and self.device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise UserError("precision 'bf16' is not supported by this GPU; use --precision fp16 or fp32")
        self.dtype = DTYPES[self.name]
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.name == "fp16")

    def autocast(self) -> contextlib.AbstractContextManager:
        """The forward-pass context: autocast to the chosen dtype, or nothing for fp32."""
        if self.name == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def backward_and_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """Backward and optimizer step, through the scaler for fp16 (a no-op wrapper otherwise)."""
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict[str, Any]:
        return self.scaler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            self.scaler.load_state_dict(state)
