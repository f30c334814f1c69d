"""Provenance stamped on every evaluation result: versions, device, dtype, threads."""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Any

_PACKAGES = ("torch", "transformers", "lm-eval", "datasets", "tokenizers")


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def environment(model=None) -> dict[str, Any]:
    import torch

    from bench.device import is_cuda

    env: dict[str, Any] = {"python": platform.python_version(), "machine": platform.machine(),
                           "torch_threads": torch.get_num_threads()}
    env.update({f"{name}_version": _version(name) for name in _PACKAGES})
    if model is not None:
        param = next(model.parameters(), None)
        if param is not None:
            env["device"] = str(param.device)
            env["dtype"] = str(param.dtype).removeprefix("torch.")
            if is_cuda(param.device):
                env["device_name"] = torch.cuda.get_device_name(param.device)
    return env
