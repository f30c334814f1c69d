"""Last-layer baseline healing: what trains, tied-embedding behaviours, parameter accounting, export."""

import copy

import pytest
import torch
from tiny import tiny_model
from transformers import AutoModelForCausalLM

import methods
from bench.data.training_text import TrainData, TrainDataSpec
from bench.models import arch
from bench.models.export import save_pruned
from bench.run.pipeline import prune
from bench.train import lm_loss
from methods.base import Budget

TEXT = "\n\n".join(f"Entry {i}: the mill by the river ground {i % 9} sacks of wheat each morning before the market "
                   f"opened in the square of {'PQRSTU'[i % 6]}ford." for i in range(100))
FAST = {"heal": "true", "heal_layers": 2, "train_samples": 8, "train_seq_len": 16, "train_batch": 4, "lr": 1e-3}

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "train.txt"
    path.write_text(TEXT)
    return str(path)


def _heal(fam, corpus, **params):
    model, tok = tiny_model(fam, n_layers=6)
    result = prune(model, methods.create("last", {**FAST, **params}), Budget(layers=2), None,
                   heal_data=TrainData(TrainDataSpec(source=corpus), tok))
    return model, result, tok


def _changed(a, b):
    return not torch.equal(a, b)


@pytest.mark.parametrize("fam", ["llama", "gpt2"])
def test_shared_head_keeps_the_tie(fam, corpus, tmp_path):
    model, result, tok = _heal(fam, corpus)
    pruned = result.model
    assert arch.embeddings_tied(model) and arch.embeddings_tied(pruned)
    layers, dense_layers = arch.decoder_layers(pruned), arch.decoder_layers(model)
    assert _changed(pruned.get_output_embeddings().weight, model.get_output_embeddings().weight)
    for i in range(4):  # layers 0-1 frozen, the last two trained
        same = all(torch.equal(p, q) for p, q in zip(layers[i].parameters(), dense_layers[i].parameters()))
        assert same == (i < 2)
    assert arch.count_parameters(model) - arch.count_parameters(pruned) == result.plan.params_removed
    cost = result.plan.cost["training"]
    assert cost["tied_head"] == "shared" and cost["steps"] == 4  # 2 epochs of 2 batches
    ids = TrainData(TrainDataSpec(source=corpus), tok).windows(8, 16, seed=0)
    unhealed = methods.create("last").apply(copy.deepcopy(model), result.plan)
    with torch.no_grad():
        assert lm_loss(pruned, ids) < lm_loss(unhealed, ids)
    _round_trip(pruned, tok, result.plan, tmp_path, tied=True)


def test_untie_freezes_the_input_embedding(corpus, tmp_path):
    model, result, tok = _heal("llama", corpus, tied_head="untie")
    pruned = result.model
    assert not arch.embeddings_tied(pruned) and pruned.config.tie_word_embeddings is False
    torch.testing.assert_close(pruned.get_input_embeddings().weight, model.get_input_embeddings().weight,
                               rtol=0, atol=0)
    assert _changed(pruned.get_output_embeddings().weight, model.get_output_embeddings().weight)
    # the untied head's parameters are counted: the plan's net removal is the true difference
    assert arch.count_parameters(model) - arch.count_parameters(pruned) == result.plan.params_removed
    assert any("untied" in n for n in result.plan.notes)
    reloaded = _round_trip(pruned, tok, result.plan, tmp_path, tied=False)
    assert not torch.equal(reloaded.get_input_embeddings().weight, reloaded.get_output_embeddings().weight)


def test_freeze_leaves_the_head(corpus):
    model, result, _ = _heal("qwen2", corpus, tied_head="freeze")
    pruned = result.model
    torch.testing.assert_close(pruned.get_output_embeddings().weight, model.get_output_embeddings().weight,
                               rtol=0, atol=0)
    assert _changed(arch.final_norm(pruned).weight, arch.final_norm(model).weight)


def test_untied_model_trains_its_head(corpus):
    model, result, _ = _heal("mistral", corpus)
    assert not arch.embeddings_tied(model)
    assert _changed(result.model.get_output_embeddings().weight, model.get_output_embeddings().weight)
    torch.testing.assert_close(result.model.get_input_embeddings().weight, model.get_input_embeddings().weight)
    assert result.plan.cost["training"]["tied_head"] == "untied model"


def test_no_heal_by_default():
    model, _ = tiny_model("llama", n_layers=6)
    result = prune(model, methods.create("last"), Budget(layers=2), None)
    assert result.heal_cost is None and "training" not in result.plan.cost
    assert result.plan.cost["pruning"]["wall_seconds"] >= 0


def _round_trip(model, tok, plan, tmp_path, tied):
    out = save_pruned(model, tok, plan, tmp_path / "out", base_model="tiny")
    reloaded = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    assert arch.embeddings_tied(reloaded) == tied
    ids = torch.randint(1, len(tok), (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids).logits, model(ids).logits)
    return reloaded


def test_trains_only_when_healing():
    assert not methods.create("last").trains
    assert methods.create("last", {"heal": "true"}).trains
    assert methods.create("streamline").trains and not methods.create("streamline", {"replacement": "none"}).trains


def test_reassessing_recipe_is_the_default():
    p = methods.create("last", {"heal": "true"}).params
    assert (p.lr, p.heal_epochs, p.schedule, p.min_lr) == (1e-5, 2, "linear", 0.0)


def test_two_epochs_pass_twice_over_the_same_windows(corpus):
    from methods.last import epochs

    _, result, _ = _heal("llama", corpus, heal_epochs=2)
    training = result.plan.cost["training"]
    assert training["epochs"] == 2 and training["steps"] == 4 and training["tokens"] == 2 * 8 * 16
    wins = torch.arange(10 * 3).view(10, 3)
    seen = [b for b in epochs(wins, 2, 4, seed=0, device="cpu")]
    first, second = torch.cat(seen[:3]), torch.cat(seen[3:])
    assert torch.equal(first, wins) and not torch.equal(second, wins)
    assert sorted(second[:, 0].tolist()) == sorted(wins[:, 0].tolist())  # the same windows, reshuffled
    assert "instruction data" in " ".join(result.plan.notes)
