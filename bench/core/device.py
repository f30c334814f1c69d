"""Device and dtype resolution from a spec: `auto` picks CUDA when present, else CPU."""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from bench.core.errors import ConfigError

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
          "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}


def resolve_device(spec: str = "auto") -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")  # device-literal-ok: `auto`
    try:
        device = torch.device(spec)
    except RuntimeError as exc:
        raise ConfigError(f"unknown device {spec!r}", "use auto, cpu, cuda or cuda:N") from exc
    if is_cuda(device) and not torch.cuda.is_available():
        raise ConfigError(f"device {spec!r} requested but CUDA is not available", "use --device cpu or auto")
    return device


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """True where the CPU has native bf16 matrix instructions (AVX512_BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_dtype(spec: str, device: torch.device) -> torch.dtype:
    """`auto`: bf16 on CUDA and on CPUs with native bf16, else fp32."""
    if spec == "auto":
        if is_cuda(device) or (device.type == "cpu" and cpu_has_fast_bf16()):
            return torch.bfloat16
        return torch.float32
    if spec not in DTYPES:
        raise ConfigError(f"unknown dtype {spec!r}", f"use auto or one of {', '.join(sorted(DTYPES))}")
    return DTYPES[spec]


def is_cuda(device: torch.device | str) -> bool:
    """True for a CUDA device (the one place that names the backend)."""
    return torch.device(device).type == "cuda"  # device-literal-ok


def synchronize(device: torch.device) -> None:
    if is_cuda(device):
        torch.cuda.synchronize(device)
