"""Write the greedy sub-layer methods' parity fixtures from the official runs' JSON (facts) into the project's tests.

Usage (from the repository root): python scripts/official_parity/write_sublayer_fixtures.py [blockpruner] [finercut]
(both by default) reads PARITY_OUT/blockpruner.json (blockpruner.py) and PARITY_OUT/finercut-0.25.json
(finercut.py 0.25 12; PARITY_OUT defaults to /tmp/official-parity), skips a method whose JSON is missing, and
writes tests/fixtures/official_parity/{blockpruner,finercut}.json: the official repository, commit, code and
how it was run (META), the calibration spec, the official order and rounds (every candidate's score), and the
selection at 12.5 % and 25 % (the official order's prefix under Budget.prefix_length, where the run went past
that budget). The LLM-Drop fixture (llm_drop.json) is not written here: it holds llm_drop.py's llmdrop.json
(similarities, selection) with the same kind of metadata.
"""
import json
import sys

import sublayer_common as common

from bench.models import arch
from methods.base import Budget

OUT = common.OUT  # PARITY_OUT, default /tmp/official-parity: the official runs' JSON
FIXTURES = common.REPO / "tests" / "fixtures" / "official_parity"

model, tok, calib = common.load("greedy")
units, total = common.sizes(model)
layer_params = arch.layer_parameter_counts(model)


def size(u):  # a unit's parameters: "attn12" / "mlp5"
    return units["attn" if u.startswith("attn") else "mlp"][int(u[4:] if u.startswith("attn") else u[3:])]


META = {
    "blockpruner": dict(
        repository="MrGGLS/BlockPruner", commit="821070741e7b45683e54ed986e6bf29f66a88d5d",
        official_code=["block_search.py: block_search_by_ppl, apply_block_masks, revert_block_masks, MaskedLlamaDecoderLayer",
                       "utils.py: evaluate_ppl"],
        how_run=("block_search_by_ppl imported unmodified from a checkout outside the project (/tmp/official-blockpruner), "
                 "--block-type mix, fp32, the harness's calibration windows as its test_loader; per-candidate perplexities "
                 "recorded by wrapping utils.evaluate_ppl. transformers 5.x API shims only: MaskedLlamaDecoderLayer's "
                 "attention returns a third (None) value as 4.x did, and the masked layer returns its hidden state instead "
                 "of a 1-tuple. Run until the removed parameters passed 25 %; the selection per budget is the official order's "
                 "prefix under the harness's budget rule (Budget.prefix_length).")),
    "finercut": dict(
        repository="YaNgZhAnG-V5/llm_dissect", commit="e1b641a2f990b2ca6627246c74c1be7b7c8584eb",
        official_code=["scripts/prune_layer.py: greedy_pruning (and main()'s pop / exclude bookkeeping)",
                       "dissect/evaluators/output.py: Output (distance_metric js_divergence)",
                       "dissect/models/masking_hook.py: MaskingHook", "dissect/utils/misc.py: get_target_layers"],
        how_run=("greedy_pruning, Output, MaskingHook and get_target_layers imported unmodified from a checkout outside the "
                 "project (/tmp/official-finercut), --prune-level am, --exclude 0.0, -d 576, fp32, batch size 1, the harness's "
                 "calibration windows; mmengine and alive_progress stubbed (registries, logger, progress bar), and "
                 "ForwardPrunerTestingManager's hook path re-typed in 15 lines (its module imports LlamaSdpaAttention, gone "
                 "in transformers 5.x). Per-candidate divergences recorded by wrapping Output.evaluate. Run in two parts: rounds 1-13 "
                 "to 12.5 %; then, for 25 %, the search state (the list of pruned sublayers, which is all greedy_pruning reads) "
                 "replayed from rounds 1-12 and rounds 13-26 run by the official code (round 13 recomputed: the same unit, "
                 "divergences within 2e-7 relative of the first run's).")),
}
FIRST_RUN_12_ROUNDS = 2643.7388734817505  # finercut-0.125.json's log: round 12 ended at 2643.7 s
for name in sys.argv[1:] or ("blockpruner", "finercut"):
    try:
        off = json.load(open(f"{OUT}/{name}-0.25.json" if name == "finercut" else f"{OUT}/{name}.json"))
    except FileNotFoundError:
        continue
    order = off["order"]
    sel, notes = {}, []
    cum = sum(size(u) for u in order)
    for ratio in (0.125, 0.25):
        target = Budget(ratio=ratio).target_parameters(layer_params, total)
        k = Budget.prefix_length([size(u) for u in order], target)
        if k < len(order) or cum > target:  # the official run went past this budget: its selection is known
            sel[f"{ratio}"] = order[:k]
        else:
            notes.append(f"the official run stopped before {ratio} (CPU time); no fixture at that budget")
    fix = {"method": name, **META[name], "model": "smollm2-135m", "dtype": "float32", "transformers": "5.25",
           "calib": common.SPECS["greedy"], "order": order, "rounds": off["rounds"], "selection": sel,
           "official_seconds": off["seconds"] + (FIRST_RUN_12_ROUNDS if name == "finercut" else 0.0), "note": "; ".join(notes) or None}
    json.dump(fix, open(FIXTURES / f"{name}.json", "w"), indent=1)
    print(name, {k: len(v) for k, v in sel.items()}, notes)
