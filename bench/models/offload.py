"""Models larger than memory: loading under a per-device memory cap through accelerate's big-model dispatch,
and keeping every stage correct on the dispatched model.

`--max-memory cpu=2GiB` (or `0=70GiB,1=70GiB,cpu=100GiB`) loads the model with transformers'
`device_map="auto"`: accelerate's `infer_auto_device_map` fills the devices in order (GPUs, then CPU) up to
their caps and puts what is left on disk. Disk-offloaded modules keep their parameters on the `meta` device;
an `AlignDevicesHook` on each module that owns parameters (a Linear, a norm) loads them from the
checkpoint's own safetensors files (or from `offload_folder`) right before its forward and drops them
right after, so a forward pass streams the offloaded layers one module at a time. The input embedding
must land on a device (checked after loading), so `next(model.parameters()).device` (where the harness
puts its inputs) is a real device.

What each stage does on a dispatched model (and what it costs beyond the in-memory run):
- forward passes (scoring, calibration capture, perplexity, fidelity, the evaluation engine, latency):
  stream: every offloaded module is read from disk on every forward (one read of the offloaded bytes
  per forward pass; peak memory is the resident part plus one module's weights).
- removing layers: free (the hooks travel with their modules; names change, the weights they read do not).
- writing weights in place (LaCo's merge, ReplaceMe's fold, merging LoRA into its base layer):
  `materialized` loads the touched modules, and on exit writes their new weights to a scratch folder
  beside the offload folder and points their hooks there; the original checkpoint is never written.
  Cost: the touched modules' weights in memory while they change, and one write of them.
- training a replacement module (LLM-Streamline): `pinned` loads the module for good (one layer in memory)
  and removes its offloading, so the optimizer updates real parameters; the frozen layers around it stream.
- gradients of offloaded weights (Taylor+'s importance): read from the loaded copy each forward used
  (`weights_seen`); like LoRA below, a backward pass holds every weight it used.
- training offloaded layers in place (LAST's healing of the last layers): they are `pinned` first.
- LoRA healing: the adapters live in memory; the frozen base layers stream on the forward pass, but
  autograd keeps each base weight it used until the backward pass, so a training step holds the whole
  model's weights at its peak (as it does in memory).
- copying the dense model before pruning (`copy.deepcopy`): the copy shares the offloaded files; only the
  resident part is duplicated.
- the output head: kept resident (`keep_head_resident`) where the cap left it offloaded, since perplexity,
  fidelity and the engine call it per chunk of positions; its size comes on top of the cap.
- export (`save_pretrained`): reads offloaded weights shard by shard (`EXPORT_SHARD`), so the peak is one
  shard.
Scratch files live until the process ends: a LaCo search writes one layer per trial merge (accepted or not).
Several GPUs (`0=70GiB,1=70GiB`) go through the same accelerate path, but no multi-GPU machine has run it:
captures that gather per-layer states (calibration) move them to the input's device first; others are
unverified there.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import logging
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from bench.core.errors import ConfigError

log = logging.getLogger(__name__)

EXPORT_SHARD = "1GB"  # save_pretrained's shard size for a dispatched model: the peak memory of an export
_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$", re.IGNORECASE)
_HINT = "use DEVICE=SIZE pairs, e.g. --max-memory cpu=2GiB or --max-memory 0=70GiB,1=70GiB,cpu=100GiB"


# ------------------------------------------------------------------------------------------- parsing


def parse_size(text: str) -> int:
    """'2GiB', '500MB', '1.5GB', '1024' (bytes) -> bytes; ValueError otherwise."""
    match = _SIZE.match(str(text))
    if not match or match.group(2).lower() not in (*_UNITS, ""):
        raise ValueError(text)
    value = float(match.group(1)) * _UNITS.get(match.group(2).lower() or "b")
    if value < 1:
        raise ValueError(text)
    return int(value)


def parse_max_memory(text: str | None) -> dict[int | str, int] | None:
    """`cpu=2GiB,0=70GiB` -> {"cpu": 2147483648, 0: 75161927680} (accelerate's `max_memory`); None -> None.

    Devices: `cpu`, a GPU index `N` (or `cuda:N`), `mps`. Raises ConfigError on anything else."""
    if text is None or str(text).strip().lower() in ("", "none"):
        return None
    out: dict[int | str, int] = {}
    for item in str(text).split(","):
        device, sep, size = item.partition("=")
        device = device.strip().lower().removeprefix("cuda:")
        if not sep or not device:
            raise ConfigError(f"--max-memory entry {item.strip()!r} is not DEVICE=SIZE", _HINT)
        if not (device in ("cpu", "mps") or device.isdigit()):
            raise ConfigError(f"--max-memory names an unknown device {device!r}", _HINT)
        try:
            nbytes = parse_size(size)
        except ValueError:
            raise ConfigError(f"--max-memory size {size.strip()!r} for {device} is not a size",
                              "sizes are like 2GiB, 500MB or 1.5GB") from None
        key: int | str = int(device) if device.isdigit() else device
        if key in out:
            raise ConfigError(f"--max-memory lists {device} twice", _HINT)
        out[key] = nbytes
    return out


def default_offload_folder() -> Path:
    from bench.core.paths import cache_root

    return cache_root() / "offload"


# ------------------------------------------------------------------------------------------- loading


def check_devices(max_memory: str | dict[int | str, int] | None,
                  offload_folder: str | Path | None = None) -> dict[int | str, int] | None:
    """Parse (if text) and check the caps against this machine (a GPU index it does not have is a
    ConfigError) and, with caps, that the offload folder can be written (a PathError)."""
    import torch

    caps = parse_max_memory(max_memory) if isinstance(max_memory, str | None) else max_memory
    if caps:
        from bench.core.pathcheck import writable_folder

        writable_folder(offload_folder or default_offload_folder(), "--offload-dir")
    count = torch.cuda.device_count()
    missing = [g for g in (caps or {}) if isinstance(g, int) and g >= count]
    if missing:
        raise ConfigError(f"--max-memory names GPU {missing[0]} but this machine has {count} GPU(s)",
                          "name only the GPUs it has, or cpu=SIZE")
    return caps


def load_kwargs(max_memory: dict[int | str, int], offload_folder: str | Path | None = None) -> dict[str, Any]:
    """`from_pretrained` keyword arguments that dispatch the model under `max_memory` (checked against the
    machine: a GPU index that does not exist is a ConfigError)."""
    import torch

    check_devices(max_memory)
    count = torch.cuda.device_count()
    folder = Path(offload_folder).expanduser() if offload_folder else default_offload_folder()
    folder.mkdir(parents=True, exist_ok=True)
    _SCRATCH.base = _SCRATCH.base or folder
    # devices without a cap get none of the model (accelerate would otherwise fill them)
    caps: dict[int | str, int] = {g: 0 for g in range(count)} | {"cpu": 0} | dict(max_memory)
    return {"device_map": "auto", "max_memory": caps, "offload_folder": str(folder)}


def check_inputs_resident(model) -> None:
    """The harness puts its inputs where the model's first parameter (the input embedding) is: that must be
    a real device, not disk."""
    first = next(model.parameters())
    if first.is_meta:
        size = first.numel() * first.element_size()
        size_text = f"{size / 2**30:.2f} GiB" if size >= 2**30 else f"{size / 2**20:.1f} MiB"
        raise ConfigError(f"--max-memory leaves no room for the input embedding ({size_text}) on any device, so "
                          "it went to disk", "give the first device (cpu or GPU 0) about twice the embedding's size "
                          "or more: accelerate also keeps room there for the largest layer it streams")


# ------------------------------------------------------------------------------------------- queries


def offload_hooks(module) -> list:
    """The AlignDevicesHooks of `module` that offload its weights (inside a SequentialHook too)."""
    hook = getattr(module, "_hf_hook", None)
    if hook is None:
        return []
    hooks = getattr(hook, "hooks", None) or [hook]
    return [h for h in hooks if getattr(h, "offload", False) and getattr(h, "weights_map", None) is not None]


def is_dispatched(model) -> bool:
    """True when some weights of `model` are offloaded (on `meta`, loaded by a hook on each forward)."""
    return any(p.is_meta for p in model.parameters())


def offloaded_modules(roots: Iterable) -> list:
    """Every module inside `roots` whose own weights are offloaded (each once)."""
    seen, out = set(), []
    for root in roots:
        for module in root.modules():
            if id(module) not in seen and offload_hooks(module):
                seen.add(id(module))
                out.append(module)
    return out


def describe(model) -> dict[str, Any]:
    """Where the model's parameters live (for provenance): bytes per device; offloaded ones as `cpu-offload`
    (held in RAM, computed on a GPU) or `disk` (read from a file on each forward)."""
    where: dict[str, int] = {}
    for module in model.modules():
        hooks = offload_hooks(module)
        for name, p in module.named_parameters(recurse=False):
            key = str(p.device)
            if p.is_meta:
                key = "disk"
                wm = hooks[0].weights_map if hooks else None
                loader, prefix = getattr(wm, "dataset", None), getattr(wm, "prefix", "")
                if wm is not None and (loader is None or prefix + name in loader.state_dict):
                    key = "cpu-offload"
            where[key] = where.get(key, 0) + p.numel() * p.element_size()
    return {"bytes_by_device": where, "device_map": dict(getattr(model, "hf_device_map", {}) or {})}


def weight_sources(root) -> dict[str, Any] | None:
    """Where each offloaded weight inside `root` is read from (file, tensor name, dtype), by its name in
    `root` (resident weights are not listed); None when an offloaded weight's source is unknown. Equal
    sources are equal weights, found without reading them."""
    out: dict[str, Any] = {}
    for name, module in root.named_modules():
        for hook in offload_hooks(module):
            wm = hook.weights_map
            loader, prefix = getattr(wm, "dataset", None), getattr(wm, "prefix", None)
            if loader is None or prefix is None:
                return None
            for key, tensor in [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]:
                if not tensor.is_meta:
                    continue
                info = loader.index.get(prefix + key)
                if info is None:
                    return None
                where = info.get("safetensors_file") or str(Path(loader.save_folder) / f"{prefix}{key}.dat")
                out[f"{name}.{key}" if name else key] = (where, info.get("weight_name", prefix + key), info["dtype"])
    return out


# ------------------------------------------------------------------------------------------- writing


class _Scratch:
    """Where changed weights of offloaded modules go: a private folder of accelerate `.dat` files inside the
    first offload folder of the process, read back through an `OffloadedWeightsLoader` (removed when the
    process ends). Every write gets new file names, so a copy of a model never sees its original's changes."""

    def __init__(self):
        self.base: Path | None = None  # the run's offload folder (load_kwargs sets it)
        self.folder: Path | None = None
        self.loader = None
        self.counter = itertools.count()

    def write(self, module, tensors: dict[str, Any]) -> Any:
        """Store `tensors` (name -> tensor) and return a weights map for `module`'s hook."""
        from accelerate.utils import OffloadedWeightsLoader, PrefixedDataset, offload_weight

        if self.folder is None:
            base = self.base or default_offload_folder()
            base.mkdir(parents=True, exist_ok=True)
            self.folder = Path(tempfile.mkdtemp(prefix="scratch-", dir=base))
            atexit.register(shutil.rmtree, self.folder, True)
            self.loader = OffloadedWeightsLoader(save_folder=str(self.folder), index={})
        prefix = f"w{next(self.counter)}."
        for name, tensor in tensors.items():
            offload_weight(tensor.detach().to("cpu"), prefix + name, str(self.folder), index=self.loader.index)
        return PrefixedDataset(self.loader, prefix)


_SCRATCH = _Scratch()


def _load_module(module) -> dict[str, Any]:
    """Load `module`'s offloaded tensors onto its execution device as real parameters; returns the hook."""
    from accelerate.utils import set_module_tensor_to_device

    hook = offload_hooks(module)[0]
    names = [n for n, t in [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]
             if t.is_meta]
    for name in names:
        set_module_tensor_to_device(module, name, hook.execution_device, value=hook.weights_map[name])
    return hook


@contextlib.contextmanager
def materialized(roots: Iterable, write_back: bool = True) -> Iterator[None]:
    """Within the block, the offloaded weights inside `roots` are real tensors that may be read and changed
    in place. On exit (`write_back`) each such module's weights go to the scratch folder, its hook reads them
    from there, and its parameters return to `meta`; without `write_back` they are dropped unchanged. A model
    with nothing offloaded passes through untouched."""
    from accelerate.utils import set_module_tensor_to_device

    modules = offloaded_modules(roots)
    hooks = [_load_module(m) for m in modules]
    try:
        yield
    finally:
        for module, hook in zip(modules, hooks, strict=True):
            own = {n: t for n, t in module.named_parameters(recurse=False)}
            if hook.offload_buffers:
                own |= {n: t for n, t in module.named_buffers(recurse=False)}
            own = {n: t for n, t in own.items() if not t.is_meta}
            if write_back:
                hook.weights_map = _SCRATCH.write(module, own)
            for name in own:
                set_module_tensor_to_device(module, name, "meta")
    if modules:
        log.debug("materialized %d offloaded modules%s", len(modules), " (written back)" if write_back else "")


@contextlib.contextmanager
def weights_seen(roots: Iterable) -> Iterator[list[tuple[Any, dict[str, Any]]]]:
    """Within the block, every forward of an offloaded module inside `roots` appends (module, {name: the real
    parameter it computed with}) to the yielded list, before the parameters go back to `meta`: what a caller
    needs to read the gradients of offloaded weights after a backward pass (the entries keep those weights
    alive until the caller drops them)."""
    modules = offloaded_modules(roots)
    seen: list[tuple[Any, dict[str, Any]]] = []
    originals = []
    for module in modules:
        hook = offload_hooks(module)[0]
        original = hook.post_forward

        def post_forward(mod, output, _original=original):
            seen.append((mod, dict(mod.named_parameters(recurse=False))))
            return _original(mod, output)

        hook.post_forward = post_forward
        originals.append((hook, original))
    try:
        yield seen
    finally:
        for hook, original in originals:
            hook.post_forward = original


def keep_head_resident(model) -> None:
    """Load an offloaded output head into memory for good: perplexity, fidelity and the evaluation engine call
    the head on chunks of positions outside the model's forward, and each call of an offloaded head would
    read all of it again (Qwen2.5-1.5B: 0.9 GB per chunk in fp32). Costs the head's size beyond the cap."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is not None and offloaded_modules([head]):
        pinned(head)
        log.info("kept the output head in memory (%.2f GiB): it is called per chunk of positions",
                 sum(p.numel() * p.element_size() for p in head.parameters()) / 2**30)


def pinned(root):
    """Load every offloaded weight inside `root` into memory for good and stop offloading it (the hook then
    only moves inputs to the module's device): a module that training updates. Returns `root`."""
    modules = offloaded_modules([root])
    for module in modules:
        hook = _load_module(module)
        hook.offload = False
        hook.weights_map = None
    if modules:
        log.info("loaded %d offloaded modules into memory to train them", len(modules))
    return root
