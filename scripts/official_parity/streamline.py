"""Driver: the official LLM-Streamline selection (LLM_Streamline/get_cosine.py) on the harness's windows.

Shares its name with methods.streamline: it is the official code's side of that method's parity fixture.
"""
import json
import sys

import torch
from transformers import AutoModelForCausalLM

sys.path.insert(0, "/tmp/official-streamline/LLM_Streamline")
import get_cosine

meta = json.load(open("/tmp/official/tokens-q32.json"))
windows = torch.load("/tmp/official/tokens-q32.pt")
model = AutoModelForCausalLM.from_pretrained(meta["folder"], dtype=torch.float32).eval()
dataset = [{"input_ids": w.tolist()} for w in windows]  # one window per sample, as the official 2048-token blocks
recorded = []
original = get_cosine.average_similarity
get_cosine.average_similarity = lambda sims: recorded.append(original(sims)) or recorded[-1]  # record, unchanged
out = {}
for window in (5, 6, 9, 10):  # train_mseloss.py calls it with layer_intervals + 1 (= the window)
    recorded.clear()
    torch.manual_seed(0)  # generate_unique_index uses randperm; with num_data = len(dataset) every sample is used
    best = get_cosine.get_cosine_similarity(model, dataset, len(dataset), "cpu", window, model.config.num_hidden_layers)
    out[str(window)] = {"best_layer": best, "similarity_0.5+0.5cos": list(recorded)}
    print(window, best)
json.dump(out, open("/tmp/official/result-streamline.json", "w"), indent=1)
