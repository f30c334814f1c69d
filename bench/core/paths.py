"""Where the harness keeps its caches: models, data, calibration captures."""

from __future__ import annotations

import os
from pathlib import Path

ENV_CACHE = "BENCH_CACHE_DIR"


def cache_root() -> Path:
    """The cache root: $BENCH_CACHE_DIR, else $XDG_CACHE_HOME/layerprune-bench, else ~/.cache/layerprune-bench."""
    explicit = os.environ.get(ENV_CACHE)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "layerprune-bench"


def set_cache_root(path: str | os.PathLike) -> None:
    """Point every cache at `path` (what the CLI's --cache-dir does)."""
    os.environ[ENV_CACHE] = str(Path(path).expanduser().resolve())


def models_dir() -> Path:
    return cache_root() / "models"


def data_dir() -> Path:
    return cache_root() / "data"


def downloads_dir() -> Path:
    return cache_root() / "downloads"
