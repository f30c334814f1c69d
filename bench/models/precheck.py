"""What can be checked about a model before it loads: its config.json and its safetensors headers.

`bench run --ratios 0.999` or `--calib-seq-len 1000000` must fail before a model loads, not after the dense
cell was computed. For a model whose files are on disk (a local folder, a converted zoo model, a cached hub
snapshot) the layer count, the parameters of every decoder layer and the context length are read from
those files alone, and a budget that leaves no layer or a window longer than the model's context is one
BudgetError / ConfigError. A model not on disk yet is checked after its download, as before. Reads a few
kilobytes; imports no torch.
"""

from __future__ import annotations

import json
import math
import re
import struct
from pathlib import Path
from typing import Any

from bench.core.errors import BudgetError, ConfigError

# the decoder-layer index in a weight's name: model.layers.3.mlp..., transformer.h.3..., blocks.3...
_LAYER = re.compile(r"(?:^|\.)(?:layers|h|blocks)\.(\d+)\.")
_CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length")


def model_folder(name: str) -> Path | None:
    """The Hugging Face folder of `name` when it is on disk already (never downloads or converts)."""
    from bench.models import zoo

    try:
        entry = zoo.resolve(name)
        if entry.kind == "local-folder":
            return Path(entry.location)
        if entry.kind == "hub":
            return zoo._hub_cached(entry.location)
        return zoo.cache_folder(entry) if zoo.is_cached(name) else None
    except Exception:  # noqa: BLE001 - a check that cannot look simply does not check (the load will)
        return None


def _config(folder: Path) -> dict[str, Any] | None:
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    text = config.get("text_config")
    return text if isinstance(text, dict) else config


def layer_parameters(folder: Path) -> tuple[list[int], int] | None:
    """(parameters of each decoder layer, all parameters) from the safetensors headers in `folder` (tied
    weights are stored once, as the harness counts them); None where the headers cannot be read."""
    layers: dict[int, int] = {}
    total = 0
    files = sorted(folder.glob("*.safetensors"))
    try:
        for path in files:
            with open(path, "rb") as fh:
                header = json.loads(fh.read(struct.unpack("<Q", fh.read(8))[0]))
            for key, tensor in header.items():
                if key == "__metadata__":
                    continue
                n = math.prod(tensor["shape"])
                total += n
                found = _LAYER.search(key)
                if found:
                    layers[int(found.group(1))] = layers.get(int(found.group(1)), 0) + n
    except (OSError, ValueError, KeyError, TypeError, struct.error):
        return None
    if not files or not layers or sorted(layers) != list(range(len(layers))):
        return None
    return [layers[i] for i in range(len(layers))], total


def check_budgets(name: str, ratios: tuple[float, ...] = (), layers: tuple[int, ...] = ()) -> None:
    """Every budget leaves at least one decoder layer of `name` (ratios converted to layers the way
    `methods.base.Budget.to_layers` converts them)."""
    from bench.models import zoo

    entry = zoo.resolve(name)
    counts = None
    folder = model_folder(name)
    if folder is not None:
        counts = layer_parameters(folder)
    n_layers = len(counts[0]) if counts else entry.layers
    if n_layers is None:
        return
    for n in layers:
        if n >= n_layers:
            raise BudgetError(f"removing {n} layers leaves no layer of {name} ({n_layers} layers)",
                              f"remove at most {n_layers - 1} layers")
    if counts is None:
        return
    per_layer, total = counts
    mean = sum(per_layer) / len(per_layer)
    for ratio in ratios:
        k = max(1, int(math.floor(ratio * total / mean + 0.5)))
        if k >= n_layers:
            most = (n_layers - 0.5) * mean / total  # ratios from here on round to n_layers
            raise BudgetError(f"ratio {ratio:g} means removing {k} of the {n_layers} layers of {name}, which "
                              "leaves no layer", f"use a ratio below {most:.3f}, or --layers")


def check_seq_len(name: str, seq_len: int, option: str) -> None:
    """A window of `seq_len` tokens fits `name`'s context (its config's position limit)."""
    folder = model_folder(name)
    config = _config(folder) if folder is not None else None
    if not config:
        return
    limit = next((config[k] for k in _CONTEXT_KEYS if isinstance(config.get(k), int) and config[k] > 0), None)
    if limit is not None and seq_len > limit:
        raise ConfigError(f"{option} {seq_len} is longer than the context of {name} ({limit} tokens)",
                          f"use {option} {min(limit, 128)} (at most {limit})")
