"""Provenance stamped on every evaluation result: versions, device, dtype, threads; the host's state (load,
usable CPUs, CPU model) that latency and the cell provenance record."""

from __future__ import annotations

import contextlib
import platform
import subprocess
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

    from bench.core.device import is_cuda

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


def _quiet_git_describe() -> str | None:
    try:
        proc = subprocess.run(["git", "describe", "--always"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() or None if proc.returncode == 0 else None


@contextlib.contextmanager
def quiet_git_probe():
    """lm-eval's `simple_evaluate` runs `git describe` in the current folder with git's stderr open, so every
    evaluation outside a git checkout printed git's "fatal: not a git repository"; within this block it
    asks git the same question with its stderr captured."""
    import lm_eval.evaluator as evaluator

    original = evaluator.get_git_commit_hash
    evaluator.get_git_commit_hash = _quiet_git_describe
    try:
        yield
    finally:
        evaluator.get_git_commit_hash = original


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else the platform's word for it."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host_state() -> dict[str, Any]:
    """The 1-minute load average, the CPUs this process may use, and the CPU model."""
    import os

    try:
        load = os.getloadavg()[0]
    except (OSError, AttributeError):
        load = None
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return {"load_1m": load, "cpus": cpus, "cpu_model": cpu_model()}
