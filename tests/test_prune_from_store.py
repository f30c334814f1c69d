"""`bench prune --from-store` / `--plan` write exactly the model a stored cell measured (its plan replayed,
its trained tensors loaded), and a plain `bench prune` uses the settings of the preset's cell.

The logits the cell was evaluated with are taken from the pruned model the session built (a wrapper around
`bench.run.pipeline.prune`, which the session calls), on fixed input; the exported checkpoint is loaded with
stock transformers and must give the same logits bit for bit."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from bench.cli import main
from bench.results.store import Store
from bench.run import config, pipeline, runner

pytestmark = pytest.mark.usefixtures("one_thread")

IDS = torch.tensor([[0, 5, 17, 42, 99, 3, 250, 7, 11, 300, 64, 2]])


def _capturing(monkeypatch) -> dict:
    """Wrap the pipeline's prune: the logits of every pruned model the session evaluates, by method."""
    seen: dict[str, torch.Tensor] = {}
    real = pipeline.prune

    def prune(model, pruner, *args, **kwargs):
        result = real(model, pruner, *args, **kwargs)
        with torch.no_grad():
            seen[pruner.name] = result.model(input_ids=IDS).logits.clone()
        return result

    monkeypatch.setattr(pipeline, "prune", prune)
    return seen


def _exported_logits(folder) -> torch.Tensor:
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.no_grad():
        return model(input_ids=IDS).logits


@pytest.fixture(scope="module")
def stored(tiny_env, tmp_path_factory):
    """A store with a training-free cell (shortgpt), a merging one (laco) and a trained one (streamline)."""
    mp = pytest.MonkeyPatch()
    seen = _capturing(mp)
    root = tmp_path_factory.mktemp("from-store")
    params = {"streamline": {"train_samples": 4, "train_seq_len": 16, "train_batch": 2},
              "laco": {"layers_per_merge": 2, "n_sentences": 2}}
    spec = config.from_yaml(tiny_env.config(root / "run.yaml", methods=["shortgpt", "laco", "streamline"],
                                            method_params=params, train={"source": str(tiny_env.corpus)}))
    spec = dataclasses.replace(spec, store=str(root / "store"))
    outcome = runner.run(spec)
    mp.undo()
    assert not outcome.failures, [r.get("error") for r in outcome.failures]
    return root / "store", seen


@pytest.mark.parametrize("method", ["shortgpt", "laco", "streamline"])
def test_from_store_writes_the_model_the_cell_measured(stored, method, tmp_path, capsys):
    store, seen = stored
    out = tmp_path / "out"
    assert main(["prune", "--from-store", str(store), "--cell", f"{method} 1 layers", "--out", str(out)]) == 0
    assert "saved" in capsys.readouterr().out
    assert torch.equal(_exported_logits(out), seen[method])


def test_streamline_cell_keeps_its_trained_module_and_removals_keep_nothing(stored):
    store, _ = stored
    by_method = {r["cell"]["method"]: r for r in Store(store).records()}
    cell = Store(store).cell_dir
    assert (cell(by_method["streamline"]["key"]) / pipeline.TRAINED).exists()
    assert pipeline.TRAINED in by_method["streamline"]["files"]
    tensors, tied = pipeline.load_trained((cell(by_method["streamline"]["key"]) / pipeline.TRAINED).read_bytes())
    start = json.loads((cell(by_method["streamline"]["key"]) / "plan.json").read_text())["ops"][0]["start"]
    assert tensors and all(name.startswith(f"model.layers.{start}.") for name in tensors) and tied is True
    assert not (cell(by_method["shortgpt"]["key"]) / pipeline.TRAINED).exists()   # replaying the plan suffices


def test_plan_file_of_a_cell_replays_it(stored, tiny_env, tmp_path):
    store, seen = stored
    (record,) = [r for r in Store(store).records() if r["cell"]["method"] == "streamline"]
    plan = Store(store).cell_dir(record["key"]) / "plan.json"
    out = tmp_path / "out"
    assert main(["prune", "--plan", str(plan), "--model", str(tiny_env.model), "--dtype", "float32",
                 "--out", str(out)]) == 0
    assert torch.equal(_exported_logits(out), seen["streamline"])


def test_a_plan_that_trained_without_its_tensors_is_refused(stored, tiny_env, tmp_path, capsys):
    store, _ = stored
    (record,) = [r for r in Store(store).records() if r["cell"]["method"] == "streamline"]
    lone = tmp_path / "plan.json"
    lone.write_text((Store(store).cell_dir(record["key"]) / "plan.json").read_text())
    assert main(["prune", "--plan", str(lone), "--model", str(tiny_env.model), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "trained tensors are not beside it" in err and "\n" == err[-1]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv, needle", [
    (["--cell", "nothing like it"], "no cell of"),
    (["--cell", "1 layers"], "matches 3 cells"),
    (["--cell", "dense"], "is the dense model"),
    (["--cell", "shortgpt", "--layers", "2"], "--layers changes how a model is pruned"),
])
def test_from_store_bad_cell_is_one_line(stored, tmp_path, capsys, argv, needle):
    store, _ = stored
    assert main(["prune", "--from-store", str(store), *argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1


def test_plain_prune_uses_the_preset_cell_settings_and_says_differences(tiny_env, tmp_path, capsys):
    """A plain prune builds its calibration and parameters the way `bench run` builds the preset's cell:
    the quick preset's 32 calibration windows and its Streamline method_params; a flag on top is said."""
    from bench.run import cells
    from bench.run.config import MethodSpec, resolve

    preset = resolve({"models": ["smollm2-135m"], "methods": ["streamline"], "ratios": [0.25]})
    cell = next(c for c in cells.expand(preset) if not c.dense)
    assert dict(cell.params)["train_samples"] == 32 and preset.calib.n_samples == 32
    assert dict(cells.resolve_params(MethodSpec("streamline"), 0, preset.method_params)) == dict(cell.params)
    out = tmp_path / "p"
    assert main(["prune", "--model", str(tiny_env.model), "--method", "ShortGPT", "--layers", "1", "--calib",
                 str(tiny_env.corpus), "--calib-samples", "4", "--calib-seq-len", "16", "--dtype", "float32",
                 "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "the quick preset's cell" in said and "calibration n_samples 4 (preset 32)" in said
    assert "calibration seq_len 16 (preset 128)" in said


@pytest.mark.real
@pytest.mark.slow
def test_real_smollm2_from_store_equals_the_cell_and_plain_prune_equals_the_quick_cell(tmp_path, monkeypatch):
    """SmolLM2-135M, the quick preset's calibration and Streamline parameters (ratio 0.25, lm objective on 32
    x 128 tokens of C4), a small evaluation: the stored Streamline cell exports to the logits it was
    evaluated with, and a plain `bench prune` of ShortGPT removes the layers the quick preset's cell removed."""
    seen = _capturing(monkeypatch)
    spec = config.resolve({"methods": ["shortgpt", "streamline"], "ratios": [0.25], "dtype": "float32",
                           "store": str(tmp_path / "store"),
                           "eval": {"tasks": ["piqa"], "limit": 5, "perplexity": None, "fidelity": None,
                                    "latency": None, "stability": False}})
    outcome = runner.run(spec)
    assert not outcome.failures
    for method in ("streamline", "shortgpt"):
        out = tmp_path / method
        assert main(["prune", "--from-store", spec.store, "--cell", f"{method} ratio 0.25", "--out", str(out)]) == 0
        assert torch.equal(_exported_logits(out), seen[method])
    stored_shortgpt = next(r for r in outcome.records.values() if r["cell"]["method"] == "shortgpt")
    plain = tmp_path / "plain"
    assert main(["prune", "--method", "shortgpt", "--ratio", "0.25", "--dtype", "float32", "--out", str(plain)]) == 0
    assert json.loads((plain / "plan.json").read_text())["removed_original"] == \
        stored_shortgpt["pruning"]["removed_layers"]
