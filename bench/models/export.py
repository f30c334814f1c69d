"""Saving a pruned model as a plain Hugging Face checkpoint: safetensors, tokenizer, plan.json, model card.

The folder loads with stock `AutoModelForCausalLM.from_pretrained`, no custom code. It is built in a
temporary folder beside --out and renamed into place; its last file is a marker listing every file the
harness wrote with its size and sha256. An existing --out is replaced only when that marker proves it is
the harness's own previous export (`bench.models.export_target`); anything else is left alone.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import re
import shutil
import socket
import time
from pathlib import Path
from typing import Any

from bench import __version__
from bench.core.atomic import dir_mode, file_mode, make_temp_dir, write_json, write_text
from bench.models import arch
from bench.models.export_target import MARKER, check_target, file_digest

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
    body += sublayer_card_section(plan)
    for note in plan.notes + list(extra.get("notes", [])):
        body += ["", f"Note: {note}"]
    return "\n".join(front + body) + "\n"


def sublayer_card_section(plan) -> list[str]:
    """The card's words for a plan that drops attention or MLP sublayers alone: what the checkpoint holds
    (stock layers, the dropped sublayers' weights zero: exact logits, not faster) and why no faster format."""
    units = plan.units() if hasattr(plan, "units") else {"attn": [], "mlp": []}
    if not units["attn"] and not units["mlp"]:
        return []
    return [
        "",
        "## Dropped sublayers",
        "",
        f"Attention sublayers dropped alone (dense layer indices): {', '.join(map(str, units['attn'])) or 'none'}; "
        f"MLP sublayers dropped alone: {', '.join(map(str, units['mlp'])) or 'none'}; whole blocks removed: "
        f"{', '.join(map(str, units['blocks'])) or 'none'}.",
        "",
        "**This checkpoint is exact but not faster.** It is a stock architecture: each dropped sublayer is "
        "stored with all of its projection weights (and biases) set to zero, so it adds exactly zero to the "
        "residual stream and the logits equal the pruned model's in the harness, but stock `transformers` still "
        "computes those zero sublayers (and keeps a KV cache for zeroed attentions). In the harness the dropped "
        "sublayers are skipped with their norms and allocate no KV cache; the speed-up and memory measured there "
        "are the pruned model's, not this checkpoint's.",
        "",
        "No faster format exists that stock tools load without remote code: transformers 5.x configs carry "
        "per-layer overrides (`per_layer_config`) only for the models written to read them, and no supported "
        "family (Llama, Mistral, Qwen2/3, Gemma 2/3, Phi, Phi-3, GPT-2, OPT, GPT-NeoX) has a per-layer switch "
        "that removes its attention or MLP sublayer. (LLM-Drop's own checkpoints need `trust_remote_code`.)",
    ]


def save_pruned(model, tokenizer, plan, out_dir: str | os.PathLike, base_model: str,
                extra: dict[str, Any] | None = None, force: bool = False,
                protect: tuple[str | os.PathLike, ...] = ()) -> Path:
    """Write the checkpoint into `out_dir` atomically (a temporary folder beside it, then a rename).

    An existing `out_dir` is replaced only when it is the harness's own previous export (with `force`:
    also one whose files were edited since); see `bench.models.export_target.check_target`."""
    out = check_target(out_dir, force=force, protect=protect)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)
    tmp = make_temp_dir(out.parent, prefix=f".{out.name}.tmp-{socket.gethostname()}-{os.getpid()}-")
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


LEGACY_STALE_S = 3600.0  # a temporary folder named without its writer (older versions) is stale after this


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, and belongs to someone else
        return True
    return True


def remove_stale_temporaries(out: Path) -> list[Path]:
    """Remove what a killed export to `out` left beside it: its temporary folder (`.<out>.tmp-<host>-<pid>-*`,
    whose writer on this host is gone) and, where `out` itself is in place, the previous export it had moved
    aside (`.<out>.old-<pid>-*`). A temporary folder of an older version, which does not name its writer, is
    removed once it has not changed for LEGACY_STALE_S. Returns the folders removed."""
    host, removed = socket.gethostname(), []
    for path in out.parent.glob(f".{glob.escape(out.name)}.*"):
        rest = path.name[len(out.name) + 2:]
        kind, _, tail = rest.partition("-")
        if kind not in ("tmp", "old") or not path.is_dir() or path.is_symlink():
            continue
        if kind == "old":
            pid = tail.split("-")[0]
            stale = out.is_dir() and pid.isdigit() and not _alive(int(pid))
        elif tail.startswith(f"{host}-"):
            pid = tail[len(host) + 1:].split("-")[0]
            stale = pid.isdigit() and not _alive(int(pid))
        else:
            stale = "-" not in tail and time.time() - path.stat().st_mtime > LEGACY_STALE_S  # mkdtemp's suffix
        if stale:
            log.warning("removing %s, left by an export that was killed", path)
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _save_pretrained(model, folder: Path) -> None:
    """save_pretrained with safetensors; safetensors' own I/O errors become the OSError they are."""
    from bench.models import offload

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
