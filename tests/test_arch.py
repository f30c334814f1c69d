"""Layer surgery on tiny random models of every supported family."""

import pytest
import torch
from tiny import FAMILIES, tiny_model
from transformers import AutoModelForCausalLM

from bench.core.errors import SurgeryError
from bench.models import arch

PROMPT = "The Eiffel Tower is"


def _ids(tok):
    return tok([PROMPT], return_tensors="pt").input_ids


def _generate(model, ids, use_cache):
    with torch.no_grad():
        return model.generate(ids, max_new_tokens=8, min_new_tokens=8, do_sample=False, use_cache=use_cache,
                              pad_token_id=0)


@pytest.mark.parametrize("fam", FAMILIES)
def test_remove_keeps_cache_consistent_and_saves(fam, tmp_path):
    model, tok = tiny_model(fam, n_layers=4)
    ids = _ids(tok)
    types_before = list(getattr(model.config, "layer_types", None) or [])
    arch.remove_layers(model, [1, 2])
    assert arch.num_layers(model) == 2
    assert model.config.num_hidden_layers == 2
    if types_before:
        assert model.config.layer_types == [types_before[0], types_before[3]]
    for i, layer in enumerate(arch.decoder_layers(model)):
        assert all(m.layer_idx == i for m in layer.modules() if hasattr(m, "layer_idx"))
    assert torch.equal(_generate(model, ids, True), _generate(model, ids, False))

    model.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
    assert arch.num_layers(reloaded) == 2
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids).logits, model(ids).logits)


@pytest.mark.parametrize("fam", FAMILIES)
def test_remove_nothing_is_identity(fam):
    model, tok = tiny_model(fam)
    ids = _ids(tok)
    with torch.no_grad():
        before = model(ids).logits
        arch.remove_layers(model, [])
        assert arch.num_layers(model) == 4
        assert torch.equal(model(ids).logits, before)


@pytest.mark.parametrize("bad, match", [([4], "out of range"), ([-1], "out of range"), ([1, 1], "duplicate"),
                                        ([0, 1, 2, 3], "all 4 layers")])
def test_bad_removals_raise(bad, match):
    model, _ = tiny_model("llama")
    with pytest.raises(SurgeryError, match=match):
        arch.remove_layers(model, bad)
    assert arch.num_layers(model) == 4  # nothing was changed


def test_replace_span_installs_module_and_config():
    model, tok = tiny_model("gemma3", n_layers=4)
    types = list(model.config.layer_types)
    layers = arch.decoder_layers(model)
    keep = layers[1]
    arch.replace_span(model, 1, 3, keep)
    assert arch.num_layers(model) == 3
    assert arch.decoder_layers(model)[1] is keep
    assert model.config.layer_types == [types[0], types[1], types[3]]
    ids = _ids(tok)
    assert torch.equal(_generate(model, ids, True), _generate(model, ids, False))
    with pytest.raises(SurgeryError):
        arch.replace_span(model, 2, 2, keep)


def test_merge_layers_combines_weights():
    model, _ = tiny_model("llama")
    layers = arch.decoder_layers(model)
    w0 = layers[0].mlp.down_proj.weight.detach().clone()
    w1 = layers[1].mlp.down_proj.weight.detach().clone()
    arch.merge_layers(model, 0, [1], lambda name, base, others: base + sum(o - base for o in others))
    assert arch.num_layers(model) == 3
    torch.testing.assert_close(arch.decoder_layers(model)[0].mlp.down_proj.weight, w1)
    assert not torch.equal(w0, w1)


def test_count_parameters_counts_tied_once():
    model, _ = tiny_model("llama")  # tied embeddings
    assert arch.embeddings_tied(model)
    emb = model.get_input_embeddings().weight.numel()
    naive = sum(p.numel() for _, p in model.named_parameters(remove_duplicate=False))
    assert arch.count_parameters(model) == naive - emb
    per_layer = arch.layer_parameter_counts(model)
    assert len(per_layer) == 4 and len(set(per_layer)) == 1


def test_count_parameters_on_the_meta_device_counts_every_tensor_and_tied_once():
    """Weights offloaded to disk, or a model built from its config alone, live on the meta device, where every
    tensor reports the same null address: counting by address would merge all same-shaped tensors."""
    model, _ = tiny_model("llama")
    with torch.device("meta"):
        meta = type(model)(model.config)
    assert next(meta.parameters()).is_meta and arch.embeddings_tied(meta)
    assert arch.count_parameters(meta) == arch.count_parameters(model)
    assert arch.layer_parameter_counts(meta) == arch.layer_parameter_counts(model)
    model.config.tie_word_embeddings = False
    with torch.device("meta"):
        untied = type(model)(model.config)
    assert not arch.embeddings_tied(untied)
    assert arch.count_parameters(untied) == arch.count_parameters(model) + model.get_input_embeddings().weight.numel()


def test_generic_fallback_finds_layers():
    model, _ = tiny_model("llama")
    model.config.model_type = "somethingnew"
    assert arch.family(model).layers == "model.layers"
    arch.remove_layers(model, [0])
    assert model.config.num_hidden_layers == 3
