"""Native bf16 on the CPU is read from the kernel's CPU flags, not from a private torch probe."""

from __future__ import annotations

from sslkit.engine import device as device_module


def test_bf16_flags_decide(monkeypatch):
    monkeypatch.setattr(device_module, "cpu_flags", lambda: frozenset({"sse2", "avx512f"}))
    assert device_module.cpu_has_native_bf16() is False
    monkeypatch.setattr(device_module, "cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    assert device_module.cpu_has_native_bf16() is True
    monkeypatch.setattr(device_module, "cpu_flags", lambda: frozenset({"amx_bf16", "amx_tile"}))
    assert device_module.cpu_has_native_bf16() is True


def test_cpu_flags_reads_this_machine():
    flags = device_module.cpu_flags()
    assert isinstance(flags, frozenset)
    if flags:  # Linux: the flags every x86-64 or arm64 CPU has one of
        assert flags & {"sse2", "fp", "asimd", "lm"}
