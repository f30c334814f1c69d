"""Bits per byte over whole documents and KL / top-1 agreement to dense, against hand computations."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from tiny import CORPUS, tiny_model

from bench.core.errors import ConfigError
from bench.evaluate.bits_per_byte import (
    DenseReference,
    FidelityResult,
    bits_per_byte,
    bootstrap_ci,
    evaluate_fidelity,
    prepare_text,
)

DOCS = [" ".join(CORPUS[i:i + 3]) for i in range(0, 15, 3)]  # 5 documents, 50-70 tokens each


def hand_scores(model, tok, docs, prefix_id, window, dense=None):
    """Each window (one-token overlap) in its own unpadded forward: NLL sum, KL sum, agreements, bytes, tokens."""
    nll = kl = 0.0
    agree = tokens = n_bytes = 0
    with torch.no_grad():
        for text in docs:
            n_bytes += len(text.encode("utf-8"))
            doc = [prefix_id, *tok(text, add_special_tokens=False)["input_ids"]]
            for lo in range(0, len(doc) - 1, window - 1):
                ids = torch.tensor([doc[lo:lo + window]])
                logp = torch.log_softmax(model(ids).logits.double()[0, :-1], -1)
                nll -= logp.gather(1, ids[0, 1:, None]).sum().item()
                tokens += ids.shape[1] - 1
                if dense is not None:
                    logq = torch.log_softmax(dense(ids).logits.double()[0, :-1], -1)
                    kl += (logq.exp() * (logq - logp)).sum().item()
                    agree += int((logp.argmax(-1) == logq.argmax(-1)).sum())
    return nll, kl, agree, n_bytes, tokens


def perturbed(model):
    other = copy.deepcopy(model)
    with torch.no_grad():
        torch.manual_seed(1)
        for p in other.model.layers[1].parameters():
            p.add_(0.05 * torch.randn_like(p))
    return other


@pytest.mark.parametrize("family", ["llama", "gemma2"])   # gemma2: final logit soft-capping
def test_bits_per_byte_and_kl_match_a_hand_computation(family):
    dense, tok = tiny_model(family)
    pruned = perturbed(dense)
    # window 16 splits every document into several one-token-overlap windows; chunk 5 splits the head
    text = prepare_text(tok, DOCS, label="toy", window=16, prefix="eos")
    assert len(text.windows) > len(DOCS) and text.prefix == "eos"
    r = evaluate_fidelity(pruned, text, dense=dense, batch_size=3, chunk_tokens=5)
    nll, kl, agree, n_bytes, tokens = hand_scores(pruned, tok, DOCS, tok.eos_token_id, 16, dense)
    assert (r.documents, r.tokens, r.bytes) == (5, tokens, n_bytes)
    assert r.bits_per_byte == pytest.approx(nll / (math.log(2) * n_bytes), rel=1e-5)
    assert r.nll == pytest.approx(nll / tokens, rel=1e-5)
    assert r.kl_to_dense == pytest.approx(kl / tokens, rel=1e-4) and r.kl_to_dense > 0
    assert r.top1_agreement == pytest.approx(agree / tokens)
    assert sum(d.tokens for d in r.per_document) == tokens
    # a reference computed once gives the same numbers as running the dense model alongside
    ref = DenseReference(dense, text, batch_size=2)
    r2 = evaluate_fidelity(pruned, text, dense=ref, batch_size=4)
    assert r2.kl_to_dense == pytest.approx(r.kl_to_dense, rel=1e-5) and r2.top1_agreement == r.top1_agreement
    assert r2.bits_per_byte == pytest.approx(r.bits_per_byte, rel=1e-6)


def test_the_dense_model_against_itself_has_zero_kl_and_full_agreement():
    dense, tok = tiny_model("llama")
    r = bits_per_byte(dense, tok, DOCS, window=32, dense=dense)
    assert r.kl_to_dense == pytest.approx(0.0, abs=1e-6) and r.top1_agreement == 1.0
    assert bits_per_byte(dense, tok, DOCS, window=32).kl_to_dense is None


def test_windows_lose_no_token_and_score_none_twice():
    _, tok = tiny_model("llama")
    for window in (2, 3, 16, 1000):
        text = prepare_text(tok, DOCS, window=window, prefix="bos")
        for d in range(len(DOCS)):
            wins = [w for w, doc in zip(text.windows, text.window_doc, strict=True) if doc == d]
            assert all(len(w) <= window for w in wins)
            ids = [tok.bos_token_id, *tok(DOCS[d], add_special_tokens=False)["input_ids"]]
            assert [t for w in wins for t in w[1:]] == ids[1:]  # every target exactly once, in order
            assert all(a[-1] == b[0] for a, b in zip(wins, wins[1:], strict=False))  # one-token overlap


def test_prefix_none_leaves_the_first_token_and_its_bytes_out():
    _, tok = tiny_model("llama")
    text = prepare_text(tok, DOCS[:1], prefix="none")
    ids = tok(DOCS[0], add_special_tokens=False, return_offsets_mapping=True)
    assert text.tokens == len(ids["input_ids"]) - 1
    assert text.bytes == len(DOCS[0][ids["offset_mapping"][0][1]:].encode("utf-8"))


def test_auto_prefix_follows_the_tokenizer_convention():
    _, tok = tiny_model("llama")  # the tiny tokenizer adds no BOS by itself: EOS separates documents
    assert prepare_text(tok, DOCS[:1]).prefix == "eos"


def test_budgets_take_whole_documents_in_order():
    _, tok = tiny_model("llama")
    sizes = [len(d.encode("utf-8")) for d in DOCS]
    assert prepare_text(tok, DOCS, max_documents=2).bytes == sum(sizes[:2])
    assert prepare_text(tok, DOCS, max_bytes=sizes[0] + sizes[1] + 1).bytes == sum(sizes[:2])
    assert len(prepare_text(tok, DOCS, max_bytes=1).doc_bytes) == 1  # at least one document
    with pytest.raises(ConfigError):
        prepare_text(tok, DOCS, window=1)


def test_result_round_trips_and_bootstrap_brackets_the_estimate():
    dense, tok = tiny_model("llama")
    pruned = perturbed(dense)
    text = prepare_text(tok, DOCS, window=24)
    r = evaluate_fidelity(pruned, text, dense=dense)
    stored = r.to_dict()   # the record's entry: the per-document sums stay in memory
    assert "per_document" not in stored and stored["corpus"] == text.label
    assert FidelityResult.from_dict(stored).to_dict() == stored
    lo, hi = bootstrap_ci(r.per_document, n=500)
    assert lo <= r.bits_per_byte <= hi and lo < hi
    base = evaluate_fidelity(dense, text)
    lo_d, hi_d = bootstrap_ci(r.per_document, baseline=base.per_document, n=500)
    assert lo_d <= r.bits_per_byte - base.bits_per_byte <= hi_d
    klo, khi = bootstrap_ci(r.per_document, metric="kl", n=500)
    assert klo <= r.kl_to_dense <= khi
