"""Compose the parity fixtures (facts) from the official runs' outputs."""
import csv
import json
import sys

OUT = "/work/wt-25b/tests/fixtures/official"
def calib(name):
    m = json.load(open(f"/tmp/official/tokens-{name}.json"))
    return {"spec": {k: v for k, v in m["spec"].items() if k != "last_boundary"}, "shape": m["shape"],
            "windows_sha256": m["sha256"],
            "how": "bench.data.calibration.Calibration(CalibSpec(...), model, tokenizer).windows on SmolLM2-135M, dumped with "
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
SHORTENED_EDITS_COMMON = [
    "src/utils.py get_model: LlamaForCausalLM.from_pretrained(..., low_cpu_mem_usage=True) gets "
    "torch_dtype=torch.float32 (transformers 5 otherwise loads the folder's bf16)",
    "src/utils.py get_model: LlamaTokenizer.from_pretrained -> AutoTokenizer.from_pretrained (SmolLM2 ships "
    "tokenizer.json only; the tokenizer is not used: the windows are token ids)",
]

def shortened_official(criterion: str, tokens: str, calib_args: str, tail: str = "") -> dict:
    """How the official Shortened-LLaMA criterion `criterion` (taylor | ppl) ran on the windows `tokens`."""
    return {"repository": "Nota-NetsPresso/shortened-llm", "commit": "4031a9212aa0dbeec8f2ad504af9346c758b0147",
            "files": [f"src/anal_block_sensitivity_{criterion}.py", "src/block_prune.py", "src/utils.py"],
            "edits": SHORTENED_EDITS_COMMON + [
                f"src/anal_block_sensitivity_{criterion}.py: example_prompts = torch.load($PARITY_TOKENS) (the "
                "harness's windows) instead of get_examples('bookcorpus', ...)"],
            "command": f"cd src && PARITY_TOKENS={tokens}.pt python anal_block_sensitivity_{criterion}.py "
                       "--base_model <smollm2-135m folder, linked as smollm2-135m-llama> --device cpu "
                       f"{calib_args} --output_dir {criterion}_out; then python block_prune.py --base_model <same> "
                       f"--device cpu --num_pruned_blocks <k> --block_order_csv {criterion}_out/block_order.csv "
                       "--skip_validation (with and without --no_plus_heuristic): its ' ** excluded blocks' line is "
                       f"the selection{tail}"}


if "taylor" in which:
    rows = {r["block_name"]: float(r["block_score"]) for r in csv.DictReader(open("/tmp/official/taylor_out/block_score_all.csv"))}
    order = [int(x) for x in open("/tmp/official/taylor_out/block_order.csv").read().strip().split(",")]
    keep = {0, 1, 2, 3, 28, 29}
    plus = [i for i in order if i not in keep]
    write("taylor", {
        "method": "taylor",
        "official": shortened_official("taylor", "tokens-q32", "--num_calib_data 32 --max_seq_len 128 --batch_size 8"),
        "calibration": calib("q32"),
        "score": "block_score: sum over the block's weight tensors ('weight' in the name: projections and norms) of "
                 "sum |W * sum_batches dL/dW| (norm_power 1, weight_reduction sum, block_reduction sum); ascending = "
                 "pruning order; block_prune.py drops blocks 0-3 and the last two from the order unless "
                 "--no_plus_heuristic",
        "block_score": [rows[f"model.layers.{i}"] for i in range(30)],
        "block_order": order,
        "budgets": {b: {"layers": k, "selection": plus[:k], "selection_no_plus": order[:k]} for b, k in BUDGETS.items()},
    })
if "sleb" in which:
    import re
    rounds, cur = [], {}
    for line in open("/tmp/official/sleb.log"):
        m = re.match(r"\[Block \d+ \(Original block (\d+)\) removed\] Loss=([0-9.]+)", line)
        if m:
            cur[int(m.group(1))] = float(m.group(2))
        m = re.match(r"\[SELECTED block \d+ \(Originally block (\d+)\)\]", line)
        if m:
            rounds.append({"removed": int(m.group(1)), "loss": cur})
            cur = {}
    order = [r["removed"] for r in rounds]
    write("sleb", {
        "method": "sleb",
        "official": {"repository": "jiwonsong-dev/SLEB", "commit": "d07129af60520e751087b8abb04a268a3c7ec861",
                     "files": ["sleb.py", "utils/model_utils.py", "utils/onoff_utils/onoff_llama.py"],
                     "edits": [
                         "utils/model_utils.py get_llm: device_map 'auto' -> 'cpu', torch_dtype 'auto' -> torch.float32, "
                         "model.seqlen = 2048 -> the harness's window length ($PARITY_SEQLEN = 64)",
                         "utils/onoff_utils/onoff_llama.py OnOff_LlamaDecoderLayer.forward, for transformers 5: a "
                         "decoder layer returns the hidden-state tensor (not a tuple), and self_attn returns two values "
                         "and takes the cache in **kwargs (the computation is unchanged)",
                         "sleb.py: dataloader = the harness's windows concatenated into one row (get_loss cuts it back "
                         "into seqlen windows) instead of get_trainloaders('wikitext2', ...); get_loss device "
                         "cuda:0 -> cpu",
                         "no code edit: the model folder is reached through a symlink named smollm2-135m-llama, "
                         "because the official code picks its Llama on/off layers by 'llama' in the model name"],
                     "command": "PARITY_SEQLEN=64 python sleb.py --model_name <smollm2-135m-llama> --num_blocks 30 "
                                "--num_remove_blocks 9 --dataset tokens-s4.pt --eval_ppl False (fire 0.7.1 from "
                                "pip --target, the only package added)"},
        "calibration": calib("s4"),
        "score": "loss per round and candidate (original index): get_loss = sum over windows of mean token NLL x "
                 "seqlen (printed to 3 decimals); the harness's mean_nll x n_windows x seqlen",
        "rounds": rounds,
        "budgets": {b: {"layers": k, "selection": sorted(order[:k]), "order": order[:k]} for b, k in BUDGETS.items()},
    })
if "ppl" in which:
    rows = list(csv.DictReader(open("/tmp/official/ppl_out/all_ppl_unsorted.csv")))
    ppl = {int(float(r["removed_block"])): float(r["ppl_bookcorpus"]) for r in rows}
    order = [int(x) for x in open("/tmp/official/ppl_out/block_order.csv").read().strip().split(",")]
    sel = json.load(open("/tmp/official/ppl_selection.json"))  # block_prune.py's ' ** excluded blocks' lines
    write("ppl", {
        "method": "ppl",
        "official": shortened_official("ppl", "tokens-s4", "--num_calib_data 4 --max_seq_len 64",
                                       " (run for k = 9; the k = 5 selection is the first 5 of the same filtered "
                                       "order, which is what block_prune.py takes for k = 5)"),
        "calibration": calib("s4"),
        "score": "ppl_bookcorpus[b]: exp(mean token NLL over the calibration windows) of the model rebuilt without "
                 "block b (from_config + weight copy); ascending = pruning order; block_prune.py drops blocks 0-3 and "
                 "the last two from the order unless --no_plus_heuristic",
        "perplexity_without_block": [ppl[i] for i in range(30)],
        "block_order": order,
        "budgets": {b: {"layers": k, "selection": sel[str(k)]["plus"], "selection_no_plus": sel[str(k)]["no_plus"]}
                    for b, k in BUDGETS.items()},
    })
if "replaceme" in which:
    bud = {}
    import torch
    for b, k in BUDGETS.items():
        rows = list(csv.DictReader(open(f"/tmp/official/replaceme-{k}/layer_distances.csv")))
        dist = [float(x["average_distance"]) for x in rows]
        i = min(range(len(dist)), key=lambda j: dist[j])
        t = torch.load(f"/tmp/official/replaceme-{k}/T.pt")
        bud[b] = {"layers": k, "block": [i + 1, i + 1 + k], "selection": list(range(i + 1, i + 1 + k)),
                  "average_distance": dist, "transform_fro_norm": float(t.norm()),
                  "transform_sha256_float64": __import__("hashlib").sha256(t.double().numpy().tobytes()).hexdigest(),
                  "transform_diagonal": [float(x) for x in t.diagonal()], "transform_row0": [float(x) for x in t[0]]}
    write("replaceme", {
        "method": "replaceme",
        "official": {"repository": "mts-ai/ReplaceMe", "commit": "5bb71d99da40c8b0ba0df488589e14d77ced7fee",
                     "files": ["ReplaceMe/distance.py", "ReplaceMe/lstsq.py", "ReplaceMe/utils.py"],
                     "edits": [
                         "ReplaceMe/utils.py get_calib_dataloader: a dataset path ending in .pt is the harness's windows "
                         "(DataLoader over torch.load(path), same batch size, no shuffle)",
                         "ReplaceMe/distance.py and lstsq.py: a batch is {input_ids: windows, attention_mask: ones} "
                         "instead of tokenizer(batch, padding='longest', ...); from_pretrained(..., dtype=torch.float32)",
                         "ReplaceMe/lstsq.py: device='cuda' -> 'cpu' (4 places)"],
                     "command": "python scripts/official_parity/replaceme.py (profile_distances(...) then lstsq(..., "
                                "num_A=1, merge_consecutive=True, alpha=0, diag=False, save_transform_only=True) with "
                                "dataset=tokens-q32.pt, batch_size=8, layers_to_skip=k; pytorch-minimize 0.1.0 and "
                                "termcolor from pip --target, imported by ReplaceMe/utils.py but not used here)"},
        "calibration": calib("q32"),
        "score": "average_distance[i]: as PruneMe (per-sample arccos(cos)/pi at the last token, hidden_states[1:]); "
                 "block (i+1, i+1+k) removes layers i+1..i+k; T = inv(M^T M) M^T (Y_e + M - Y_s) in fp64 over every "
                 "token (M: layer i's MLP output, Y_s its output, Y_e the output of layer i+k)",
        "budgets": bud,
    })
if "laco" in which:
    import re
    T = float(sys.argv[-1])
    trials, layer, n = [], None, None
    for line in open("/tmp/official/laco-run.log").read().splitlines():
        if re.fullmatch(r"-?\d+", line.strip()):
            layer = int(line)
        elif line.startswith("current model layer"):
            n = int(line.split()[-1])
        elif line.startswith("[") and "] " in line:
            sim = float(line.rsplit("] ", 1)[1])
            trials.append({"layer": layer, "n_layers": n, "similarity": sim, "accepted": sim > T})
    write("laco", {
        "method": "laco",
        "official": {"repository": "yangyifei729/LaCo", "commit": "84835877f918dc972df1a1375e09209551e02f3d",
                     "files": ["laco_llama-13b.ipynb"],
                     "edits": [
                         "the notebook's code cells run as one script, in order, with cell 6 (the similarity) "
                         "defined before cell 5 and a trace wrapper (records each trial; changes nothing)",
                         "cell 1: the model path is the smollm2-135m folder; from_pretrained(dtype=torch.float32) "
                         "without trust_remote_code; cell 2: no tokenizer (the windows are token ids)",
                         "cell 3: MERGE_LAYERS = 2, HIGHEST_LAY = 29 (SmolLM2's final layer index, as 39 of 40), "
                         "THRESHOLD = the fixture's threshold (LOWEST_LAY 0, INTERVAL 1 unchanged)",
                         "cell 6: encoded_inputs = {'input_ids': window} instead of tokenizer(sentence)",
                         "cell 7: sents = the harness's 4 windows instead of the five Wikipedia prefixes",
                         ],
                     "command": "python scripts/official_parity/laco_script.py (writes laco_run.py from the "
                                "notebook), then PARITY_MODEL=<folder> PARITY_C=2 PARITY_H=29 PARITY_T=<T> PARITY_N=4 "
                                "PARITY_TOKENS=tokens-s4.pt python laco_run.py; the printed trials are the record (the "
                                "runs were stopped once they held more trials than the 25 % budget needs: the search "
                                "is sequential, so a prefix is exact)"},
        "calibration": calib("s4"),
        "score": "per trial: the layer l merged with l+1 in the current model, the current layer count, the mean over "
                 "the 4 windows of the cosine between the flattened final (final-normed) hidden states of the dense "
                 "model and the candidate, and whether it exceeds the threshold",
        "layers_per_merge": 2, "n_sentences": 4,
        "official_trace": {"threshold": T, "trials": trials},
        "note": "with MERGE_LAYERS = 2 the paper's Eq. 1 and the official in-place update give the same layer "
                "(layer l+1's linear weights, layer l's norms), so this one trace is the reference for the harness's "
                "merge=official and merge=paper alike",
        "budgets": {b: {"layers": k} for b, k in BUDGETS.items()},
    })
