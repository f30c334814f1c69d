"""The run spec: frozen dataclasses, one per section of a run (models, methods, budgets, seeds, evaluation,
calibration, training text, Slurm), each checking its own values as it is built (ranges, duplicates, sizes).

A field that `bench run` sets states its flag with `option(...)` (bench.cli.options builds the flags from
them). Plain data becomes a RunSpec in bench.run.spec_read (`read`, re-exported as `bench.run.config.from_dict`); the layers it comes from
(preset, YAML file, command line) are laid over each other in bench.run.spec_layers; `to_dict()` writes the
YAML shape back. bench.run.config gathers the names other modules use. This module imports no torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from bench.core.errors import BudgetError, ConfigError

EXECUTORS = ("local", "slurm", "submitit-local")
ENGINE_STATES = ("memory", "store")  # where the evaluation engine keeps boundary states (bench.evaluate.engine)
ALL = "all"  # `methods: all` means every registered method
MAX_LIST = 1_000  # entries of any one list (models, methods, ratios, layers, seeds, tasks, corpora)
MAX_CELLS = 100_000  # cells of one run (models x methods x budgets x seeds, plus the dense cells)
MAX_SEED = 2**32 - 1  # seeds are unsigned 32-bit (numpy's limit; torch, random and the store agree)
MAX_YAML_VALUES = 1_000_000  # values a run YAML may expand to (aliases counted each time they are used)


def short_repr(value: Any) -> str:
    """A value as an error message may echo it: short, whatever its size (a YAML alias bomb)."""
    import reprlib

    short = reprlib.Repr()
    short.maxlevel, short.maxstring, short.maxother = 2, 60, 60
    short.maxlist = short.maxtuple = short.maxdict = short.maxset = 4
    return short.repr(value)


def check_seed(seed: Any, where: str) -> int:
    """A seed in [0, 2**32 - 1]: larger ones overflow numpy, and the store's integer columns."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"{where} {short_repr(seed)} is outside 0 .. {MAX_SEED}", f"use a seed such as {where} 0")
    return seed


def _no_duplicates(items: tuple | list, where: str, what: str, show=str) -> None:
    seen: set = set()
    for item in items:
        if item in seen:
            raise ConfigError(f"{what} {show(item)} is listed twice in {where}", "list each one once")
        seen.add(item)


def too_many(where: str, count: int) -> ConfigError:
    return ConfigError(f"{where} lists {count:,} entries, more than the {MAX_LIST:,} a run takes",
                       "split the run into several, or list fewer")


def check_count(items: tuple | list, where: str) -> None:
    if len(items) > MAX_LIST:
        raise too_many(where, len(items))


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
        check_count(self.corpora, "eval.perplexity.corpora")
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
        check_count(self.tasks, "eval.tasks")
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
    engine_states: str = option("memory", flag="--engine-states", choices=ENGINE_STATES,
                                help="where the evaluation engine keeps the dense model's layer states that pruned "
                                     "cells start from: memory (this run, 1 GiB) or store (<store>/states/, kept "
                                     "for later runs: gigabytes of disk at 1000 documents per task, at most "
                                     "BENCH_ENGINE_STATE_DISK_MB, default 16 GiB)")
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
            check_count(items, where)
        budgets = len(self.ratios) + len(self.layers)
        cells = len(self.models) * (1 + sum(budgets * len(self.seeds_for(m.name)) for m in self.methods))
        if cells > MAX_CELLS:
            raise ConfigError(f"this run has {cells:,} cells, more than the {MAX_CELLS:,} one run takes",
                              "split it into several runs over one store")
        if self.engine_states not in ENGINE_STATES:
            raise ConfigError(f"unknown engine_states {self.engine_states!r}", f"use {' or '.join(ENGINE_STATES)}")
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

    @property
    def budgets(self) -> list[dict[str, Any]]:
        return [{"layers": None, "ratio": r} for r in self.ratios] + [{"layers": n, "ratio": None}
                                                                       for n in self.layers]


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

