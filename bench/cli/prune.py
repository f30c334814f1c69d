"""`bench prune`: prune one model with one method and write a plain Hugging Face checkpoint.

Three ways to say which model to write:
- `--method M --ratio R` (or `--layers N`): prune now, with the settings of the preset's cell of the same
  method and budget (`--preset`, default quick: its calibration, training text, method_params and seed),
  so the checkpoint is the model that cell measures; every flag given on top is said as a difference.
- `--from-store STORE --cell LABEL`: the model a stored cell measured, replayed from its plan and its
  trained tensors (bench.run.pipeline.replay), in the cell's dtype; nothing is recomputed.
- `--plan plan.json`: a plan file (an export's, or a store cell's) replayed on `--model`.
"""

from __future__ import annotations

import argparse

from bench.cli.edge import add_command
from bench.core.errors import ConfigError

EXAMPLES = """examples:
  bench prune --method shortgpt --ratio 0.25 --out pruned/            # the quick preset's cell, as a checkpoint
  bench prune --from-store store --cell "shortgpt ratio 0.25" --out pruned/   # exactly what a cell measured
  bench prune --plan pruned/plan.json --model smollm2-135m --out again/       # replay a plan file
  bench prune --method laco --layers 4 --param threshold=0.6 --out pruned/    # a method parameter
  bench prune --method shortgpt --layers 4 --param heal=lora --out pruned/    # LoRA-healed, merged: stock
"""


def register(subparsers) -> None:
    p = add_command(
        subparsers, "prune", help="prune one model and save it as a Hugging Face checkpoint",
        description="Write a pruned model as a stock Hugging Face checkpoint (safetensors, tokenizer, plan.json, "
                    "model card). Without --from-store/--plan it prunes with the settings of the --preset's cell "
                    "of the same method and budget (default: quick), so the checkpoint is the model that cell "
                    "measures; options given on top are printed as differences.",
        epilog=EXAMPLES)
    what = p.add_argument_group("what to write (one of)")
    what.add_argument("--method", help="a method name (see `bench ls methods -v`)")
    what.add_argument("--from-store", metavar="STORE",
                      help="a result store: write the model one of its cells measured (with --cell)")
    what.add_argument("--cell", metavar="LABEL",
                      help="the cell, by its label (`smollm2-135m · shortgpt · ratio 0.25 · seed 0`, or any unique "
                           "part of it: `shortgpt ratio 0.25`) or key")
    what.add_argument("--plan", metavar="PLAN_JSON", help="replay a plan file (plan.json of an export or a cell)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--ratio", type=float, help="share of parameters to remove, in (0, 1) (with --method)")
    budget.add_argument("--layers", type=int, help="number of decoder layers to remove (with --method)")
    p.add_argument("--model", help="zoo name, hub id, local folder or .gguf file (default: smollm2-135m; with "
                                   "--from-store: the cell's)")
    p.add_argument("--include-path", action="append", metavar="DIR",
                   help="a plug-in folder (.py files with @methods.register pruners; repeatable)")
    p.add_argument("--preset", default="quick",
                   help="whose cell settings a plain prune uses: quick (default), standard, paper or nightly")
    p.add_argument("--calib", help="calibration text: wikipedia, c4, or a .txt/.jsonl path (default: the preset's)")
    p.add_argument("--calib-samples", type=int, help="calibration windows (default: the preset's, quick: 32)")
    p.add_argument("--calib-seq-len", type=int, help="tokens per calibration window (default: the preset's, 128)")
    p.add_argument("--seed", type=int, default=0, help="seed for calibration sampling and seeded methods (default 0)")
    p.add_argument("--param", action="append", metavar="NAME=VALUE",
                   help="a method parameter, NAME=VALUE or METHOD.NAME=VALUE (repeatable; see `bench show METHOD`)")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--dtype", help="auto, bfloat16, float32 or float16 (default auto; --from-store: the cell's)")
    p.add_argument("--batch-size", type=int, help="calibration batch size (default: the preset's, 8)")
    p.add_argument("--max-memory", help="load through accelerate's dispatch under these caps, offloading the rest "
                                        "to disk: cpu=2GiB, or 0=70GiB,1=70GiB (GPU indices)")
    p.add_argument("--offload-dir", help="where --max-memory offloads weights it must copy (default: the cache's "
                                         "offload/)")
    p.add_argument("--train-data",
                   help="training text for methods that train: c4, wikipedia (their training splits, disjoint from "
                        "the perplexity-evaluation head) or a .txt/.jsonl path (default: the preset's, c4)")
    p.add_argument("--train-samples", type=int,
                   help="training windows (sets the method parameter train_samples)")
    for alias, dest, kind in (("--methods", "method", str), ("--ratios", "ratio", float), ("--models", "model", str),
                              ("--seeds", "seed", int)):  # `bench run`'s spelling, accepted, not listed
        (budget if dest == "ratio" else p).add_argument(alias, dest=dest, type=kind, help=argparse.SUPPRESS)
    p.add_argument("--out", required=True,
                   help="output folder: new or empty; a previous export of this harness there is replaced, a folder "
                        "holding anything else is never touched")
    p.add_argument("--force", action="store_true",
                   help="also replace a previous export whose files were edited since it was written")
    p.set_defaults(func=run, kept="--out is unchanged (a previous export there is kept; the partial copy was removed)")


def run(args) -> int:
    if args.include_path:
        from bench.run import plugins

        plugins.load(args.include_path)
    sources = [name for name, given in (("--method", args.method), ("--from-store", args.from_store),
                                        ("--plan", args.plan)) if given]
    if len(sources) != 1:
        raise ConfigError("say what to write with exactly one of --method, --from-store or --plan"
                          + (f" (given: {', '.join(sources)})" if sources else ""),
                          "e.g. --method shortgpt --ratio 0.25, or --from-store store --cell 'shortgpt ratio 0.25'")
    if args.cell and not args.from_store:
        raise ConfigError("--cell names a cell of a result store", "give --from-store STORE with it")
    if args.method:
        return _prune(args)
    budget_given = [f for f, v in (("--ratio", args.ratio), ("--layers", args.layers)) if v is not None]
    tuning = [f for f, v in (("--calib", args.calib), ("--calib-samples", args.calib_samples),
                             ("--calib-seq-len", args.calib_seq_len), ("--param", args.param),
                             ("--train-data", args.train_data), ("--train-samples", args.train_samples),
                             ("--batch-size", args.batch_size)) if v]
    if budget_given or tuning:
        raise ConfigError(f"{(budget_given + tuning)[0]} changes how a model is pruned; a stored cell or a plan "
                          "already says it", "leave it out, or prune anew with --method")
    return _from_store(args) if args.from_store else _from_plan(args)


# ------------------------------------------------------------------------------------------ prune anew


def _method_params(method: str, items: list[str] | None) -> dict[str, str]:
    """--param NAME=VALUE or METHOD.NAME=VALUE (the spelling `bench run` takes) for this one method."""
    from methods.params import parse_param_args

    out = {}
    for dotted, value in parse_param_args(items).items():
        owner, dot, name = dotted.rpartition(".")
        if dot and owner.lower() != method.lower():
            raise ConfigError(f"--param {dotted}={value} is for method {owner!r}, not {method!r}",
                              f"write --param {name}={value} (or {method}.{name}={value})")
        out[name if dot else dotted] = value
    return out


def _prune(args) -> int:
    import dataclasses

    import methods
    from bench.models import zoo
    from bench.run import cells
    from bench.run.config import MethodSpec, canonical_method, resolve

    if args.ratio is None and args.layers is None:
        raise ConfigError("one of the arguments --ratio --layers is required with --method",
                          "add --ratio 0.25 or --layers 4")
    method = canonical_method(args.method)
    model_name = zoo.canonical_name(args.model or "smollm2-135m")
    params = _method_params(method, args.param)
    if args.train_samples is not None:
        params["train_samples"] = str(args.train_samples)
    over = {"preset": args.preset, "models": [model_name], "methods": [method], "seeds": [args.seed],
            **({"ratios": [args.ratio]} if args.ratio is not None else {"layers": [args.layers]})}
    calib = {k: v for k, v in (("source", args.calib), ("n_samples", args.calib_samples),
                               ("seq_len", args.calib_seq_len), ("batch_size", args.batch_size)) if v is not None}
    if calib:
        over["calib"] = calib
    if args.train_data:
        over["train"] = {"source": args.train_data}
    for key in ("device", "dtype"):
        if getattr(args, key):
            over[key] = getattr(args, key)
    spec = resolve(over)
    preset = resolve({"preset": args.preset, "models": [model_name], "methods": [method], "seeds": [args.seed],
                      **({"ratios": [args.ratio]} if args.ratio is not None else {"layers": [args.layers]})})
    resolved = dict(cells.resolve_params(MethodSpec(method, tuple(sorted(params.items()))), args.seed,
                                         spec.method_params))
    preset_params = dict(cells.resolve_params(MethodSpec(method), args.seed, preset.method_params))
    pruner = methods.create(method, resolved)
    if not getattr(pruner, "exportable", True):
        from bench.core.errors import ExportError

        raise ExportError(f"{method} with these parameters makes a model with no stock transformers form, and "
                          "`bench prune` writes a checkpoint", "use `bench run` to evaluate it in the harness")
    from methods.base import Budget

    budget = Budget(layers=args.layers, ratio=args.ratio)
    entry = zoo.resolve(model_name)  # an unknown name or a missing folder fails here
    from bench.core.textfile import source_documents_or_builtin
    from bench.data.calibration import CalibSpec
    from bench.models import precheck
    from bench.run.config import check_seed

    check_seed(args.seed, "--seed")
    precheck.check_budgets(model_name, (args.ratio,) if args.ratio is not None else (),
                           (args.layers,) if args.layers is not None else ())
    if pruner.needs_calibration:
        c = spec.calib
        CalibSpec(source=c.source, n_samples=c.n_samples, seq_len=c.seq_len, seed=args.seed,
                  batch_size=c.batch_size)  # sizes below 1
        precheck.check_seq_len(model_name, c.seq_len, "--calib-seq-len")
        source_documents_or_builtin(c.source, "calibration text", "--calib", windows=(c.n_samples, c.seq_len))
    if pruner.trains:
        source_documents_or_builtin(spec.train.source, "training text", "--train-data")
    protect = _check_out(args, model_name, entry)
    device, dtype = cells.device_and_dtype(spec)  # the device type and dtype a `bench run` cell would use

    differences = _differences(spec, preset, resolved, preset_params, pruner)
    print(f"settings: the {args.preset} preset's cell `{model_name} · {method} · {budget.describe()} · seed "
          f"{args.seed}`" + (f"; differs in {'; '.join(differences)}" if differences else " (no differences)"))

    from bench.models.offload import check_devices

    check_devices(args.max_memory, args.offload_dir)  # a malformed cap, a GPU this machine lacks, a bad folder

    from bench.data.calibration import Calibration
    from bench.models.export import save_pruned
    from bench.run.pipeline import prune

    model, tokenizer = zoo.load(model_name, device=args.device or spec.device, dtype=dtype, max_memory=args.max_memory,
                                offload_folder=args.offload_dir)
    calib = Calibration(cells.calib_spec(spec, args.seed), model, tokenizer) if pruner.needs_calibration else None
    heal_data = None
    if pruner.trains:
        from bench.data.training_text import TrainData, TrainDataSpec

        heal_data = TrainData(TrainDataSpec(**dataclasses.asdict(spec.train)), tokenizer)
    result = prune(model, pruner, budget, calib, copy_model=False, heal_data=heal_data)
    out = save_pruned(result.model, tokenizer, result.plan, args.out, base_model=model_name, force=args.force,
                      protect=protect)
    plan = result.plan
    print(f"{method}: removed dense layers {plan.removed_original} ({plan.layers_removed} of {plan.n_layers} "
          f"layers, {100 * plan.param_ratio:.2f} % of parameters) in {result.seconds:.1f} s ({device}, {dtype})")
    units = plan.units()
    if units["attn"] or units["mlp"]:
        print(f"dropped attention sublayers of dense layers {units['attn']} and MLP sublayers of {units['mlp']} "
              f"(skipped with their norms; the checkpoint stores them as zeros: exact but not faster)")
    training = plan.cost.get("training")
    if training:
        print(f"trained {training['steps']} steps on {training['tokens']:,} tokens of {spec.train.source} in "
              f"{training['wall_seconds']:.1f} s (loss {training['loss_first']:.4g} -> {training['loss_last']:.4g}, "
              f"peak memory {training['peak_memory_bytes'] / 2**20:.0f} MiB)")
    print(f"saved {out}")
    return 0


def _differences(spec, preset, params: dict, preset_params: dict, pruner) -> list[str]:
    """Where this prune differs from the preset's cell of the same method and budget, in words."""
    out = []
    if pruner.needs_calibration:
        for field in ("source", "n_samples", "seq_len", "batch_size"):
            mine, theirs = getattr(spec.calib, field), getattr(preset.calib, field)
            if mine != theirs:
                out.append(f"calibration {field} {mine} (preset {theirs})")
    if pruner.trains and spec.train.source != preset.train.source:
        out.append(f"training text {spec.train.source} (preset {preset.train.source})")
    for name in sorted(set(params) | set(preset_params)):
        if params.get(name) != preset_params.get(name):
            out.append(f"{name}={params.get(name)} (preset {preset_params.get(name)})")
    if (spec.device, spec.dtype) != (preset.device, preset.dtype):
        out.append(f"device/dtype {spec.device}/{spec.dtype} (preset {preset.device}/{preset.dtype})")
    return out


def _check_out(args, model_name: str, entry) -> tuple:
    import os

    from bench.core.pathcheck import writable_folder
    from bench.models import zoo
    from bench.models.export_target import check_target

    protect = (model_name,) if entry.location and os.path.isdir(entry.location) else ()
    check_target(args.out, force=args.force, protect=protect)
    if not zoo.is_cached(model_name):  # it will be downloaded into the cache
        from bench.core.paths import cache_root

        writable_folder(cache_root(), "the cache folder (--cache-dir)")
    return protect


# ------------------------------------------------------------------------------------- replay a plan


def find_cell(store, query: str) -> dict:
    """The store's record that `query` names: a key (or a unique start of one), a label, or a unique set of
    words of a label (`shortgpt ratio 0.25`), case-insensitively."""
    from bench.core.errors import BenchError

    records = store.records()
    if not records:
        raise BenchError(f"the store {store.root} holds no cells", "give --from-store the folder `bench run` wrote")

    def words(text: str) -> list[str]:
        return text.lower().replace("·", " ").split()

    q = words(query)
    exact = [r for r in records if r["key"] == query.strip() or words(r["cell"]["label"]) == q]
    by_key = [r for r in records if len(query.strip()) >= 4 and r["key"].startswith(query.strip())]
    loose = [r for r in records if all(w in words(r["cell"]["label"]) for w in q)]
    for found in (exact, by_key, loose):
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise ConfigError(f"--cell {query!r} matches {len(found)} cells: "
                              + "; ".join(r["cell"]["label"] for r in found[:4]) + ("; ..." if len(found) > 4 else ""),
                              "add the model, budget or seed, or give the key")
    import difflib

    labels = [r["cell"]["label"] for r in records]
    close = difflib.get_close_matches(query, labels, n=2, cutoff=0.4)
    raise ConfigError(f"no cell of {store.root} matches --cell {query!r}",
                      f"did you mean {' or '.join(close)}?" if close else f"cells: {'; '.join(labels[:6])}")


def _from_store(args) -> int:
    from bench.core.pathcheck import readable_folder
    from bench.results.store import Store
    from bench.run.pipeline import TRAINED
    from methods.base import PrunePlan

    if not args.cell:
        raise ConfigError("--from-store needs --cell", "e.g. --cell 'shortgpt ratio 0.25' (labels: `bench report`)")
    readable_folder(args.from_store, "--from-store", "result store")
    store = Store(args.from_store)
    record = find_cell(store, args.cell)
    label = record["cell"]["label"]
    if record["cell"]["kind"] == "dense":
        raise ConfigError(f"{label} is the dense model; there is nothing pruned to write", "pick a pruned cell")
    if record.get("status") != "ok":
        raise ConfigError(f"{label} failed ({(record.get('error') or {}).get('message')}); it measured no model",
                          "rerun it with `bench run`, or pick another cell")
    raw = store.read_artifact(record["key"], "plan.json")
    if raw is None:
        raise ConfigError(f"{label} has no plan.json in {store.cell_dir(record['key'])}", "rerun the cell")
    if args.model and args.model != record["cell"]["model"]:
        raise ConfigError(f"--model {args.model} is not the cell's model {record['cell']['model']}",
                          "leave --model out with --from-store")
    trained = store.cell_dir(record["key"]) / TRAINED
    return _write(args, PrunePlan.from_dict(raw), record["cell"]["model"], record["cell"]["params"],
                  trained if trained.exists() else None, args.dtype or (record.get("provenance") or {}).get("dtype"),
                  f"{label} (cells/{record['key']})", (record.get("model") or {}).get("source"))


def _from_plan(args) -> int:
    from pathlib import Path

    from bench.core.textfile import read_text
    from bench.run.pipeline import TRAINED
    from methods.base import PrunePlan

    path = Path(args.plan).expanduser()
    text = read_text(path, "plan file", "--plan")
    try:
        plan = PrunePlan.from_json(text)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is not a plan file: {exc}", "give the plan.json of an export or a store cell") \
            from None
    trained = path.parent / TRAINED  # a store cell's folder holds them beside its plan
    return _write(args, plan, args.model or "smollm2-135m", dict(plan.params),
                  trained if trained.exists() else None, args.dtype, str(path), None)


def _write(args, plan, model_name: str, params: dict, trained, dtype: str | None, what: str,
           source: dict | None) -> int:
    import methods
    from bench.core.errors import BenchError
    from bench.models import arch, zoo
    from bench.models.export import save_pruned
    from bench.run.pipeline import load_trained, needs_trained_tensors, replay

    if trained is None and needs_trained_tensors(plan):
        raise BenchError(f"{what}: the plan {'trains' if plan.cost.get('training') else 'replaces or folds layers'}"
                         " and its trained tensors are not beside it (a store written before they were kept)",
                         "rerun that cell with `bench run --force`, or prune anew with --method")
    pruner = methods.create(plan.method, params)
    if not getattr(pruner, "exportable", True):
        from bench.core.errors import ExportError

        raise ExportError(f"{plan.method} with these parameters makes a model with no stock transformers form",
                          "evaluate it with `bench run`")
    entry = zoo.resolve(model_name)
    if source and entry.provenance() != source:
        differs = [k for k in sorted(set(source) | set(entry.provenance()))
                   if source.get(k) != entry.provenance().get(k)]
        raise BenchError(f"the weights of {model_name} here differ from the ones the cell measured "
                         f"({', '.join(differs)})", "use the same zoo entry or checkpoint as the run")
    protect = _check_out(args, model_name, entry)
    model, tokenizer = zoo.load(model_name, device=args.device or "auto", dtype=dtype or "auto")
    if arch.num_layers(model) != plan.n_layers:
        raise BenchError(f"{what} was made for a {plan.n_layers}-layer model; {model_name} has "
                         f"{arch.num_layers(model)}", "give --model the model the plan was made for")
    tensors, tied = load_trained(trained.read_bytes()) if trained is not None else (None, None)
    replay(model, pruner, plan, tensors, tied)
    out = save_pruned(model, tokenizer, plan, args.out, base_model=model_name, force=args.force, protect=protect)
    dt = str(next(model.parameters()).dtype).removeprefix("torch.")
    print(f"{what}: {plan.method} removed dense layers {plan.removed_original} ({plan.layers_removed} of "
          f"{plan.n_layers} layers, {100 * plan.param_ratio:.2f} % of parameters); replayed in {dt}"
          + (f" with {len(tensors)} trained tensors" if tensors else ""))
    print(f"saved {out}")
    return 0
