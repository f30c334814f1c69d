"""Saving a pruned model as a plain Hugging Face checkpoint: safetensors, tokenizer, plan.json, model card.

The folder loads with stock `AutoModelForCausalLM.from_pretrained`, no custom code.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from bench import __version__, arch
from bench.atomic import write_text
from bench.errors import ExportError

log = logging.getLogger(__name__)


def model_card(base_model: str, plan, extra: dict[str, Any] | None = None) -> str:
    extra = extra or {}
    tags = ["layer-pruning", f"pruned-{plan.method}", "layerprune-bench"]
    front = ["---", f"base_model: {base_model}", "library_name: transformers", "tags:"]
    front += [f"- {t}" for t in tags] + ["---", ""]
    removed = ", ".join(map(str, plan.removed_original)) or "none"
    body = [
        f"# {base_model}, pruned with `{plan.method}`",
        "",
        f"Made by layerprune-bench {__version__}: {plan.layers_removed} of {plan.n_layers} decoder layers removed "
        f"(dense layer indices {removed}); {plan.params_removed:,} of {plan.params_total:,} parameters "
        f"({100 * plan.param_ratio:.2f} %, tied weights counted once).",
        "",
        "## Method",
        "",
        f"`{plan.method}` with parameters `{json.dumps(plan.params, sort_keys=True)}`; budget "
        f"`{json.dumps(plan.budget, sort_keys=True)}`.",
        "",
        "## Calibration",
        "",
        f"`{json.dumps(plan.calib, sort_keys=True)}`" if plan.calib else "None (this method uses no calibration data).",
        "",
        "## Plan",
        "",
        "The layer operations, in order (indices in the model as it was when each one ran):",
        "",
        "```json",
        json.dumps(plan.ops, indent=2),
        "```",
        "",
        "The full plan, with the scores behind the choice, is in `plan.json`.",
    ]
    for note in plan.notes + list(extra.get("notes", [])):
        body += ["", f"Note: {note}"]
    return "\n".join(front + body) + "\n"


def save_pruned(model, tokenizer, plan, out_dir: str | os.PathLike, base_model: str,
                extra: dict[str, Any] | None = None) -> Path:
    """Write the checkpoint into `out_dir` atomically (a temp folder beside it, then rename)."""
    out = Path(out_dir).expanduser().resolve()
    if out.is_file() or (out.is_dir() and any(out.iterdir()) and not (out / "plan.json").exists()):
        raise ExportError(f"{out} exists and is not a previous pruned-model folder",
                          "choose an empty or new --out folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        assert arch.num_layers(model) == model.config.num_hidden_layers
        model.save_pretrained(tmp, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        write_text(tmp / "plan.json", plan.to_json() + "\n")
        write_text(tmp / "README.md", model_card(base_model, plan, extra))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("saved pruned model to %s", out)
    return out
