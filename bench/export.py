"""Saving a pruned model as a plain Hugging Face checkpoint: safetensors, tokenizer, plan.json, model card.

The folder loads with stock `AutoModelForCausalLM.from_pretrained`, no custom code. It is built in a
temporary folder beside --out and renamed into place; its last file is a marker listing every file the
harness wrote with its size and sha256. An existing --out is replaced only when that marker proves it is
the harness's own previous export (`bench.export_target`); anything else is left alone.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

from bench import __version__, arch
from bench.atomic import dir_mode, file_mode, make_temp_dir, write_json, write_text
from bench.export_target import MARKER, check_target, file_digest

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
                extra: dict[str, Any] | None = None, force: bool = False,
                protect: tuple[str | os.PathLike, ...] = ()) -> Path:
    """Write the checkpoint into `out_dir` atomically (a temporary folder beside it, then a rename).

    An existing `out_dir` is replaced only when it is the harness's own previous export (with `force`:
    also one whose files were edited since); see `bench.export_target.check_target`."""
    out = check_target(out_dir, force=force, protect=protect)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(out.parent, prefix=f".{out.name}.tmp-")
    try:
        assert arch.num_layers(model) == model.config.num_hidden_layers
        _save_pretrained(model, tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        write_text(tmp / "plan.json", plan.to_json() + "\n")
        write_text(tmp / "README.md", model_card(base_model, plan, extra))
        for path in tmp.rglob("*"):  # some writers (safetensors) create 0600 files: the umask decides
            path.chmod(dir_mode() if path.is_dir() else file_mode())
        files = {str(p.relative_to(tmp)): file_digest(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        write_json(tmp / MARKER, {"written_by": "layerprune-bench", "version": __version__, "files": files,
                                  "base_model": base_model, "method": plan.method})
        check_target(out, force=force, protect=protect)  # again: nothing may have appeared there meanwhile
        _swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("saved pruned model to %s", out)
    return out


def _save_pretrained(model, folder: Path) -> None:
    """save_pretrained with safetensors; safetensors' own I/O errors become the OSError they are."""
    from bench import offload

    shard = {"max_shard_size": offload.EXPORT_SHARD} if offload.is_dispatched(model) else {}
    try:
        model.save_pretrained(folder, safe_serialization=True, **shard)
    except Exception as exc:
        found = re.search(r"\(os error (\d+)\)", str(exc))
        if found is None or isinstance(exc, OSError):
            raise
        code = int(found.group(1))
        raise OSError(code, os.strerror(code), str(folder)) from exc


def _swap_in(tmp: Path, out: Path) -> None:
    """Rename `tmp` to `out`; a previous `out` is moved aside first and removed only once `tmp` is in place."""
    if not out.exists():
        os.replace(tmp, out)
        return
    old = out.parent / f".{out.name}.old-{os.getpid()}-{time.time_ns()}"
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)
