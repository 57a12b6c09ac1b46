"""Where training runs and in which precision.

``auto`` picks CUDA, then Apple's MPS, then the CPU. Precision is autocast: ``fp32`` (none),
``bf16`` (same range as fp32, no scaler needed) or ``fp16`` (needs a gradient scaler so small
gradients do not underflow; the scaler skips steps whose gradients overflowed). The loss itself is
always computed in fp32 from the autocast output.

Precision ``auto`` (the default) means bf16 wherever the hardware computes it natively, fp32
elsewhere: on a CPU with AMX or AVX-512 bf16 units a bf16 channels_last convolution runs 2-4x
faster than fp32 and learns as well (the quality guard in the README), while on a CPU without them
bf16 is emulated and slower. :func:`resolve_precision` turns ``auto`` into the concrete name once,
when a run starts; the run's ``config.yaml`` records that name, so a resumed run keeps it.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sslkit.choices import DEVICE_CHOICES, PRECISIONS
from sslkit.errors import UserError

DTYPES = dict(zip(PRECISIONS, (torch.float32, torch.bfloat16, torch.float16)))


#: CPU feature flags (as Linux's /proc/cpuinfo names them) of native bf16 arithmetic.
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as the kernel reports them (empty where there is no /proc/cpuinfo)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bf16 arithmetic units (Intel AMX, or AVX-512 BF16 on Intel and AMD),
    so that oneDNN runs bf16 convolutions and matmuls natively instead of emulating them.

    Read from the CPUID flags the kernel lists (the bits oneDNN itself checks) rather than from
    torch's private ``torch.cpu._is_avx512_bf16_supported``, which may change without notice.
    Without /proc/cpuinfo (macOS, Windows) the answer is no, so ``auto`` picks fp32 there;
    ``--precision bf16`` still chooses bf16 by hand."""
    return bool(BF16_CPU_FLAGS & cpu_flags())


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively (CUDA: compute capability 8.0 or newer)."""
    if device.type == "cuda":
        try:
            return bool(torch.cuda.is_bf16_supported(including_emulation=False))
        except TypeError:  # older torch without the keyword
            return torch.cuda.get_device_capability(device)[0] >= 8
    if device.type == "cpu":
        return cpu_has_native_bf16()
    return False


def resolve_precision(name: str, device: torch.device) -> str:
    """``auto`` -> ``bf16`` where :func:`native_bf16`, else ``fp32``; other names pass through."""
    if name != "auto":
        return name
    return "bf16" if native_bf16(device) else "fp32"


def precision_report(device: torch.device | None = None) -> str:
    """One line for diagnostics (``sslkit plugins``): what ``--precision auto`` means here, and why."""
    device = device or resolve_device("auto")
    chosen = resolve_precision("auto", device)
    if device.type == "cpu":
        why = "the CPU has native bf16: AMX or AVX-512 BF16" if chosen == "bf16" else "the CPU has no native bf16 units"
    elif device.type == "cuda":
        why = f"{torch.cuda.get_device_name(device)} {'supports' if chosen == 'bf16' else 'lacks'} native bf16"
    else:
        why = f"no native bf16 detection for {device.type}"
    return f"--precision auto -> {chosen} on {device.type} ({why})"


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
    raise UserError(f"device '{name}' is not one of {', '.join(DEVICE_CHOICES)}")


@dataclass
class Precision:
    """Autocast and gradient scaling for one device and precision name."""

    name: str
    device: torch.device

    def __post_init__(self) -> None:
        self.name = resolve_precision(self.name, self.device)
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
