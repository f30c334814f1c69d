"""Run in /tmp/official-laco: turn laco_llama-13b.ipynb into laco_run.py: its code cells in order, with only the edits listed (EDITS)."""
import json

nb = json.load(open("laco_llama-13b.ipynb"))
cells = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
EDITS = [
    (1, "llama_13B_path = 'Your Path'", "import os; llama_13B_path = os.environ['PARITY_MODEL']"),
    (1, "AutoModelForCausalLM.from_pretrained(llama_13B_path, trust_remote_code=True)",
        "AutoModelForCausalLM.from_pretrained(llama_13B_path, dtype=torch.float32)"),
    (2, "tokenizer = AutoTokenizer.from_pretrained(llama_13B_path, trust_remote_code=True)",
        "tokenizer = None  # the harness's windows are token ids already"),
    (3, "MERGE_LAYERS = 7", "MERGE_LAYERS = int(os.environ['PARITY_C'])"),
    (3, "HIGHEST_LAY = 39", "HIGHEST_LAY = int(os.environ['PARITY_H'])"),
    (3, "THRESHOLD = 0.45", "THRESHOLD = float(os.environ['PARITY_T'])"),
    (6, "encoded_inputs = tokenizer(s, return_tensors='pt')", "encoded_inputs = {'input_ids': s.unsqueeze(0)}"),
    (7, "sents.extend(en_wiki_selected)", "sents.extend(torch.load(os.environ['PARITY_TOKENS'])[:int(os.environ['PARITY_N'])])"),
]
edits = EDITS
for i, a, b in edits:
    assert a in cells[i], a
    cells[i] = cells[i].replace(a, b)
# instrumentation (outside the official cells): each trial's (layer, similarity, accepted) and the survivors
TRACE = """
import json as _json
_trace = []
_orig_merge = merge_layers_return_model
def merge_layers_return_model(model, merge_base_lay, merge_layer_num):
    out = _orig_merge(model, merge_base_lay, merge_layer_num)
    _trace.append({"layer": merge_base_lay, "n_layers_before": len(model.model.layers),
                   "n_layers_after": len(out.model.layers)})
    return out
_orig_sim = cal_last_hidden_sim
def cal_last_hidden_sim(model1, model2, tokenizer, sents):
    v = _orig_sim(model1, model2, tokenizer, sents)
    _trace[-1]["similarity"] = float(v)
    _trace[-1]["accepted"] = bool(v > THRESHOLD)
    return v
for _i, _l in enumerate(llama_13B.model.layers):
    _l._parity_orig = _i
"""
# cell 5 deep-copies the dense model after the layers are tagged (the tag survives deepcopy)
script = "\n\n".join(cells[:5]) + "\n\n" + "\n\n".join([cells[6], TRACE, cells[5], cells[7]])
script += """
_json.dump({"trace": _trace, "final_layers": [l._parity_orig for l in llama_13B_copy_to_compress.model.layers]},
           open(os.environ['PARITY_OUT'], 'w'), indent=1)
"""
open("laco_run.py", "w").write(script)
