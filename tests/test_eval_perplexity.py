"""Corpus perplexity in fixed windows, against a hand computation on a tiny model."""

from __future__ import annotations

import math

import pytest
import torch
from tiny import CORPUS, tiny_model

from bench.core.errors import ConfigError
from bench.data import windows
from bench.data.windows import make_windows, tokenizer_adds_bos
from bench.evaluate import windowed_perplexity
from bench.evaluate.windowed_perplexity import PerplexityResult, evaluate_perplexity, windows_nll

TEXT = "\n\n".join(CORPUS[:12])


@pytest.fixture
def toy_corpus(monkeypatch):
    monkeypatch.setattr(windowed_perplexity, "corpus_text", lambda name: (TEXT, 12))


def hand_perplexity(model, windows: torch.Tensor) -> float:
    with torch.no_grad():
        logp = torch.log_softmax(model(windows).logits.double(), dim=-1)
    nll = -logp[:, :-1].gather(-1, windows[:, 1:, None]).squeeze(-1)
    return math.exp(nll.mean().item())


@pytest.mark.parametrize("family", ["llama", "gemma2", "gpt2"])   # gemma2: final logit soft-capping
def test_matches_a_hand_computation(toy_corpus, family):
    model, tok = tiny_model(family)
    r = evaluate_perplexity(model, tok, "wikipedia", window=16, batch_size=2, max_windows=5, chunk_tokens=7,
                            identity={"model": f"tiny-{family}"})
    ids = torch.tensor(tok(TEXT, add_special_tokens=False)["input_ids"])
    expected = hand_perplexity(model, ids[: 5 * 16].view(5, 16))
    assert r.perplexity == pytest.approx(expected, rel=1e-5)
    assert (r.corpus, r.window, r.windows, r.tokens, r.documents) == ("Wikipedia-sample", 16, 5, 75, 12)
    assert r.windows_total == ids.numel() // 16 and r.corpus_tokens == ids.numel()
    assert r.nll == pytest.approx(math.log(expected), rel=1e-5)
    assert r.identity == {"model": f"tiny-{family}"}
    stored = r.to_dict()   # the record's entry: no provenance, identity or corpus token count
    assert not {"provenance", "identity", "corpus_tokens"} & set(stored) and isinstance(stored["document_range"], list)
    assert PerplexityResult.from_dict(stored).to_dict() == stored


def test_bos_windows(toy_corpus):
    model, tok = tiny_model("llama")
    r = evaluate_perplexity(model, tok, "C4-sample", window=16, max_windows=3, add_bos=True)
    ids = torch.tensor(tok(TEXT, add_special_tokens=False)["input_ids"])
    wins = torch.cat([torch.full((3, 1), tok.bos_token_id), ids[: 3 * 15].view(3, 15)], dim=1)
    assert r.perplexity == pytest.approx(hand_perplexity(model, wins), rel=1e-5)
    assert r.corpus == "C4-sample" and r.add_bos


def test_windows_and_caps():
    ids = torch.arange(100)
    assert make_windows(ids, 10).shape == (10, 10)
    assert make_windows(ids, 10, max_windows=3).tolist()[2][:2] == [20, 21]
    assert make_windows(ids, 10, max_tokens=45).shape == (4, 10)
    assert make_windows(ids, 30).shape == (3, 30)          # the incomplete tail is dropped
    assert make_windows(ids, 10, bos_id=-1, max_windows=2).tolist()[1][:3] == [-1, 9, 10]
    with pytest.raises(ConfigError):
        make_windows(ids, 200)
    with pytest.raises(ConfigError):
        make_windows(ids, 1)


def test_chunking_and_batching_do_not_change_the_sum():
    model, _ = tiny_model("llama")
    wins = torch.randint(0, 512, (5, 24), generator=torch.Generator().manual_seed(0))
    a = windows_nll(model, wins, batch_size=5, chunk_tokens=1000)
    b = windows_nll(model, wins, batch_size=2, chunk_tokens=3)
    assert a == pytest.approx(b, rel=1e-6)


def test_bos_follows_the_tokenizer_by_default(toy_corpus, monkeypatch):
    """add_bos=None: BOS first exactly when the tokenizer adds it itself (Gemma does; SmolLM2's GGUF does not)."""
    model, tok = tiny_model("llama")
    adds = tok("a", verbose=False)["input_ids"][:1] == [tok.bos_token_id]
    assert tokenizer_adds_bos(tok) == adds
    assert evaluate_perplexity(model, tok, "c4", window=16, max_windows=2).add_bos == adds
    monkeypatch.setattr(windows, "tokenizer_adds_bos", lambda t: True)  # the one BOS rule lives there
    auto = evaluate_perplexity(model, tok, "c4", window=16, max_windows=2)
    forced = evaluate_perplexity(model, tok, "c4", window=16, max_windows=2, add_bos=True)
    assert auto.add_bos and auto.perplexity == forced.perplexity
    assert not evaluate_perplexity(model, tok, "c4", window=16, max_windows=2, add_bos=False).add_bos
