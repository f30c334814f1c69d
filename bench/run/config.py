"""The run spec: frozen dataclasses built from a preset, a YAML file and command-line options, in that order.

Every layer is a plain mapping with the shape of `RunSpec.to_dict()`; `merge` lays one over another
(nested sections merge key by key; a list replaces a list; `ratios`/`layers` replace the budget as a
whole), and `RunSpec.from_dict` turns the result into typed, validated, frozen dataclasses. Unknown keys
are rejected with a suggestion at every level. This module imports no torch.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.core import values
from bench.core.errors import BudgetError, ConfigError

EXECUTORS = ("local", "slurm", "submitit-local")
ALL = "all"  # `methods: all` means every registered method
MAX_LIST = 1_000  # entries of any one list (models, methods, ratios, layers, seeds, tasks, corpora)
MAX_CELLS = 100_000  # cells of one run (models x methods x budgets x seeds, plus the dense cells)
MAX_SEED = 2**32 - 1  # seeds are unsigned 32-bit (numpy's limit; torch, random and the store agree)
MAX_YAML_VALUES = 1_000_000  # values a run YAML may expand to (aliases counted each time they are used)


def _show(value: Any) -> str:
    """A value as an error message may echo it: short, whatever its size (a YAML alias bomb)."""
    import reprlib

    short = reprlib.Repr()
    short.maxlevel, short.maxstring, short.maxother = 2, 60, 60
    short.maxlist = short.maxtuple = short.maxdict = short.maxset = 4
    return short.repr(value)


def check_seed(seed: Any, where: str) -> int:
    """A seed in [0, 2**32 - 1]: larger ones overflow numpy, and the store's integer columns."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"{where} {_show(seed)} is outside 0 .. {MAX_SEED}", f"use a seed such as {where} 0")
    return seed


def _no_duplicates(items: tuple | list, where: str, what: str, show=str) -> None:
    seen: set = set()
    for item in items:
        if item in seen:
            raise ConfigError(f"{what} {show(item)} is listed twice in {where}", "list each one once")
        seen.add(item)


def _capped(items: tuple | list, where: str) -> None:
    if len(items) > MAX_LIST:
        raise ConfigError(f"{where} lists {len(items):,} entries, more than the {MAX_LIST:,} a run takes",
                          "split the run into several, or list fewer")


def option(default: Any = dataclasses.MISSING, *, flag: str | None = None, help: str = "", group: str = "run",
           exclusive: str | None = None, choices: tuple[str, ...] | None = None, default_factory: Any = None,
           none_clears_section: bool = False) -> Any:
    """A spec field, and (with `flag`) the `bench run` option that sets it: the field is the one statement
    of the option; `bench run`'s flags and the command-line layer of `resolve` are built from it
    (bench.cli.options).

    group: the --help section; exclusive: options sharing a name exclude each other (the budget);
    none_clears_section: `--flag none` drops the whole section the field is in (`--ppl none`).
    """
    meta = {"flag": flag, "help": help, "group": group, "exclusive": exclusive, "choices": choices,
            "none_clears_section": none_clears_section}
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


# ------------------------------------------------------------------------------------------------ sections


@dataclass(frozen=True)
class ModelSpec:
    name: str  # a zoo name, a hub id, a local Hugging Face folder or a .gguf file


@dataclass(frozen=True)
class MethodSpec:
    name: str
    params: tuple[tuple[str, Any], ...] = ()  # sorted (name, value) pairs, as given (defaults not filled)

    def params_dict(self) -> dict[str, Any]:
        return dict(self.params)

    def with_defaults(self, defaults: tuple[MethodSpec, ...]) -> MethodSpec:
        """This method with the run's `method_params` for it underneath its own parameters."""
        base = {k: v for d in defaults if d.name == self.name for k, v in d.params}
        return MethodSpec(self.name, tuple(sorted({**base, **self.params_dict()}.items())))


@dataclass(frozen=True)
class PerplexitySpec:
    corpora: tuple[str, ...] = option(("c4",), flag="--ppl", group="evaluation", none_clears_section=True,
                                      help="perplexity corpora: wikipedia, c4, a .txt path (comma-separated), or none")
    window: int = 512
    max_windows: int | None = None  # None: every full window of the corpus
    batch_size: int = 4
    add_bos: bool | None = None  # None: BOS first in each window exactly when the tokenizer adds one itself

    def __post_init__(self):
        if self.add_bos not in (None, True, False):
            raise ConfigError(f"perplexity add_bos must be true, false or null (auto), got {self.add_bos!r}",
                              "leave it out for auto")
        if self.window < 2 or self.batch_size < 1 or (self.max_windows is not None and self.max_windows < 1):
            raise ConfigError("perplexity needs window >= 2, batch_size >= 1 and max_windows >= 1",
                              "e.g. perplexity: {window: 512, max_windows: 16}")
        _capped(self.corpora, "eval.perplexity.corpora")
        _no_duplicates(self.corpora, "eval.perplexity.corpora", "perplexity corpus", repr)


@dataclass(frozen=True)
class FidelitySpec:
    """Bits per byte over whole held-out documents and KL to dense (bench.evaluate.bits_per_byte)."""

    corpora: tuple[str, ...] = ("c4",)  # built-in (c4, wikipedia: documents from the start) or a .txt file
    window: int = 512
    max_documents: int | None = 32      # a document budget (whole documents), not a token cap
    max_bytes: int | None = None        # and/or a byte budget
    batch_size: int = 4
    max_document_bytes: int | None = None  # only documents of at most this many bytes (a small budget's many)

    def __post_init__(self):
        if self.window < 2 or self.batch_size < 1 or (self.max_documents is not None and self.max_documents < 1) \
                or (self.max_bytes is not None and self.max_bytes < 1) \
                or (self.max_document_bytes is not None and self.max_document_bytes < 1):
            raise ConfigError("fidelity needs window >= 2, batch_size >= 1, max_documents, max_bytes and "
                              "max_document_bytes >= 1", "e.g. fidelity: {corpora: [c4], max_documents: 32}")


@dataclass(frozen=True)
class LatencySpec:
    prompt_tokens: int = 128
    new_tokens: int = 32
    batch_size: int = 1
    warmup: int = 1
    repeats: int = 3
    batch_sizes: tuple[int, ...] = ()  # every batch size to measure (pruned and dense interleaved); () = batch_size

    def __post_init__(self):
        if self.prompt_tokens < 1 or self.new_tokens < 2 or self.batch_size < 1 or self.repeats < 1 \
                or self.warmup < 0 or any(b < 1 for b in self.batch_sizes):
            raise ConfigError("latency needs prompt_tokens >= 1, new_tokens >= 2, batch sizes >= 1, repeats >= 1",
                              "e.g. latency: {prompt_tokens: 64, new_tokens: 16, batch_sizes: [1, 8]}")

    @property
    def all_batch_sizes(self) -> tuple[int, ...]:
        return self.batch_sizes or (self.batch_size,)


@dataclass(frozen=True)
class EvalSpec:
    tasks: tuple[str, ...] = option((), flag="--tasks", group="evaluation",
                                    help="comma-separated tasks (see `bench ls tasks`), or none")
    limit: int | None = option(None, flag="--limit", group="evaluation",  # N documents (see `subset`); None: all
                               help="N documents per task (a seeded random subset; see --subset), or none for "
                                    "all; on the command line it bounds the whole cell: also at most N perplexity "
                                    "windows and N fidelity documents (quick preset: 50)")
    subset: str = option("random", flag="--subset", group="evaluation", choices=("random", "first"),
                         help="which N documents --limit takes: a seeded random subset (default; lm-eval's "
                              "samples=) or the first N (lm-eval's limit)")
    subset_seed: int = option(0, flag="--subset-seed", group="evaluation",
                              help="seed of the random document subset (default 0)")
    engine: str = option("prefix", flag="--engine", group="evaluation", choices=("prefix", "lm-eval"),
                         help="accuracy scoring: prefix (default; shared contexts and the dense model's layer "
                              "states, same numbers) or lm-eval's HFLM")
    num_fewshot: int = option(0, flag="--num-fewshot", group="evaluation", help="few-shot examples (default 0)")
    batch_size: int = option(8, flag="--batch-size", group="evaluation", help="evaluation batch size")
    perplexity: PerplexitySpec | None = None
    fidelity: FidelitySpec | None = None  # bits per byte and KL to dense on whole documents
    latency: LatencySpec | None = None
    stability: bool = True  # stability vs the dense model (needs multiple-choice tasks)
    log_lm_eval_samples: bool = False  # also keep lm-eval's raw per-sample log beside the record

    def __post_init__(self):
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit {self.limit} must be at least 1", "use e.g. --limit 50, or none for all")
        if self.batch_size < 1 or self.num_fewshot < 0:
            raise ConfigError("eval needs batch_size >= 1 and num_fewshot >= 0", "e.g. --batch-size 8")
        if self.subset not in ("random", "first"):
            raise ConfigError(f"unknown document subset {self.subset!r}", "use random (seeded) or first")
        if self.engine not in ("prefix", "lm-eval"):
            raise ConfigError(f"unknown evaluation engine {self.engine!r}", "use prefix or lm-eval")
        check_seed(self.subset_seed, "--subset-seed")
        _capped(self.tasks, "eval.tasks")
        _no_duplicates(self.tasks, "eval.tasks", "task", repr)


@dataclass(frozen=True)
class CalibConfig:
    """bench.data.calibration.CalibSpec without its seed, which comes from the matrix (one per run seed)."""

    source: str = option("wikipedia", flag="--calib", group="evaluation",
                         help="calibration text: wikipedia, c4, or a .txt/.jsonl path")
    n_samples: int = option(64, flag="--calib-samples", group="evaluation", help="calibration windows")
    seq_len: int = 128
    batch_size: int = 8
    last_boundary: str = "raw"

    def __post_init__(self):
        if self.n_samples < 1 or self.seq_len < 2 or self.batch_size < 1:
            raise ConfigError("calibration needs n_samples >= 1, seq_len >= 2 and batch_size >= 1",
                              "e.g. calib: {n_samples: 64, seq_len: 128}")
        if self.last_boundary not in ("raw", "final_norm"):
            raise ConfigError(f"unknown last_boundary {self.last_boundary!r}", "use raw or final_norm")


@dataclass(frozen=True)
class TrainConfig:
    """bench.data.training_text.TrainDataSpec: the training text of methods that train (healing, replacements)."""

    source: str = "c4"  # c4 | wikipedia (their training ranges, bench.data.splits) | a path
    add_bos: bool | None = None  # None: BOS first in each window exactly when the tokenizer adds one


@dataclass(frozen=True)
class SlurmSpec:
    partition: str | None = option(None, flag="--partition", group="slurm", help="Slurm partition")
    gpus_per_cell: int = option(1, flag="--gpus-per-cell", group="slurm", help="GPUs per cell job (default 1)")
    cpus_per_cell: int = option(8, flag="--cpus-per-cell", group="slurm", help="CPUs per cell job (default 8)")
    mem_gb: int = option(64, flag="--mem-gb", group="slurm", help="memory per cell job, GB (default 64)")
    time_min: int = option(120, flag="--time-min", group="slurm",
                           help="time limit per cell job, minutes (default 120)")
    array_parallelism: int = 32
    cluster: str | None = None  # None: Slurm; "local" or "debug": submitit's local executors (tests, laptops)
    folder: str | None = None  # submitit's logs and pickles; default <store>/.submitit (must be shared)

    def __post_init__(self):
        if self.gpus_per_cell < 0 or self.cpus_per_cell < 1 or self.mem_gb < 1 or self.time_min < 1 \
                or self.array_parallelism < 1:
            raise ConfigError("slurm needs gpus_per_cell >= 0 and positive cpus, memory, time and parallelism",
                              "e.g. slurm: {gpus_per_cell: 1, time_min: 120}")
        if self.cluster not in (None, "slurm", "local", "debug"):
            raise ConfigError(f"unknown submitit cluster {self.cluster!r}", "use slurm, local or debug")


@dataclass(frozen=True)
class RunSpec:
    preset: str = option("quick", flag="--preset", help="quick (default), standard, paper or nightly")
    models: tuple[ModelSpec, ...] = option((), flag="--models", group="matrix",
                                           help="comma-separated zoo names, hub ids or local folders")
    methods: tuple[MethodSpec, ...] = option((), flag="--methods", group="matrix",
                                             help="comma-separated method names, or all (see `bench ls methods`)")
    method_params: tuple[MethodSpec, ...] = ()  # per-method parameter defaults for this run (if listed)
    ratios: tuple[float, ...] = option((), flag="--ratios", group="matrix", exclusive="budget",
                                       help="comma-separated parameter ratios in (0, 1), e.g. 0.125,0.25")
    layers: tuple[int, ...] = option((), flag="--layers", group="matrix", exclusive="budget",
                                     help="comma-separated layer counts to remove, e.g. 4 or 2,4")
    seeds: tuple[int, ...] = option((0,), flag="--seed", group="matrix",
                                    help="seed, or comma-separated seeds (calibration sampling, random methods)")
    method_seeds: tuple[tuple[str, tuple[int, ...]], ...] = ()  # a method's own seeds instead of `seeds`
    eval: EvalSpec = field(default_factory=EvalSpec)
    calib: CalibConfig = field(default_factory=CalibConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    device: str = option("auto", flag="--device", help="auto, cpu, cuda or cuda:N")
    dtype: str = option("auto", flag="--dtype", help="auto, bfloat16, float32 or float16")
    max_memory: str | None = option(None, flag="--max-memory",
                                    help="load each model through accelerate's dispatch under these caps, offloading "
                                         "the rest to disk: cpu=2GiB, or 0=70GiB,1=70GiB (GPU indices), or none")
    offload_folder: str | None = option(None, flag="--offload-dir",
                                        help="where --max-memory offloads weights it must copy (default: the "
                                             "cache's offload/)")
    executor: str = option("local", flag="--executor", choices=EXECUTORS,
                           help="in-process (default) or one Slurm job per cell")
    store: str = option("store", flag="--store", help="result store folder (default ./store)")
    force: bool = option(False, flag="--force", help="recompute cells already in the store")
    include_path: tuple[str, ...] = option((), flag="--include-path",
                                           help="plug-in folder(s), comma-separated: .py files with "
                                                "@methods.register pruners and lm-eval task YAMLs (installed "
                                                "packages' `layerprune_bench.methods` entry points need none)")
    slurm: SlurmSpec = field(default_factory=SlurmSpec)

    def __post_init__(self):
        if not self.models:
            raise ConfigError("no models given", "use --models smollm2-135m (see `bench ls models`)")
        if not self.methods:
            raise ConfigError("no methods given", "use --methods all or e.g. --methods shortgpt,laco")
        if not self.ratios and not self.layers:
            raise ConfigError("no pruning budget given", "use --ratios 0.125,0.25 or --layers 4")
        for r in self.ratios:
            if not 0.0 < r < 1.0:
                raise BudgetError(f"parameter ratio {r:g} is outside (0, 1)", "use e.g. --ratios 0.125,0.25")
        for n in self.layers:
            if n < 1:
                raise BudgetError(f"layer budget {n} must be at least 1", "use e.g. --layers 4")
        if not self.seeds or any(not seeds for _, seeds in self.method_seeds):
            raise ConfigError("no seeds given", "use --seed 0")
        for where, seeds in (("seeds", self.seeds), *((f"method_seeds.{m}", v) for m, v in self.method_seeds)):
            for seed in seeds:
                check_seed(seed, "--seed" if where == "seeds" else where)
            _no_duplicates(seeds, where, "seed")
        _no_duplicates([m.name for m in self.models], "models", "model", repr)
        _no_duplicates(self.ratios, "ratios", "ratio", lambda r: f"{r:g}")
        _no_duplicates(self.layers, "layers", "layer budget")
        for where, items in (("models", self.models), ("methods", self.methods), ("ratios", self.ratios),
                             ("layers", self.layers), ("seeds", self.seeds)):
            _capped(items, where)
        budgets = len(self.ratios) + len(self.layers)
        cells = len(self.models) * (1 + sum(budgets * len(self.seeds_for(m.name)) for m in self.methods))
        if cells > MAX_CELLS:
            raise ConfigError(f"this run has {cells:,} cells, more than the {MAX_CELLS:,} one run takes",
                              "split it into several runs over one store")
        if self.executor not in EXECUTORS:
            raise ConfigError(f"unknown executor {self.executor!r}", f"use {', '.join(EXECUTORS)}")
        from bench.models.offload import parse_max_memory

        parse_max_memory(self.max_memory)  # a malformed cap fails here, before anything loads
        names = [m.name for m in self.methods]
        dupes = {(m.name, m.params) for m in self.methods}
        if len(dupes) != len(names):
            raise ConfigError("a method is listed twice with the same parameters", "list each variant once")

    def seeds_for(self, method: str) -> tuple[int, ...]:
        """The seeds `method` runs with: its own (`method_seeds`), else the run's."""
        return dict(self.method_seeds).get(method, self.seeds)

    # ------------------------------------------------------------------------------------- conversion

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists, dicts) in the YAML shape; `from_dict(to_dict())` round-trips."""
        return _plain(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSpec:
        return canonical(_build(cls, data, ""))

    @classmethod
    def from_yaml(cls, path: str | Path) -> RunSpec:
        return from_yaml(path)

    @property
    def budgets(self) -> list[dict[str, Any]]:
        return [{"layers": None, "ratio": r} for r in self.ratios] + [{"layers": n, "ratio": None}
                                                                       for n in self.layers]


# ------------------------------------------------------------------------------------ canonical names


def canonical_model(name: str) -> str:
    """A zoo model's registered spelling (`SmolLM2-135M` -> `smollm2-135m`); anything else as given."""
    from bench.models import zoo

    return zoo.canonical_name(name)


def canonical_method(name: str) -> str:
    """A registered method's spelling, whatever the case (`ShortGPT` -> `shortgpt`)."""
    import methods

    known = {n.lower(): n for n in methods.list_methods()}
    return known.get(name.lower(), name)


def canonical_task(name: str) -> str:
    from bench.data import tasks

    known = {n.lower(): n for n in tasks.TASKS}
    return known.get(name.lower(), name)


def canonical_corpus(name: str) -> str:
    """A built-in text's one name (`C4-sample`, `C4` -> `c4`); a path as given."""
    from bench.data import tasks

    for corpus in tasks.CORPORA.values():
        if name.lower() in (corpus.name, corpus.label.lower()):
            return corpus.name
    return name


def canonical(spec: RunSpec) -> RunSpec:
    """The spec with every name in its one registered spelling, before any cell key is built: a model,
    method, task or built-in corpus typed in another case or by its label names the same cells."""
    rep = dataclasses.replace
    if spec.include_path:  # plug-ins first: their names are canonical too; absolute, for jobs elsewhere
        from bench.run import plugins

        spec = rep(spec, include_path=tuple(plugins.load(spec.include_path)))

    def methods_(items):
        return tuple(rep(m, name=canonical_method(m.name)) for m in items)

    ev = spec.eval
    ev = rep(ev, tasks=tuple(dict.fromkeys(canonical_task(t) for t in ev.tasks)))
    if ev.perplexity is not None:
        ev = rep(ev, perplexity=rep(ev.perplexity, corpora=tuple(canonical_corpus(c) for c in ev.perplexity.corpora)))
    if ev.fidelity is not None:
        ev = rep(ev, fidelity=rep(ev.fidelity, corpora=tuple(canonical_corpus(c) for c in ev.fidelity.corpora)))
    return rep(spec, models=tuple(ModelSpec(canonical_model(m.name)) for m in spec.models),
               methods=methods_(spec.methods), method_params=methods_(spec.method_params),
               method_seeds=tuple((canonical_method(n), s) for n, s in spec.method_seeds), eval=ev,
               calib=rep(spec.calib, source=canonical_corpus(spec.calib.source)),
               train=rep(spec.train, source=canonical_corpus(spec.train.source)))


# ------------------------------------------------------------------------------------ layered building


def _unique_key_loader():
    """PyYAML's safe loader, except that a key written twice in one mapping is an error (PyYAML keeps the
    last one silently, so `limit: 5` above `limit: 500` would be ignored without a word)."""
    import yaml

    class UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # the C parser where there is one
        def construct_mapping(self, node, deep=False):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=deep)
                try:
                    first = seen.setdefault(key, key_node.start_mark)
                except TypeError:  # an unhashable key: PyYAML's own error follows
                    continue
                if first is not key_node.start_mark:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {_show(key)} is written twice (first at line {first.line + 1})",
                        key_node.start_mark)
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader


def _expanded_size(data: Any, limit: int) -> int:
    """How many values `data` holds when every alias counts each time it is used, counted up to `limit`
    (a YAML alias bomb is a few lines that expand to billions of values)."""
    count, stack = 0, [data]
    while stack and count <= limit:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return count


def load_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML run file as a mapping; unreadable, binary or malformed YAML, a key written twice, a file that
    expands to more than MAX_YAML_VALUES values, or a non-mapping is a ConfigError."""
    import yaml

    from bench.core.textfile import read_text

    path = Path(path).expanduser()
    if not path.exists() or path.is_dir():
        why = "it is a folder" if path.is_dir() else "it does not exist"
        raise ConfigError(f"cannot read config file {path}: {why}", "check the --config path")
    text = read_text(path, "config", "--config", allow_empty=True)
    try:
        data = yaml.load(text, Loader=_unique_key_loader())  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "malformed YAML"
        hint = "write each key once" if "written twice" in problem else "check the indentation and colons"
        raise ConfigError(f"{path} is not valid YAML{where}: {problem}", hint) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of run options, not a {type(data).__name__}",
                          "e.g. models: [smollm2-135m]")
    if _expanded_size(data, MAX_YAML_VALUES) > MAX_YAML_VALUES:
        raise ConfigError(f"{path} expands to more than {MAX_YAML_VALUES:,} values (aliases counted each time "
                          "they are used)", "write the run file out without nested aliases")
    return data


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` laid on `base`: nested mappings merge, everything else replaces; a budget replaces a budget."""
    out = dict(base)
    if "ratios" in over or "layers" in over:
        out.pop("ratios", None)
        out.pop("layers", None)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key not in ("params", "methods"):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def resolve(cli: dict[str, Any] | None = None, yaml_path: str | Path | None = None) -> RunSpec:
    """Preset <- YAML file <- command-line overrides, then typed and validated."""
    from bench.run import presets

    cli = dict(cli or {})
    from_file = load_yaml(yaml_path) if yaml_path else {}
    _fields(RunSpec, from_file, "")  # every value the file gives is checked, even one an option replaces
    name = cli.get("preset") or from_file.get("preset") or presets.DEFAULT
    layered = merge(merge(presets.get(name), from_file), cli)
    layered["preset"] = name
    return RunSpec.from_dict(layered)


# ------------------------------------------------------------------------------------ typed conversion

# the hint for a malformed number, per key that is also a command-line option (else `e.g. <key>: 8`)
EXAMPLES = {"ratios": "e.g. --ratios 0.125,0.25 (in YAML: ratios: [0.125, 0.25])",
            "layers": "e.g. --layers 2,4 (in YAML: layers: [2, 4])",
            "seeds": "e.g. --seed 0,1 (in YAML: seeds: [0, 1])",
            "eval.limit": "e.g. --limit 50 (in YAML: eval: {limit: 50})",
            "calib.n_samples": "e.g. --calib-samples 64 (in YAML: calib: {n_samples: 64})"}


def _plain(obj: Any) -> Any:
    if isinstance(obj, MethodSpec):
        return {"name": obj.name, "params": dict(obj.params)} if obj.params else obj.name
    if isinstance(obj, ModelSpec):
        return obj.name
    if dataclasses.is_dataclass(obj):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | list):
        return [_plain(v) for v in obj]
    return obj


def _where(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _unknown_key(path: str, key: str, known: list[str]) -> ConfigError:
    close = difflib.get_close_matches(str(key), known, n=2, cutoff=0.5)
    hint = f"did you mean {' or '.join(close)}?" if close else f"known keys here: {', '.join(known)}"
    return ConfigError(f"unknown key {_where(path, str(key))!r}", hint)


def _build(cls: type, data: Any, path: str):
    if data is None and path:
        return None
    kwargs = _fields(cls, data, path)
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a missing required field
        raise ConfigError(f"{path or 'the run spec'} is incomplete: {exc}", "see `bench run --help`") from None


def _fields(cls: type, data: Any, path: str) -> dict[str, Any]:
    """The typed keyword arguments of `cls` for the mapping `data` (unknown keys and wrong types raise)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{path or 'the run spec'} must be a mapping, not {_show(data)}", "see `bench run --help`")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        if key not in known:
            raise _unknown_key(path, key, known)
        where = _where(path, key)
        if cls is RunSpec and key in ("methods", "method_params"):
            kwargs[key] = _methods(value, where)
        elif cls is RunSpec and key == "method_seeds":
            kwargs[key] = _method_seeds(value, where)
        elif cls is RunSpec and key == "models":
            kwargs[key] = tuple(ModelSpec(n) for n in _names(value, where, "model"))
        else:
            kwargs[key] = _convert(value, hints[key], where)
    return kwargs


def _names(value: Any, where: str, what: str) -> list[str]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} must be a list of {what} names, not {_show(value)}", f"e.g. {where}: [a, b]")
    _capped(value, where)
    return list(value)


def _method_seeds(value: Any, where: str) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """{random: [0, 1, 2, 3, 4]} (or the [[name, seeds], ...] that to_dict writes) -> sorted pairs."""
    if value is None:
        return ()
    if isinstance(value, list | tuple):
        try:
            value = dict(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must map method names to seeds", f"e.g. {where}: {{random: [0, 1]}}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must map method names to seeds", f"e.g. {where}: {{random: [0, 1]}}")
    return tuple(sorted((str(k), _convert(v, tuple[int, ...], f"{where}.{k}")) for k, v in value.items()))


def _methods(value: Any, where: str) -> tuple[MethodSpec, ...]:
    """`all`, "a,b", [a, {name: b, params: {...}}] or {a: {...}, b: {}} -> MethodSpecs."""
    if value == ALL or value == [ALL]:
        import methods

        return tuple(MethodSpec(n) for n in methods.list_methods())
    if isinstance(value, dict):
        value = [{"name": k, "params": v or {}} for k, v in value.items()]
    if isinstance(value, str):
        value = _names(value, where, "method")
    if not isinstance(value, list | tuple):
        raise ConfigError(f"{where} must be a list of methods, not {_show(value)}", "e.g. methods: [shortgpt, laco]")
    _capped(value, where)
    out = []
    for item in value:
        if isinstance(item, str):
            out.append(MethodSpec(item))
            continue
        if not isinstance(item, dict) or "name" not in item:
            raise ConfigError(f"{where} entry {_show(item)} is neither a name nor {{name, params}}",
                              "e.g. - {name: laco, params: {threshold: 0.3}}")
        extra = set(item) - {"name", "params"}
        if extra:
            raise _unknown_key(f"{where}[{item['name']}]", sorted(extra)[0], ["name", "params"])
        params = item.get("params") or {}
        if not isinstance(params, dict):
            raise ConfigError(f"{where}[{item['name']}].params must be a mapping", "e.g. params: {threshold: 0.3}")
        for key, value in params.items():
            if isinstance(value, dict | list | tuple):  # method parameters are single values
                raise ConfigError(f"{where}[{item['name']}].params.{key} must be a single value, not {_show(value)}",
                                  "e.g. params: {threshold: 0.3}")
        out.append(MethodSpec(str(item["name"]), tuple(sorted(params.items()))))
    return tuple(out)


def _is_number(value: Any) -> bool:
    try:
        values.to_number(value, float)
        return True
    except (TypeError, ValueError):
        return False


def _convert(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if values.is_none(value):
            return None
        return _convert(value, args[0], where)
    if dataclasses.is_dataclass(tp):
        return _build(tp, {} if value is True else value, where)
    if origin is tuple:
        item = typing.get_args(tp)[0]
        if isinstance(value, str):
            value = [] if value.strip().lower() in ("", "none") else [v.strip() for v in value.split(",")]
        elif not isinstance(value, list | tuple):
            value = [value]
        _capped(value, where)
        return tuple(_convert(v, item, where) for v in value)
    if tp is bool:
        try:
            return values.to_bool(value)
        except ValueError:
            raise ConfigError(f"{where} must be true or false, not {_show(value)}", f"e.g. {where}: true") from None
    if tp in (int, float):
        try:
            return values.to_number(value, tp)
        except (TypeError, ValueError):
            what = "a whole number" if tp is int and _is_number(value) else "a number"
            raise ConfigError(f"{where} must be {what}, not {_show(value)}",
                              EXAMPLES.get(where, f"e.g. {where}: {0.5 if tp is float else 8}")) from None
    if tp is str:
        if isinstance(value, dict | list | tuple) or value is None:
            raise ConfigError(f"{where} must be a string, not {_show(value)}", f"e.g. {where}: auto")
        return str(value)
    return value


def from_yaml(path: str | Path) -> RunSpec:
    """A RunSpec from a YAML file over its preset (the file's `preset`, else quick)."""
    return resolve({}, path)
