"""`bench prune`: prune one model with one method and write a plain Hugging Face checkpoint."""

from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser("prune", help="prune one model and save it as a Hugging Face checkpoint")
    p.add_argument("--model", default="smollm2-135m", help="zoo name, hub id, local folder or .gguf file")
    p.add_argument("--method", required=True, help="a method name (see `bench ls methods`)")
    budget = p.add_mutually_exclusive_group(required=True)
    budget.add_argument("--ratio", type=float, help="share of parameters to remove, in (0, 1)")
    budget.add_argument("--layers", type=int, help="number of decoder layers to remove")
    p.add_argument("--calib", default="wikipedia", help="calibration text: wikipedia, c4, or a .txt/.jsonl path")
    p.add_argument("--calib-samples", type=int, default=64, help="calibration windows (default 64)")
    p.add_argument("--calib-seq-len", type=int, default=128, help="tokens per calibration window (default 128)")
    p.add_argument("--seed", type=int, default=0, help="seed for calibration sampling")
    p.add_argument("--param", action="append", metavar="NAME=VALUE", help="a method parameter (repeatable)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--dtype", default="auto", help="auto, bfloat16, float32 or float16")
    p.add_argument("--batch-size", type=int, default=8, help="calibration batch size")
    p.add_argument("--max-memory", help="load through accelerate's dispatch under these caps, offloading the rest "
                                        "to disk: cpu=2GiB, or 0=70GiB,1=70GiB (GPU indices)")
    p.add_argument("--offload-dir", help="where --max-memory offloads weights it must copy (default: the cache's "
                                         "offload/)")
    p.add_argument("--train-data", default="c4",
                   help="training text for methods that train: c4, wikipedia (their training splits, disjoint from "
                        "the perplexity-evaluation head) or a .txt/.jsonl path (default c4)")
    p.add_argument("--train-samples", type=int,
                   help="training windows (sets the method parameter train_samples; sizes are method parameters)")
    p.add_argument("--out", required=True,
                   help="output folder: new or empty; a previous export of this harness there is replaced, a folder "
                        "holding anything else is never touched")
    p.add_argument("--force", action="store_true",
                   help="also replace a previous export whose files were edited since it was written")
    p.set_defaults(func=run, kept="--out is unchanged (a previous export there is kept; the partial copy was removed)")


def run(args) -> int:
    import os

    import methods
    from methods.base import Budget
    from methods.params import parse_param_args

    # validate everything the user typed before loading a model
    params = parse_param_args(args.param)
    if args.train_samples is not None:
        params["train_samples"] = str(args.train_samples)
    pruner = methods.create(args.method, params)
    if not getattr(pruner, "exportable", True):
        from bench.errors import ExportError

        raise ExportError(f"{args.method} with these parameters makes a model with no stock transformers form, and "
                          "`bench prune` writes a checkpoint", "use `bench run` to evaluate it in the harness")
    budget = Budget(layers=args.layers, ratio=args.ratio)

    from bench import zoo
    from bench.export_target import check_target
    from bench.pathcheck import writable_folder
    from bench.textfile import source_documents_or_builtin

    entry = zoo.resolve(args.model)  # an unknown name or a missing folder fails here
    if args.layers is not None and entry.layers is not None and args.layers >= entry.layers:
        from bench.errors import BudgetError

        raise BudgetError(f"removing {args.layers} layers leaves no layer of {args.model} ({entry.layers} layers)",
                          f"remove at most {entry.layers - 1} layers")
    if pruner.needs_calibration:
        source_documents_or_builtin(args.calib, "calibration text", "--calib")
    if pruner.trains:
        source_documents_or_builtin(args.train_data, "training text", "--train-data")
    protect = (args.model,) if entry.location and os.path.isdir(entry.location) else ()
    check_target(args.out, force=args.force, protect=protect)
    if not zoo.is_cached(args.model):  # it will be downloaded into the cache
        from bench.paths import cache_root

        writable_folder(cache_root(), "the cache folder (--cache-dir)")
    from bench import device

    device.resolve_dtype(args.dtype, device.resolve_device(args.device))  # an unknown device or dtype
    from bench.offload import check_devices

    check_devices(args.max_memory, args.offload_dir)  # a malformed cap, a GPU this machine lacks, a bad folder

    from bench.calib import Calibration, CalibSpec
    from bench.export import save_pruned
    from bench.pipeline import prune

    spec = CalibSpec(source=args.calib, n_samples=args.calib_samples, seq_len=args.calib_seq_len, seed=args.seed,
                     batch_size=args.batch_size)
    model, tokenizer = zoo.load(args.model, device=args.device, dtype=args.dtype, max_memory=args.max_memory,
                                offload_folder=args.offload_dir)
    calib = Calibration(spec, model, tokenizer) if pruner.needs_calibration else None
    heal_data = None
    if pruner.trains:
        from bench.traindata import TrainData, TrainDataSpec

        heal_data = TrainData(TrainDataSpec(source=args.train_data), tokenizer)
    result = prune(model, pruner, budget, calib, copy_model=False, heal_data=heal_data)
    out = save_pruned(result.model, tokenizer, result.plan, args.out, base_model=args.model, force=args.force,
                      protect=protect)
    plan = result.plan
    print(f"{args.method}: removed dense layers {plan.removed_original} ({plan.layers_removed} of {plan.n_layers} "
          f"layers, {100 * plan.param_ratio:.2f} % of parameters) in {result.seconds:.1f} s")
    training = plan.cost.get("training")
    if training:
        print(f"trained {training['steps']} steps on {training['tokens']:,} tokens of {args.train_data} in "
              f"{training['wall_seconds']:.1f} s (loss {training['loss_first']:.4g} -> {training['loss_last']:.4g}, "
              f"peak memory {training['peak_memory_bytes'] / 2**20:.0f} MiB)")
    print(f"saved {out}")
    return 0
