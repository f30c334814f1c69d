"""Token-level perplexity over a real corpus in fixed, non-overlapping windows.

The corpus's evaluation documents (its leading range, `bench.data.splits`) are joined with blank lines and tokenized once (no special tokens); the token
stream is cut into windows of `window` tokens (the incomplete tail is dropped), optionally capped by
`max_windows` / `max_tokens` (the first windows, so every run scores the same text). Each window is
scored on its own: window - 1 predicted tokens, no context carried over. Perplexity is
exp(total NLL / predicted tokens). With BOS, each window is BOS + window - 1 corpus tokens; by default
(`add_bos=None`) a window starts with BOS exactly when the model's tokenizer adds one by itself, the
convention the model was trained with (Gemma-3-270M scores C4-sample 197 without it, far from its real
quality; SmolLM2's tokenizer adds none).

Memory stays bounded: the decoder runs on `batch_size` windows, and the output head and cross-entropy
run on chunks of positions (`chunk_tokens` at most), so full-vocabulary logits in fp32 never exist for
the whole batch. Reports must use the corpus label ("Wikipedia-sample", "C4-sample"), the window and the
token count, never "WikiText-2" or "PTB".

The result, `PerplexityResult`, is one corpus's entry of the record part `perplexity` (bench.metrics.perplexity
registers it); `corpus_perplexity` scores a built-in corpus or a local .txt file as the evaluator asks.
Importing this module imports no torch: `bench report` reads the record type without it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.core.record import Part
from bench.data import tasks as registry

if TYPE_CHECKING:  # pragma: no cover
    import torch

log = logging.getLogger(__name__)

_LOGIT_BUDGET = 1 << 26   # fp32 logits per chunk: 64 M values = 256 MB


@dataclass
class PerplexityResult(Part):
    """One corpus's perplexity: an entry of the record part `perplexity`."""

    optional = ("documents", "document_range")  # absent from records written before document splits
    transient = ("corpus_tokens", "provenance", "identity")

    corpus: str | None = None    # the label: "Wikipedia-sample" / "C4-sample" (a file: its name)
    window: int | None = None
    tokens: int | None = None    # predicted tokens scored (windows * (window - 1))
    windows: int | None = None   # windows used
    windows_total: int | None = None  # full windows in the corpus
    perplexity: float | None = None
    nll: float | None = None     # mean negative log-likelihood per predicted token (nats)
    source: str | None = None
    add_bos: bool | None = None
    batch_size: int | None = None
    wall_s: float | None = None
    documents: int | None = None
    document_range: list[int] | None = None  # [start, stop) of a built-in corpus's evaluation range
    corpus_tokens: int | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    identity: dict[str, Any] = field(default_factory=dict)


def corpus_text(corpus: str) -> tuple[str, int]:
    """The corpus's evaluation documents (`bench.data.splits`: its leading range of whole documents,
    disjoint from calibration and training text) joined with blank lines, and their count."""
    from bench.data import splits

    docs = splits.documents(registry.get_corpus(corpus).name, "evaluation")
    return "\n\n".join(docs), len(docs)


def corpus_token_ids(tokenizer, corpus: str) -> torch.Tensor:
    """The whole corpus as one 1-D tensor of token ids (no special tokens)."""
    import torch

    text, _ = corpus_text(corpus)
    ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
    return torch.tensor(ids, dtype=torch.long)


def _softcap(model) -> float | None:
    cap = getattr(model.config, "final_logit_softcapping", None)
    return float(cap) if cap else None


def _split_head(model):
    """(decoder body, output head) when the model's logits are exactly head(body(x).last_hidden_state)
    (+ Gemma's final soft-capping); None when unsure, and the full model is called instead."""
    body = getattr(model, getattr(model, "base_model_prefix", ""), None)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if body is None or head is None or body is model:
        return None
    if any(getattr(model.config, k, None) not in (None, 1, 1.0) for k in ("logit_scale", "logits_scaling")):
        return None
    return body, head


def _nll_chunked(hidden: torch.Tensor, targets: torch.Tensor, head, softcap: float | None,
                 chunk: int) -> float:
    """Sum of -log p(target) over positions, the head applied `chunk` positions at a time (fp32 loss)."""
    import torch
    import torch.nn.functional as F

    hidden = hidden.reshape(-1, hidden.shape[-1])
    targets = targets.reshape(-1)
    total = 0.0
    for start in range(0, hidden.shape[0], chunk):
        logits = head(hidden[start:start + chunk]).float()
        if softcap is not None:
            logits = torch.tanh(logits / softcap) * softcap
        total += F.cross_entropy(logits, targets[start:start + chunk], reduction="sum").item()
    return total


def windows_nll(model, windows: torch.Tensor, *, batch_size: int = 8, chunk_tokens: int | None = None) -> float:
    """Total NLL (nats) of windows[:, 1:] given their prefixes, batch by batch."""
    import torch

    with torch.inference_mode():
        return _windows_nll(model, windows, batch_size, chunk_tokens)


def _windows_nll(model, windows: torch.Tensor, batch_size: int, chunk_tokens: int | None) -> float:
    device = next(model.parameters()).device
    split = _split_head(model)
    vocab = split[1].weight.shape[0] if split is not None else model.get_input_embeddings().weight.shape[0]
    chunk = chunk_tokens or max(1, _LOGIT_BUDGET // vocab)
    softcap = _softcap(model)
    total = 0.0
    n_batches = -(-windows.shape[0] // batch_size)
    every, began = max(1, n_batches // 10), time.perf_counter()
    for i, start in enumerate(range(0, windows.shape[0], batch_size)):
        if i and i % every == 0:
            log.info("perplexity: %d/%d batches, %.0f tokens/s", i, n_batches,
                     start * windows.shape[1] / (time.perf_counter() - began))
        batch = windows[start:start + batch_size].to(device)
        targets = batch[:, 1:]
        if split is not None:
            body, head = split
            out = body(input_ids=batch, use_cache=False)
            hidden = (out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0])[:, :-1]
            total += _nll_chunked(hidden, targets, head, softcap, chunk)
        else:
            logits = model(input_ids=batch, use_cache=False).logits[:, :-1]
            total += _nll_chunked(logits, targets, lambda x: x, None, chunk)
    return total


def evaluate_perplexity(model, tokenizer, corpus: str = "wikipedia", *, window: int = 512, batch_size: int = 8,
                        max_windows: int | None = None, max_tokens: int | None = None, add_bos: bool | None = None,
                        chunk_tokens: int | None = None,
                        identity: Mapping[str, Any] | None = None) -> PerplexityResult:
    """Token-level perplexity of `model` on a perplexity corpus (`wikipedia` / `c4`, or their labels)."""
    info = registry.get_corpus(corpus)
    start = time.perf_counter()
    text, documents = corpus_text(info.name)
    from bench.data import splits

    result = text_perplexity(model, tokenizer, text, label=info.label, source=info.source, documents=documents,
                           window=window, batch_size=batch_size, max_windows=max_windows, max_tokens=max_tokens,
                           add_bos=add_bos, chunk_tokens=chunk_tokens, identity=identity, started=start)
    result.document_range = list(splits.split(info.name).evaluation)
    return result


def text_perplexity(model, tokenizer, text: str, *, label: str, source: str, documents: int, window: int = 512,
                    batch_size: int = 8, max_windows: int | None = None, max_tokens: int | None = None,
                    add_bos: bool | None = None, chunk_tokens: int | None = None,
                    identity: Mapping[str, Any] | None = None, started: float | None = None) -> PerplexityResult:
    """Token-level perplexity of `model` on any text (a built-in corpus, a user's file), windowed as above."""
    import torch

    from bench.data.windows import make_windows, resolve_add_bos
    from bench.evaluate.environment import environment

    start = time.perf_counter() if started is None else started
    ids = torch.tensor(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"], dtype=torch.long)
    add_bos = resolve_add_bos(tokenizer, add_bos)
    bos = tokenizer.bos_token_id if add_bos else None
    wins = make_windows(ids, window, max_windows=max_windows, max_tokens=max_tokens, bos_id=bos)
    total_windows = ids.numel() // (window - 1 if add_bos else window)
    nll = windows_nll(model, wins, batch_size=batch_size, chunk_tokens=chunk_tokens)
    tokens = wins.shape[0] * (window - 1)
    wall = time.perf_counter() - start
    result = PerplexityResult(
        corpus=label, window=window, tokens=tokens, windows=wins.shape[0], windows_total=total_windows,
        corpus_tokens=ids.numel(), documents=documents, nll=nll / tokens, perplexity=math.exp(nll / tokens),
        batch_size=batch_size, add_bos=add_bos, wall_s=wall, source=source, provenance=environment(model),
        identity=dict(identity or {}))
    log.info("%s perplexity %.3f over %d tokens (%d windows of %d) in %.1f s", label, result.perplexity,
             tokens, result.windows, window, wall)
    return result


def corpus_perplexity(model, tokenizer, corpus: str, spec) -> PerplexityResult:
    """Perplexity on a built-in corpus or a local .txt file (`spec`: bench.run.config.PerplexitySpec)."""
    from bench.core.textfile import is_text_file, read_text

    windows = {"window": spec.window, "batch_size": spec.batch_size, "max_windows": spec.max_windows,
               "add_bos": spec.add_bos}
    path = Path(corpus).expanduser()
    if is_text_file(path):  # a file, or a pipe the early checks read (its text is kept)
        return text_perplexity(model, tokenizer, read_text(path, "perplexity corpus", "--ppl"), label=path.name,
                               source=f"file:{path.resolve()}", documents=1, **windows)
    return evaluate_perplexity(model, tokenizer, corpus, **windows)
