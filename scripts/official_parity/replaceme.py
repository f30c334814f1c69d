"""Driver: the official ReplaceMe distance profile and lstsq estimate on the harness's windows (cwd: a scratch folder).

Shares its name with methods.replaceme: it is the official code's side of that method's parity fixture.
"""
import json
import os
import sys

import torch

sys.path.insert(0, "/tmp/official-replaceme")
from ReplaceMe.distance import profile_distances
from ReplaceMe.lstsq import lstsq

folder, k = os.environ["PARITY_MODEL"], int(os.environ["PARITY_K"])
common = dict(model_path=folder, dataset="/tmp/official/tokens-q32.pt", dataset_column="text", batch_size=8,
              max_length=128, layers_to_skip=k, dataset_size=None)
if not os.path.exists("distances.pth"):  # a rerun reuses the profile
    profile_distances(**common)  # writes layer_distances.csv and distances.pth here
distances = torch.load("distances.pth", weights_only=False)
out = lstsq(**common, save_path=f"/tmp/official/replaceme-{k}/model", save_transform_only=True, diag=False, alpha=0,
            distances_path="distances.pth", num_A=1, merge_consecutive=True)
t = torch.load(out + "_transform")[0]
torch.save(t, f"/tmp/official/replaceme-{k}/T.pt")
json.dump({"average_distances": [float(x) for x in distances], "model": out}, open("result.json", "w"), indent=1)
