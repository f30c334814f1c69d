"""The accuracy path costs nothing over plain lm-eval: same model, task, batch size, limit, interleaved.

    pytest tests/benchmarks/test_accuracy_overhead.py --benchmark-enable      (tiny model, real ARC-Easy data)
    python tests/benchmarks/test_accuracy_overhead.py --model-dir DIR --limit 200 --rounds 3

"plain" is what a user of lm-eval would write: `HFLM(pretrained=model, tokenizer=tok, batch_size=N)` and
`lm_eval.simple_evaluate` on the same task spec with per-sample logging on. "ours" is
`evaluate_accuracy`, which adds the continuation-token counting, per-sample records (gold index via the
task's own doc_to_target/doc_to_choice) and provenance. Runs alternate, after one warm-up of each, and
the ratio is the median of ours over the median of plain.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def compare(model, tok, task: str = "arc_easy", *, batch_size: int = 16, limit: int = 200, rounds: int = 3) -> dict:
    from bench.data import tasks as registry
    from bench.evaluate.lm_eval_glue import task_manager
    from bench.evaluate.multiple_choice import evaluate_accuracy

    registry.configure_offline("local")
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    tm = task_manager()

    def plain():
        lm = HFLM(pretrained=model, tokenizer=tok, batch_size=batch_size, softmax_dtype="float32")
        spec = registry.lm_eval_spec(registry.resolve([task]), "local")
        res = lm_eval.simple_evaluate(model=lm, tasks=[spec], task_manager=tm, num_fewshot=0, batch_size=batch_size,
                                      limit=limit, log_samples=True, bootstrap_iters=1000)
        return res["results"][task]["acc,none"]

    def ours():
        r = evaluate_accuracy(model, tok, [task], batch_size=batch_size, limit=limit, bootstrap_iters=1000)
        return r.tasks[task].acc

    assert plain() == ours()  # warm-up, and the same numbers
    wall = {"plain": [], "ours": []}
    cpu = {"plain": [], "ours": []}
    for _ in range(rounds):
        for name, fn in (("plain", plain), ("ours", ours)):
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    ratio = statistics.median(wall["ours"]) / statistics.median(wall["plain"])
    # CPU seconds of this process: far less disturbed than wall time when other jobs share the cores
    cpu_ratio = statistics.median(cpu["ours"]) / statistics.median(cpu["plain"])
    min_ratio = min(wall["ours"]) / min(wall["plain"])
    return {"task": task, "limit": limit, "batch_size": batch_size, "rounds": rounds, "ratio": ratio,
            "cpu_ratio": cpu_ratio, "min_ratio": min_ratio, "wall_plain": wall["plain"], "wall_ours": wall["ours"],
            "cpu_plain": cpu["plain"], "cpu_ours": cpu["ours"]}


@pytest.mark.slow
@pytest.mark.real
def test_accuracy_overhead(benchmark):
    from tiny import tiny_model

    model, tok = tiny_model("llama")
    # in CI (benchmarks disabled) a small run checks the two paths agree; the timing needs the full size
    size = {"limit": 40, "rounds": 1} if benchmark.disabled else {"limit": 300, "rounds": 3}
    out = benchmark.pedantic(compare, args=(model, tok), kwargs=size, rounds=1, iterations=1)
    benchmark.extra_info.update(out)
    print(f"\naccuracy-path overhead, ours/plain: wall {out['ratio']:.3f}, cpu {out['cpu_ratio']:.3f}")
    assert out["cpu_ratio"] > 0
    if not benchmark.disabled:  # a timing ratio is asserted only when benchmarking (tox -e bench), never in CI
        assert out["cpu_ratio"] < 1.10  # target <= 1.05; some slack because machines are shared


if __name__ == "__main__":
    import argparse
    import json

    import torch

    p = argparse.ArgumentParser()
    p.add_argument("--model-dir", help="an HF folder; default: the tiny random llama")
    p.add_argument("--task", default="arc_easy")
    p.add_argument("--limit", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    if args.model_dir:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=torch.float32).eval()
        tok = AutoTokenizer.from_pretrained(args.model_dir)
    else:
        from tiny import tiny_model

        model, tok = tiny_model("llama")
    print(json.dumps(compare(model, tok, args.task, batch_size=args.batch_size, limit=args.limit,
                             rounds=args.rounds), indent=1))
