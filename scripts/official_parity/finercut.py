"""Driver: the official FinerCut greedy search on the harness's calibration windows (SmolLM2-135M, fp32, CPU).

Shares its name with methods.finercut: it is the official code's side of that method's parity fixture.

Official code: YaNgZhAnG-V5/llm_dissect @e1b641a2f990b2ca6627246c74c1be7b7c8584eb, unmodified, imported from a
checkout outside the project (OFFICIAL_FINERCUT, default /tmp/official-finercut): scripts/prune_layer.py
`greedy_pruning` (and main()'s pop / exclude bookkeeping, re-typed below), dissect/evaluators/output.py `Output`
(distance_metric js_divergence), dissect/models/masking_hook.py `MaskingHook`, dissect/utils/misc.py
`get_target_layers`; --prune-level am, --exclude 0.0, -d 576, batch size 1 (as the configs' data_loader).

Usage (from the repository root): python scripts/official_parity/finercut.py RATIO [RESUME] [--previous JSON] [--out JSON]
searches until the removed parameters pass RATIO of the model's and writes every round's removed sublayer and
per-candidate divergences (recorded by wrapping Output.evaluate) to --out (default PARITY_OUT/finercut-RATIO.json,
PARITY_OUT defaulting to /tmp/official-parity; rewritten with "partial": true after each round). RESUME replays
the first RESUME rounds recorded in --previous (default PARITY_OUT/finercut-0.125.json): the pruned sublayers,
which is all greedy_pruning reads, and the rounds as recorded. The fixture's runs: `finercut.py 0.125` (rounds
1-13), then `finercut.py 0.25 12` (rounds 1-12 replayed, 13-26 computed; round 13 recomputed: the same unit,
divergences within 2e-7 relative of the first run's).

Stubs (packages not installed / not importable under transformers 5.x, none on the criterion's path):
mmengine (registries, logger), alive_progress (progress bar), and the dissect sub-packages whose __init__
import modules irrelevant here. ForwardPrunerTestingManager's hook path (prepare_environment_mask_hook /
clean_environment_hook) is reproduced in 15 lines below because forward_pruner.py imports LlamaSdpaAttention,
which transformers 5.x removed.
"""
import argparse
import importlib.util
import json
import os
import sys
import time
import types

import sublayer_common as common

OFFICIAL = os.environ.get("OFFICIAL_FINERCUT", "/tmp/official-finercut")  # the official checkout
OUT = common.OUT  # PARITY_OUT, default /tmp/official-parity

parser = argparse.ArgumentParser(description="the official FinerCut greedy search on the harness's windows")
parser.add_argument("ratio", type=float, help="search until the removed parameters pass this share")
parser.add_argument("resume", type=int, nargs="?", default=0, help="replay this many rounds of --previous")
parser.add_argument("--previous", default=f"{OUT}/finercut-0.125.json", help="an earlier run's JSON (RESUME)")
parser.add_argument("--out", default=None, help="default: PARITY_OUT/finercut-RATIO.json")
cli = parser.parse_args()
out_path = cli.out or f"{OUT}/finercut-{cli.ratio}.json"


def stub(name, **attrs):
    m = types.ModuleType(name)
    m.__dict__.update(attrs)
    sys.modules[name] = m
    return m


class Registry:
    def __init__(self, *a, **k):
        pass

    def register_module(self, *a, **k):
        return lambda cls: cls

    def build(self, *a, **k):
        raise NotImplementedError


class Logger:
    def info(self, *a, **k):
        pass

    warning = info


mm = stub("mmengine", Registry=Registry,
          MMLogger=types.SimpleNamespace(get_current_instance=lambda: Logger(), get_instance=lambda *a, **k: Logger()),
          DictAction=object, Config=object, mkdir_or_exist=lambda *a: None)
stub("mmengine.device", is_cuda_available=lambda: False, is_musa_available=lambda: False)
stub("mmengine.dist")
stub("mmengine.dist.utils", master_only=lambda f: f)
stub("alive_progress", alive_it=lambda it, **k: it)
sys.path.insert(0, OFFICIAL)


def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


pkg = stub("dissect")
pkg.__path__ = [f"{OFFICIAL}/dissect"]
utils_pkg = load("dissect.utils", f"{OFFICIAL}/dissect/utils/__init__.py")
ev = stub("dissect.evaluators", EVALUATORS=Registry())
ev.__path__ = [f"{OFFICIAL}/dissect/evaluators"]
load("dissect.evaluators.builder", f"{OFFICIAL}/dissect/evaluators/builder.py")
output = load("dissect.evaluators.output", f"{OFFICIAL}/dissect/evaluators/output.py")
models = stub("dissect.models", build_model_and_tokenizer=None)
models.__path__ = [f"{OFFICIAL}/dissect/models"]
masking = load("dissect.models.masking_hook", f"{OFFICIAL}/dissect/models/masking_hook.py")
stub("dissect.datasets", build_dataset=None)
stub("dissect.pruners", TESTING_MANAGER=Registry())
prune_layer = load("prune_layer", f"{OFFICIAL}/scripts/prune_layer.py")


class TestingManager:  # ForwardPrunerTestingManager, hook path (in_place False, prune_input [NoItem])
    def __init__(self):
        self.mask_state_dict, self.test_handle_dict, self.prune_input = None, {}, ["NoItem"]

    def prepare_environment(self, model, model_cfg):
        for layer_name, pruning_mask in self.mask_state_dict.items():
            layer = model.get_submodule(layer_name)
            mask_input = any(t in layer_name for t in self.prune_input)
            pass_input = layer_name.split(".")[-1].isdigit()
            hook = masking.MaskingHook(pruning_mask, prior=None, mask_input=mask_input, pass_input=pass_input)
            self.test_handle_dict[layer_name] = layer.register_forward_hook(hook)
        return model

    def clean_environment_hook(self, model, model_cfg, device):
        for h in self.test_handle_dict.values():
            h.remove()
        self.test_handle_dict.clear()
        return model


model, tok, calib = common.load("greedy")
units, total = common.sizes(model)
target = cli.ratio * total
loader = [{"input_ids": ids[j:j + 1], "attention_mask": mask[j:j + 1]} for ids, mask in calib.batches() for j in range(ids.shape[0])]
evaluator = output.Output(distance_metric="js_divergence")
evaluator.collect_output_data(data_loader=loader, model=model, device="cpu", logger=Logger())
calls = []
_evaluate = evaluator.evaluate


def evaluate(*a, **k):
    v = _evaluate(*a, **k)
    calls.append(float(v))
    return v


evaluator.evaluate = evaluate
exclude = 0.0
target_layers, exclude_layers, total_targets = utils_pkg.get_target_layers(model, ["o_proj", "down_proj"], exclude)


def unit(name):
    parts = name.split(".")
    return ("attn" if parts[-1] == "o_proj" else "mlp", int(parts[2]))


def label(name):  # "attn12" / "mlp5"
    k, i = unit(name)
    return f"{k}{i}"


manager, pruned, rounds, params = TestingManager(), [], [], 0
if cli.resume:  # replay the search state: main()'s bookkeeping for each recorded round, no model call
    previous = json.load(open(cli.previous))
    name_of = {label(n): n for n in target_layers}
    for r in previous["rounds"][:cli.resume]:
        n = name_of[r["removed"]]
        pruned.append(n)
        target_layers.remove(n)
        if len(pruned) == int(total_targets * exclude) + 1:
            target_layers += exclude_layers
        k, i = unit(n)
        params += units[k][i]
        rounds.append(r)
hidden = model.config.hidden_size
t0 = time.time()


def record(**extra):
    json.dump({"order": [r["removed"] for r in rounds], "rounds": rounds, "seconds": time.time() - t0, **extra},
              open(out_path, "w"), indent=1)


while params <= target:
    calls.clear()
    index = prune_layer.greedy_pruning(model=model, model_cfg=None, data_loader=loader, layer_dim=hidden,
                                       target_layers=target_layers, pruned_layers=pruned, evaluator=evaluator,
                                       testing_manager=manager, device="cpu", logger=Logger(), smallest=True,
                                       verbose=False)
    scores = {label(n): v for n, v in zip(target_layers, calls)}
    pruned.append(target_layers[index])
    target_layers.pop(index)
    if len(pruned) == int(total_targets * exclude) + 1:
        target_layers += exclude_layers
    k, i = unit(pruned[-1])
    params += units[k][i]
    rounds.append({"removed": f"{k}{i}", "scores": scores})
    print(len(rounds), rounds[-1]["removed"], min(scores.values()), time.time() - t0, flush=True)
    record(partial=True)
record()
print("done")
