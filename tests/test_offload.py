"""Models larger than memory (bench.models.offload): a tiny model dispatched by accelerate across CPU and disk under a
memory cap is pruned (removal, LaCo's merge, a trained Streamline replacement, LoRA healing), evaluated by
the engine with the dense model's boundary states, and exported, with logits and per-choice
log-likelihoods equal to the in-memory run's; plus --max-memory's parsing."""

from __future__ import annotations

import json

import pytest
import torch
from test_engine import TASKS, toy_data  # noqa: F401 (a fixture: synthetic PIQA, ARC-Easy, Winogrande)
from test_runner_fixtures import tiny_env  # noqa: F401 (a fixture: a tiny model folder, a corpus, a run YAML)
from tiny import tiny_config, tiny_tokenizer
from transformers import AutoModelForCausalLM

import methods
from bench.core.errors import ConfigError
from bench.data.calibration import Calibration, CalibSpec
from bench.data.training_text import TrainData, TrainDataSpec
from bench.evaluate.engine import BoundaryStates, Reuse, bisection_order, first_changed_layer, shared_prefix
from bench.evaluate.multiple_choice import evaluate_accuracy
from bench.models import arch, offload, zoo
from bench.models.export import save_pruned
from bench.run.pipeline import prune
from methods.base import Budget

N_LAYERS = 6
TEXT = "\n\n".join(f"Entry {i}: the mill by the river ground {i % 9} sacks of wheat each morning before the market "
                   f"opened in the square of {'PQRSTU'[i % 6]}ford." for i in range(100))
# cells: a removal with LoRA healing, LaCo's in-place merge, a trained Streamline replacement layer, Taylor+
# (gradients of offloaded weights), LAST with healing (offloaded layers trained)
CELLS = [("shortgpt", {"heal": "lora", "lora_samples": 8, "lora_seq_len": 16, "lora_batch": 4, "lora_lr": 3e-3}, 2),
         ("laco", {"layers_per_merge": 2, "n_sentences": 2, "threshold": 0.0}, 1),
         ("streamline", {"train_samples": 8, "train_seq_len": 16, "train_batch": 4}, 2),
         ("taylor", {"keep_first": 1, "keep_last": 1}, 2),  # weight gradients of offloaded layers
         ("replaceme", {}, 2),  # a linear map folded into an offloaded layer's weights
         ("sleb", {}, 1),  # a search of forward passes over trial removals
         ("last", {"heal": True, "heal_layers": 2, "heal_epochs": 1, "train_samples": 8, "train_seq_len": 16,
                   "train_batch": 4, "lr": 1e-3}, 1)]  # training the last (offloaded) layers


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A tiny Llama saved as a Hugging Face folder (what zoo.load reads), and a text file."""
    out = tmp_path_factory.mktemp("tiny-llama")
    config = tiny_config("llama", N_LAYERS)
    config.max_position_embeddings = 1024
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config, dtype=torch.float32).save_pretrained(out)
    tiny_tokenizer().save_pretrained(out)
    (out / "text.txt").write_text(TEXT)
    return out


def _load(folder, tmp_path, cap: str | None):
    model, tok = zoo.load(str(folder), device="cpu", dtype="float32", max_memory=cap,
                          offload_folder=str(tmp_path / "offload") if cap else None)
    return model, tok


def _cap(folder) -> str:
    """A CPU cap that holds the embedding and about two decoder layers: the rest goes to disk."""
    model, _ = zoo.load(str(folder), device="cpu", dtype="float32")
    per_layer = arch.layer_parameter_counts(model)[0] * 4
    embed = model.get_input_embeddings().weight.numel() * 4
    return f"cpu={embed + 2 * per_layer}B"


def _ids(tok):
    return tok(["The mill by the river ground wheat", "Water boils at one hundred"], return_tensors="pt",
               padding=True).input_ids


def _run(folder, tmp_path, cap, name, params, layers):
    """Load (in memory or dispatched), prune with the spec's method, evaluate with the engine (reusing the dense
    model's states), export; returns what the two runs must agree on."""
    model, tok = _load(folder, tmp_path, cap)
    corpus = str(folder / "text.txt")
    calib = Calibration(CalibSpec(source=corpus, n_samples=4, seq_len=16, batch_size=2), model, tok)
    data = TrainData(TrainDataSpec(source=corpus), tok)
    states = BoundaryStates()
    dense_eval = evaluate_accuracy(model, tok, TASKS, batch_size=4, engine="prefix",
                                   reuse=Reuse(states, N_LAYERS, tuple(bisection_order(N_LAYERS))))
    pruner = methods.create(name, params)
    result = prune(model, pruner, Budget(layers=layers), calib, copy_model=True, heal_data=data)
    shared = shared_prefix(model, result.model, first_changed_layer(result.plan))
    pruned_eval = evaluate_accuracy(result.model, tok, TASKS, batch_size=4, engine="prefix",
                                    reuse=Reuse(states, shared, (shared,) if shared else ()))
    with torch.no_grad():
        dense_logits, pruned_logits = model(_ids(tok)).logits, result.model(_ids(tok)).logits
    out = save_pruned(result.model, tok, result.plan, tmp_path / f"export-{name}-{bool(cap)}", base_model="tiny")
    exported = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    with torch.no_grad():
        exported_logits = exported(_ids(tok)).logits
    return {"dispatched": offload.is_dispatched(model), "map": dict(getattr(model, "hf_device_map", {})),
            "removed": result.plan.removed_original, "ops": result.plan.ops, "shared": shared,
            "dense_logits": dense_logits, "pruned_logits": pruned_logits, "exported_logits": exported_logits,
            "dense_ll": _logliks(dense_eval), "pruned_ll": _logliks(pruned_eval),
            "engine": pruned_eval.engine_stats, "cost": result.plan.cost.get("training")}


def _logliks(result) -> list[float]:
    return [ll for task in TASKS for s in result.samples[task] for ll in s["loglik"]]


@pytest.mark.parametrize(("name", "params", "layers"), CELLS, ids=[c[0] for c in CELLS])
def test_dispatched_model_prunes_evaluates_and_exports_like_in_memory(toy_data, folder, tmp_path, name,  # noqa: F811
                                                                       params, layers):
    cap = _cap(folder)
    plain = _run(folder, tmp_path, None, name, params, layers)
    disp = _run(folder, tmp_path, cap, name, params, layers)
    assert not plain["dispatched"] and disp["dispatched"]
    assert "disk" in disp["map"].values() and "cpu" in disp["map"].values()   # really across CPU and disk
    assert disp["removed"] == plain["removed"] and disp["ops"] == plain["ops"] and disp["shared"] == plain["shared"]
    for key in ("dense_logits", "pruned_logits", "exported_logits"):
        torch.testing.assert_close(disp[key], plain[key], rtol=0, atol=1e-6, msg=key)
    for key in ("dense_ll", "pruned_ll"):
        assert len(disp[key]) == len(plain[key]) > 0
        assert max(abs(a - b) for a, b in zip(disp[key], plain[key], strict=True)) <= 1e-5, key
    assert disp["engine"]["fallback"] is None and disp["engine"]["checked_requests"] > 0
    # the export equals the model that was evaluated
    torch.testing.assert_close(disp["exported_logits"], disp["pruned_logits"], rtol=1e-5, atol=1e-5)
    if plain["cost"] is not None:
        assert disp["cost"]["loss_curve"] == plain["cost"]["loss_curve"]


def test_the_dense_model_is_untouched_by_a_merge_on_its_copy(folder, tmp_path):
    """LaCo merges into a copy: the dispatched dense model still reads its own weights afterwards."""
    model, tok = _load(folder, tmp_path, _cap(folder))
    with torch.no_grad():
        before = model(_ids(tok)).logits
    calib = Calibration(CalibSpec(source=str(folder / "text.txt"), n_samples=4, seq_len=16), model, tok)
    result = prune(model, methods.create("laco", CELLS[1][1]), Budget(layers=1), calib, copy_model=True)
    assert result.plan.ops[0]["op"] == "merge"
    with torch.no_grad():
        torch.testing.assert_close(model(_ids(tok)).logits, before, rtol=0, atol=0)
    assert arch.num_layers(model) == N_LAYERS and arch.num_layers(result.model) == N_LAYERS - 1


@pytest.mark.parametrize(("text", "expected"), [
    ("cpu=2GiB", {"cpu": 2 * 2**30}),
    ("0=70GiB,1=70GiB", {0: 70 * 2**30, 1: 70 * 2**30}),
    ("cuda:0=1.5GB, cpu=500MB", {0: 1_500_000_000, "cpu": 500_000_000}),
    ("cpu=1024", {"cpu": 1024}),
    (None, None), ("none", None),
])
def test_max_memory_parses(text, expected):
    assert offload.parse_max_memory(text) == expected


@pytest.mark.parametrize("text", ["cpu", "cpu=", "gpu=2GiB", "cpu=2 parsecs", "cpu=0", "cpu=1GiB,cpu=2GiB", "=3GB"])
def test_bad_max_memory_is_a_config_error(text):
    with pytest.raises(ConfigError):
        offload.parse_max_memory(text)


def test_a_gpu_the_machine_lacks_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="GPU"):
        offload.load_kwargs({torch.cuda.device_count(): 2**30}, tmp_path)


def test_a_cap_below_the_embedding_is_a_config_error(folder, tmp_path):
    with pytest.raises(ConfigError, match="embedding"):
        _load(folder, tmp_path, "cpu=1KiB")


def test_bench_prune_under_a_memory_cap_writes_the_in_memory_checkpoint(folder, tmp_path, capsys):
    """`bench prune --max-memory`: the same plan and the same weights as without the cap (LaCo: a merge)."""
    from safetensors.torch import load_file

    from bench.cli import main

    common = ["prune", "--model", str(folder), "--method", "laco", "--layers", "1", "--calib", str(folder / "text.txt"),
              "--calib-samples", "4", "--calib-seq-len", "16", "--device", "cpu", "--dtype", "float32",
              "--param", "layers_per_merge=2", "--param", "n_sentences=2", "--param", "threshold=0"]
    assert main([*common, "--out", str(tmp_path / "plain")]) == 0
    assert main([*common, "--max-memory", _cap(folder),
                 "--offload-dir", str(tmp_path / "off"), "--out", str(tmp_path / "capped")]) == 0
    plain, capped = (load_file(tmp_path / d / "model.safetensors") for d in ("plain", "capped"))
    assert plain.keys() == capped.keys()
    assert all(torch.equal(plain[k], capped[k]) for k in plain)
    plan = [(tmp_path / d / "plan.json").read_text() for d in ("plain", "capped")]
    assert json_ops(plan[0]) == json_ops(plan[1])


def json_ops(text: str):
    import json

    data = json.loads(text)
    return data["ops"], data["removed_original"]


def test_bench_run_under_a_memory_cap_records_the_in_memory_numbers(tiny_env, tmp_path):  # noqa: F811
    """`bench run --max-memory`: every cell (dense, ShortGPT, LaCo) records the in-memory run's perplexity and
    stability, and the cell keys do not depend on the cap."""
    from bench.cli import main

    cfg = tiny_env.config(tmp_path / "run.yaml", methods=["shortgpt", "laco"],
                          method_params={"laco": {"layers_per_merge": 2, "n_sentences": 2, "threshold": 0.0}})
    per_layer = 4 * sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(tiny_env.model).model.layers[0]
                        .parameters())
    embed = 4 * 512 * 64
    records = {}
    for name, extra in (("plain", []), ("capped", ["--max-memory", f"cpu={embed + per_layer}B",
                                                   "--offload-dir", str(tmp_path / "off")])):
        assert main(["run", "--config", str(cfg), "--store", str(tmp_path / name), "--plain", "--no-report",
                     *extra]) == 0
        records[name] = {r["key"]: r for r in map(json.loads, (tmp_path / name / "results.jsonl").read_text()
                                                  .splitlines())}
    assert records["plain"].keys() == records["capped"].keys() and len(records["plain"]) == 3
    for key, plain in records["plain"].items():
        a = json.loads((tmp_path / "plain" / plain["record"]).read_text())
        b = json.loads((tmp_path / "capped" / records["capped"][key]["record"]).read_text())
        assert b["provenance"]["dispatch"]["bytes_by_device"].get("disk"), "the capped run offloads to disk"
        assert [p["nll"] for p in a["perplexity"]] == pytest.approx([p["nll"] for p in b["perplexity"]], abs=1e-6)
        assert (a.get("pruning") or {}).get("removed_original") == (b.get("pruning") or {}).get("removed_original")


def test_an_offloaded_head_is_kept_in_memory_and_scores_alike(tmp_path):
    """An untied head the cap left on disk is loaded for good (it is called per chunk); logits unchanged."""
    config = tiny_config("llama", N_LAYERS)
    config.tie_word_embeddings = False
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config, dtype=torch.float32).save_pretrained(tmp_path / "untied")
    tiny_tokenizer().save_pretrained(tmp_path / "untied")
    plain, tok = zoo.load(str(tmp_path / "untied"), device="cpu", dtype="float32")
    embed = plain.get_input_embeddings().weight.numel() * 4
    per_layer = arch.layer_parameter_counts(plain)[0] * 4  # the cap: the embedding, room for the head, 2 layers
    disp, _ = zoo.load(str(tmp_path / "untied"), device="cpu", dtype="float32",
                       max_memory=f"cpu={2 * embed + 2 * per_layer}B",
                       offload_folder=str(tmp_path / "off"))
    assert disp.hf_device_map["lm_head"] == "disk" and offload.is_dispatched(disp)
    assert not disp.get_output_embeddings().weight.is_meta
    with torch.no_grad():
        torch.testing.assert_close(disp(_ids(tok)).logits, plain(_ids(tok)).logits, rtol=0, atol=1e-6)
