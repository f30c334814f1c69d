"""Compose the parity fixtures (facts) from the official runs' outputs."""
import csv
import json
import sys

OUT = "/work/wt-25b/tests/fixtures/official"
def calib(name):
    m = json.load(open(f"/tmp/official/tokens-{name}.json"))
    return {"spec": {k: v for k, v in m["spec"].items() if k != "last_boundary"}, "shape": m["shape"],
            "windows_sha256": m["sha256"],
            "how": "bench.calib.Calibration(CalibSpec(...), model, tokenizer).windows on SmolLM2-135M, dumped with "
                   "torch.save (scripts/official_parity/dump_calib.py) and read by the official code"}
BUDGETS = {"0.125": 5, "0.25": 9}
def write(name, d):
    d = {"model": "smollm2-135m", "dtype": "float32", "device": "cpu", **d}
    json.dump(d, open(f"{OUT}/{name}.json", "w"), indent=1)
    print("wrote", name)

which = sys.argv[1:]
if "shortgpt" in which:
    r = json.load(open("/tmp/official/result-shortgpt.json"))
    write("shortgpt", {
        "method": "shortgpt",
        "official": {"repository": "icip-cas/ShortGPT", "commit": "9a2ee8dfe9e28d0bee430e83c140b787c02ddd6c",
                     "files": ["shortgpt/shortgpt.py", "shortgpt/metrics.py", "shortgpt/run_shortgpt.py"],
                     "edits": ["shortgpt/shortgpt.py: from_pretrained(device_map='auto', torch_dtype=torch.float16) -> "
                               "device_map='cpu', torch_dtype=torch.float32",
                               "shortgpt/shortgpt.py eval_importance: accepts a dict of input_ids / attention_mask (the "
                               "harness's windows) in place of strings to tokenize",
                               "shortgpt/shortgpt.py: .to('cuda') -> .to('cpu')"],
                     "command": "python scripts/official_parity/shortgpt.py (ShortGPT(model_name=<smollm2-135m folder>, "
                                "layers_path='model.layers', n_prune_layers=k); eval_importance(batch of 8 windows, "
                                "stride=256, max_gen_len=0) per batch; prune order as run_shortgpt.py; remove_layers())",
                     "why_not_sramshetty": "sramshetty/ShortGPT@78d9615 main runs Meta's llama package (not HF); its "
                                           "hf-models branch computes the same sums as the official code"},
        "calibration": calib("q32"),
        "score": "importances: sum over every calibration token of 1 - cos(h_i, h_i+1) (HF hidden_states: the last "
                 "entry is final-normed); the harness reports the mean (= sum / tokens)",
        "n_tokens": r["5"]["n_tokens"],
        "importances_sum": r["5"]["importances_sum"], "prune_order": r["5"]["prune_order"],
        "budgets": {b: {"layers": k, "selection": r[str(k)]["removed"]} for b, k in BUDGETS.items()},
    })
if "angular" in which:
    bud = {}
    for b, k in BUDGETS.items():
        rows = list(csv.DictReader(open(f"/tmp/official/pruneme-{k}/layer_distances.csv")))
        dist = [float(x["average_distance"]) for x in rows]
        i = min(range(len(dist)), key=lambda j: dist[j])  # as main(): the first strict minimum
        bud[b] = {"layers": k, "block_start_1based": i + 1, "selection": list(range(i + 1, i + 1 + k)),
                  "average_distance": dist}
    write("angular", {
        "method": "angular",
        "official": {"repository": "arcee-ai/PruneMe", "commit": "faee6c9dfb70841e8355908ecded2b25298cffc0",
                     "files": ["compute_block_similarity/layer_similarity.py", "compute_block_similarity/utils.py"],
                     "edits": ["layer_similarity.py: no BitsAndBytesConfig 4-bit quantization (no bitsandbytes on CPU); "
                               "from_pretrained(device_map='cpu', dtype=torch.float32, output_hidden_states=True)",
                               "layer_similarity.py: the DataLoader reads the harness's windows (torch.load of the "
                               "--dataset path) instead of datasets.load_dataset; a batch is {input_ids: windows, "
                               "attention_mask: ones} instead of tokenizer(batch, padding='longest', ...)"],
                     "command": "cd /tmp/official/pruneme-<k> && python /tmp/official-pruneme/compute_block_similarity/"
                                "layer_similarity.py --model_path <smollm2-135m folder> --dataset tokens-q32.pt "
                                "--dataset_column text --batch_size 8 --max_length 128 --layers_to_skip <k>"},
        "calibration": calib("q32"),
        "score": "average_distance[i]: mean over sequences of arccos(cos)/pi between the last-token states "
                 "hidden_states[1:][i] and [i + k] (HF hidden_states without the embedding output; the last entry "
                 "final-normed), i.e. the harness's window start i + 1; the block removed is layers i+1..i+k "
                 "(0-based; the CSV's block_start is i + 1, and slice.yaml keeps [0, block_start) and [block_end, L))",
        "budgets": bud,
    })
if "streamline" in which:
    r = json.load(open("/tmp/official/result-streamline.json"))
    bud = {}
    for b, k in BUDGETS.items():
        bud[b] = {"layers": k, "layer": {"window": k + 1, "best_layer": r[str(k + 1)]["best_layer"],
                                         "similarity": r[str(k + 1)]["similarity_0.5+0.5cos"]},
                  "none": {"window": k, "best_layer": r[str(k)]["best_layer"],
                           "similarity": r[str(k)]["similarity_0.5+0.5cos"]}}
    write("streamline", {
        "method": "streamline",
        "official": {"repository": "RUCKBReasoning/LLM-Streamline", "commit": "adf50baa83a1fabb644a2bd165fb9636838ff00b",
                     "files": ["LLM_Streamline/get_cosine.py", "LLM_Streamline/train_mseloss.py"],
                     "edits": ["get_cosine.py get_cosine_similarity: assert len(dataset) > num_data -> >= (so that "
                               "every one of the harness's windows is used)"],
                     "command": "python scripts/official_parity/streamline.py (get_cosine_similarity(model, [{input_ids: "
                                "window}...], num_data=32, 'cpu', window, 30) for window = k + 1 (train_mseloss.py passes "
                                "layer_intervals + 1, layer_intervals = k) and window = k (the harness's replacement=none); "
                                "average_similarity wrapped to record its return values, unchanged)"},
        "calibration": calib("q32"),
        "score": "similarity[l]: mean over windows of trace(0.5 + 0.5 cos matrix)/T between HF hidden_states l and "
                 "l + window (last entry final-normed); best_layer = argmax. Official layer mode keeps best_layer and "
                 "deletes the next k layers; the harness's removed_original names the whole window",
        "budgets": bud,
    })
