"""Tokens the `paper` preset's evaluation reads, per task, for reports/scale.md (measured, not assumed).

For each task of the preset (all documents, 0-shot) it builds lm-eval's requests from the local data and
counts, with a real tokenizer, the tokens of every (context, continuation) request (lm-eval's HFLM path,
one row per request) and of the prefix engine's rows (each distinct context once, then its continuations).
Also the perplexity and fidelity corpora's full token counts. Prints one JSON object.

    PYTHONPATH=. python scripts/scale_tokens.py --tokenizer smollm2-135m > tokens.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--tokenizer", default="smollm2-135m", help="a zoo name or folder whose tokenizer counts")
    p.add_argument("--preset", default="paper")
    args = p.parse_args()
    from transformers import AutoTokenizer

    from bench.data import tasks as task_registry
    from bench.evaluate.lm_eval_glue import task_manager
    from bench.models import zoo
    from bench.run import presets

    tok = AutoTokenizer.from_pretrained(zoo.ensure_local(args.tokenizer))
    spec = presets.get(args.preset)
    names = spec["eval"]["tasks"]
    out = {"tokenizer": args.tokenizer, "preset": args.preset, "tasks": {}}
    with task_registry.offline("local"):
        tm = task_manager()
        loaded = tm.load(task_registry.lm_eval_spec(task_registry.resolve(names), "local"))
        for name, task in loaded["tasks"].items():
            task.build_all_requests(limit=None, rank=0, world_size=1)
            contexts: dict[str, list[str]] = defaultdict(list)
            full = 0
            for inst in task.instances:
                context, continuation = inst.args[0], inst.args[1]
                n_ctx, n_cont = len(tok(context).input_ids), len(tok(continuation).input_ids)
                full += n_ctx + n_cont
                contexts[context].append(n_cont)
            prefix = sum(len(tok(c).input_ids) + sum(v) for c, v in contexts.items())
            out["tasks"][name] = {"documents": len(task.eval_docs), "requests": len(task.instances),
                                  "tokens_lm_eval": full, "tokens_prefix": prefix}
            print(name, out["tasks"][name], file=sys.stderr)
    from bench.evaluate.windowed_perplexity import corpus_token_ids

    out["corpora"] = {c: int(corpus_token_ids(tok, c).numel()) for c in spec["eval"]["perplexity"]["corpora"]}
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
