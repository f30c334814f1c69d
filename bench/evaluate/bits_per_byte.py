"""Bits per byte over whole held-out documents, and fidelity to the dense model on the same tokens.

Quality on held-out text is measured per document, not per fixed token window:

- **Documents, not windows.** The text is a list of whole documents (the evaluation split of a corpus,
  `bench.data.splits`), taken in order until `max_documents` / `max_bytes` is reached (whole documents
  only, so the budget is a document/byte budget, never a token cap that cuts a document).
- **Every token scored.** Each document is tokenized on its own (no special tokens) and preceded by one
  context token: BOS when the tokenizer adds BOS by itself (the convention perplexity and lm-eval follow,
  `perplexity.tokenizer_adds_bos`), else EOS, the document separator the model saw in pre-training (what
  lm-eval's rolling log-likelihood uses as its prefix token when there is no BOS). So the first real token
  is predicted too. `prefix="none"` adds nothing; then the first token of a document has no context, is
  not scored, and its bytes are left out of the byte count.
- **Long documents** are split into windows of at most `window` input tokens that overlap by exactly one
  token (window i predicts tokens i*(window-1)+1 .. (i+1)*(window-1)), as lm-eval's rolling windows with
  context length 1: no token is lost and none is scored twice. Each window is scored on its own.
- **Bits per byte** = sum of next-token NLL (nats) / (ln 2 x UTF-8 bytes of the scored text): independent
  of the tokenizer, so models with different vocabularies compare.

Fidelity to the dense model (`dense=` given): on the same scored tokens,
KL(dense || pruned) = sum_v p_dense(v) (log p_dense(v) - log p_pruned(v)), averaged over tokens (nats), and
top-1 agreement = the share of tokens where both models' most likely next token is the same.

Memory: windows run `batch_size` at a time; the output head, softmaxes and KL run on chunks of at most
`chunk_tokens` positions, so full-vocabulary logits exist only for one chunk of one batch (never for the
text). The dense side is either a second model run on the same batch, or a `DenseReference` that holds
the dense model's final hidden states (tokens x hidden size, in the model's dtype, far smaller than logits)
and its output head, computed once and reused for every pruned model scored against it.

Per-document sums are kept (`FidelityResult.per_document`, in memory only) so callers can bootstrap over
documents. `FidelityResult` is one corpus's entry of the record part `fidelity` (bench.metrics.fidelity
registers it, and adds the bootstrap intervals). Importing this module imports no torch.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from bench.core.errors import ConfigError
from bench.core.record import Part
from bench.evaluate.windowed_perplexity import _split_head

if TYPE_CHECKING:  # pragma: no cover
    import torch

log = logging.getLogger(__name__)

_LOGIT_BUDGET = 1 << 25   # fp32 logit values per chunk (x2 with a dense side): 32 M values = 128 MB
Prefix = Literal["auto", "bos", "eos", "none"]


@dataclass(frozen=True)
class EvalText:
    """Tokenized held-out documents cut into scoring windows (what every model is scored on)."""

    label: str
    windows: tuple[tuple[int, ...], ...]   # input token ids per window (prefix token included)
    window_doc: tuple[int, ...]            # document index of each window
    doc_bytes: tuple[int, ...]             # UTF-8 bytes of the scored text of each document
    doc_tokens: tuple[int, ...]            # scored (predicted) tokens of each document
    prefix: str                            # "bos" | "eos" | "none"
    window: int

    @property
    def tokens(self) -> int:
        return sum(self.doc_tokens)

    @property
    def bytes(self) -> int:
        return sum(self.doc_bytes)

    def describe(self) -> dict[str, Any]:
        return {"label": self.label, "documents": len(self.doc_bytes), "bytes": self.bytes, "tokens": self.tokens,
                "windows": len(self.windows), "window": self.window, "prefix": self.prefix}


@dataclass
class DocumentScore:
    """Sums over one document's scored tokens (nats); `kl`/`agree` are None without a dense side."""

    bytes: int
    tokens: int
    nll: float
    kl: float | None = None
    agree: int | None = None


@dataclass
class FidelityResult(Part):
    """Bits per byte of one text, and KL / top-1 agreement to dense on it: an entry of the record part
    `fidelity`. The intervals are bootstrap ones over documents (`bootstrap_ci`), empty until computed."""

    transient = ("per_document", "identity")

    corpus: str | None = None            # the text's label
    documents: int | None = None
    bytes: int | None = None
    tokens: int | None = None
    windows: int | None = None
    window: int | None = None
    prefix: str | None = None
    nll: float | None = None             # mean NLL per scored token (nats)
    bits_per_byte: float | None = None
    bits_per_byte_ci: list[float] = field(default_factory=list)
    kl_to_dense: float | None = None     # mean KL(dense || model) per token (nats); None without dense
    kl_to_dense_ci: list[float] = field(default_factory=list)
    top1_agreement: float | None = None  # share of tokens with the same argmax as dense
    wall_s: float | None = None
    per_document: list[DocumentScore] = field(default_factory=list)
    identity: dict[str, Any] = field(default_factory=dict)


def _prefix_id(tokenizer, prefix: Prefix) -> tuple[str, int | None]:
    from bench.data.windows import resolve_add_bos

    if prefix == "auto":
        if resolve_add_bos(tokenizer, None):
            return "bos", tokenizer.bos_token_id
        prefix = "eos" if tokenizer.eos_token_id is not None else "none"
    if prefix == "bos":
        if tokenizer.bos_token_id is None:
            raise ConfigError("prefix=bos was asked for but the tokenizer has no BOS token", "use prefix=auto")
        return "bos", tokenizer.bos_token_id
    if prefix == "eos":
        if tokenizer.eos_token_id is None:
            raise ConfigError("prefix=eos was asked for but the tokenizer has no EOS token", "use prefix=auto")
        return "eos", tokenizer.eos_token_id
    if prefix == "none":
        return "none", None
    raise ConfigError(f"unknown prefix {prefix!r}", "use auto, bos, eos or none")


def prepare_text(tokenizer, documents: Sequence[str], *, label: str = "text", window: int = 1024,
                 prefix: Prefix = "auto", max_documents: int | None = None,
                 max_bytes: int | None = None) -> EvalText:
    """Tokenize whole documents (in order, up to the budgets) and cut them into one-token-overlap windows.

    `max_bytes` stops before the first document that would exceed it (at least one document is kept).
    """
    if window < 2:
        raise ConfigError(f"window {window} is too short", "use a window of at least 2 tokens")
    kind, prefix_id = _prefix_id(tokenizer, prefix)
    windows: list[tuple[int, ...]] = []
    window_doc: list[int] = []
    doc_bytes: list[int] = []
    doc_tokens: list[int] = []
    used_bytes = 0
    for text in documents:
        if max_documents is not None and len(doc_bytes) >= max_documents:
            break
        n_bytes = len(text.encode("utf-8"))
        if max_bytes is not None and doc_bytes and used_bytes + n_bytes > max_bytes:
            break
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=prefix_id is None, verbose=False)
        ids = list(enc["input_ids"])
        if prefix_id is not None:
            ids = [prefix_id, *ids]
        elif ids:  # the first token has no context: its text is not scored
            n_bytes = len(text[enc["offset_mapping"][0][1]:].encode("utf-8"))
        if len(ids) < 2:
            continue
        doc = len(doc_bytes)
        for lo in range(0, len(ids) - 1, window - 1):
            windows.append(tuple(ids[lo:lo + window]))
            window_doc.append(doc)
        doc_bytes.append(n_bytes)
        doc_tokens.append(len(ids) - 1)
        used_bytes += n_bytes
    if not doc_bytes:
        raise ConfigError(f"no scorable document in {label!r}", "give non-empty documents")
    return EvalText(label, tuple(windows), tuple(window_doc), tuple(doc_bytes), tuple(doc_tokens), kind, window)


def corpus_documents(corpus: str, max_document_bytes: int | None = None) -> tuple[list[str], str]:
    """(documents, label) of a fidelity corpus: c4's or wikipedia's documents in order from the start of the
    corpus (the text perplexity scores, and the head of the evaluation range bench.data.splits reserves;
    calibration and training come later), or a local .txt file's blank-line-separated documents; with
    `max_document_bytes`, only the documents that short, in the same order."""
    from pathlib import Path

    from bench.core.textfile import is_text_file, read_text
    from bench.data import loaders

    path = Path(corpus).expanduser()
    if is_text_file(path):  # a file, or a pipe read before (its text is kept)
        text = read_text(path, "fidelity corpus", "eval.fidelity.corpora")
        docs, label = [d for d in text.split("\n\n") if d.strip()], path.name
    elif corpus in ("c4", "wikipedia"):
        docs, label = (loaders.c4_documents() if corpus == "c4" else loaders.wikipedia_documents()), corpus
    else:
        raise ConfigError(f"fidelity corpus {corpus!r} is neither c4, wikipedia nor a .txt file",
                          "e.g. fidelity: {corpora: [c4]}")
    if max_document_bytes is not None:
        docs = [d for d in docs if len(d.encode("utf-8")) <= max_document_bytes]
    return docs, label


def _batches(text: EvalText, batch_size: int):
    """Windows grouped by length (less padding), right-padded: (window indices, ids, mask)."""
    import torch

    order = sorted(range(len(text.windows)), key=lambda i: -len(text.windows[i]))
    for lo in range(0, len(order), batch_size):
        idx = order[lo:lo + batch_size]
        width = len(text.windows[idx[0]])
        ids = torch.zeros(len(idx), width, dtype=torch.long)
        mask = torch.zeros(len(idx), width, dtype=torch.long)
        for row, i in enumerate(idx):
            w = text.windows[i]
            ids[row, :len(w)] = torch.tensor(w)
            mask[row, :len(w)] = 1
        yield idx, ids, mask


class _Scorer:
    """Final hidden states and the head of one model, so logits are made chunk by chunk."""

    def __init__(self, model):
        self.model = model
        self.split = _split_head(model)
        cap = getattr(model.config, "final_logit_softcapping", None)
        self.softcap = float(cap) if cap else None
        self.device = next(model.parameters()).device

    def hidden(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        ids, mask = ids.to(self.device), mask.to(self.device)
        if self.split is None:
            return self.model(input_ids=ids, attention_mask=mask, use_cache=False).logits
        out = self.split[0](input_ids=ids, attention_mask=mask, use_cache=False)
        return out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        import torch

        x = (self.split[1](hidden) if self.split is not None else hidden).float()
        if self.softcap is not None:
            x = torch.tanh(x / self.softcap) * self.softcap
        return x


class DenseReference:
    """The dense model's final hidden states on one `EvalText`, computed once (logits re-made per chunk).

    Holds tokens x hidden-size values (the model's dtype) and a private copy of the dense model's output
    head (so healing that trains a shared head cannot change the reference); reuse it to score any number
    of pruned models against the dense one without running the dense model again.
    """

    def __init__(self, dense, text: EvalText, *, batch_size: int = 8):
        import copy

        import torch

        self.text = text
        self.scorer = _Scorer(dense)
        if self.scorer.split is None:
            raise ConfigError("this model's logits are not head(final hidden states); a reference would need "
                              "full logits", "pass the dense model itself as `dense`")
        self.states: dict[int, torch.Tensor] = {}
        with torch.inference_mode():
            for idx, ids, mask in _batches(text, batch_size):
                hidden = self.scorer.hidden(ids, mask)
                for row, i in enumerate(idx):
                    self.states[i] = hidden[row, :len(text.windows[i]) - 1].detach().clone()
        self.scorer.split = (None, copy.deepcopy(self.scorer.split[1]))
        self.scorer.model = None


def dense_reference(model, text: EvalText, batch_size: int) -> DenseReference | None:
    """The dense model's hidden states on `text`, or None where its logits are not head(hidden states)
    (then the dense model itself is run beside each pruned one)."""
    try:
        return DenseReference(model, text, batch_size=batch_size)
    except ConfigError:
        return None


def _chunk_scores(logits: torch.Tensor, targets: torch.Tensor, dense_logits: torch.Tensor | None):
    """Per position: NLL, and with dense logits KL(dense || model) and argmax agreement."""
    import torch.nn.functional as F

    logp = F.log_softmax(logits, dim=-1)
    nll = -logp.gather(1, targets[:, None])[:, 0]
    if dense_logits is None:
        return nll, None, None
    logq = F.log_softmax(dense_logits, dim=-1)
    kl = (logq.exp() * (logq - logp)).sum(-1)
    agree = logits.argmax(-1) == dense_logits.argmax(-1)
    return nll, kl, agree


def evaluate_fidelity(model, text: EvalText, *, dense=None, batch_size: int = 8, chunk_tokens: int | None = None,
                      identity: Mapping[str, Any] | None = None) -> FidelityResult:
    """Bits per byte of `model` on `text`; with `dense` (a model or a `DenseReference` on the same text),
    also KL(dense || model) and top-1 agreement on the same tokens."""
    import torch

    with torch.inference_mode():
        return _evaluate_fidelity(model, text, dense, batch_size, chunk_tokens, identity)


def _evaluate_fidelity(model, text: EvalText, dense, batch_size: int, chunk_tokens: int | None,
                       identity: Mapping[str, Any] | None) -> FidelityResult:
    start = time.perf_counter()
    scorer = _Scorer(model)
    reference = dense if isinstance(dense, DenseReference) else None
    if reference is not None and reference.text != text:
        raise ConfigError("the dense reference was computed on other text", "build it on the same EvalText")
    dense_scorer = reference.scorer if reference is not None else (_Scorer(dense) if dense is not None else None)
    n_docs = len(text.doc_bytes)
    nll = [0.0] * n_docs
    kl = [0.0] * n_docs
    agree = [0] * n_docs
    chunk = chunk_tokens
    for idx, ids, mask in _batches(text, batch_size):
        hidden = scorer.hidden(ids, mask)
        dense_hidden = dense_scorer.hidden(ids, mask) if dense is not None and reference is None else None
        for row, i in enumerate(idx):
            n = len(text.windows[i]) - 1
            h = hidden[row, :n]
            targets = ids[row, 1:n + 1].to(h.device)
            q = reference.states[i] if reference is not None else (
                dense_hidden[row, :n] if dense_hidden is not None else None)
            if chunk is None:
                chunk = max(1, _LOGIT_BUDGET // scorer.logits(h[:1]).shape[-1])
            doc = text.window_doc[i]
            for lo in range(0, n, chunk):
                logits = scorer.logits(h[lo:lo + chunk])
                dense_logits = dense_scorer.logits(q[lo:lo + chunk].to(h.device)) if q is not None else None
                c_nll, c_kl, c_agree = _chunk_scores(logits, targets[lo:lo + chunk], dense_logits)
                nll[doc] += float(c_nll.double().sum())
                if c_kl is not None:
                    kl[doc] += float(c_kl.double().sum())
                    agree[doc] += int(c_agree.sum())
    has_dense = dense is not None
    per_doc = [DocumentScore(text.doc_bytes[d], text.doc_tokens[d], nll[d], kl[d] if has_dense else None,
                             agree[d] if has_dense else None) for d in range(n_docs)]
    tokens, n_bytes, total = text.tokens, text.bytes, sum(nll)
    result = FidelityResult(
        corpus=text.label, documents=n_docs, bytes=n_bytes, tokens=tokens, windows=len(text.windows),
        window=text.window, prefix=text.prefix, nll=total / tokens, bits_per_byte=total / (math.log(2) * n_bytes),
        kl_to_dense=sum(kl) / tokens if has_dense else None, top1_agreement=sum(agree) / tokens if has_dense else None,
        wall_s=time.perf_counter() - start, per_document=per_doc, identity=dict(identity or {}))
    log.info("%s: %.4f bits/byte over %d documents (%d tokens, %d bytes)%s in %.1f s", text.label,
             result.bits_per_byte, n_docs, tokens, n_bytes,
             f", KL to dense {result.kl_to_dense:.4f} nats/token, top-1 agreement {result.top1_agreement:.3f}"
             if result.kl_to_dense is not None else "", result.wall_s)
    return result


def bits_per_byte(model, tokenizer, documents: Sequence[str], *, label: str = "text", window: int = 1024,
                  prefix: Prefix = "auto", max_documents: int | None = None, max_bytes: int | None = None,
                  dense=None, batch_size: int = 8, chunk_tokens: int | None = None) -> FidelityResult:
    """One call: `prepare_text` then `evaluate_fidelity` (dense: None or a model)."""
    text = prepare_text(tokenizer, documents, label=label, window=window, prefix=prefix,
                        max_documents=max_documents, max_bytes=max_bytes)
    return evaluate_fidelity(model, text, dense=dense, batch_size=batch_size, chunk_tokens=chunk_tokens)


def bootstrap_ci(scores: Sequence[DocumentScore], *, metric: Literal["bits_per_byte", "kl"] = "bits_per_byte",
                 n: int = 2000, seed: int = 0, level: float = 0.95,
                 baseline: Sequence[DocumentScore] | None = None) -> tuple[float, float]:
    """Percentile bootstrap CI over documents of a ratio metric (resampling whole documents); with
    `baseline` (scores of another model on the same documents), the CI of the paired difference."""
    import torch

    gen = torch.Generator().manual_seed(seed)

    def columns(s):
        if metric == "bits_per_byte":
            return (torch.tensor([d.nll for d in s], dtype=torch.float64),
                    torch.tensor([d.bytes for d in s], dtype=torch.float64) * math.log(2))
        return (torch.tensor([d.kl for d in s], dtype=torch.float64),
                torch.tensor([d.tokens for d in s], dtype=torch.float64))

    num, den = columns(scores)
    if baseline is not None:
        if len(baseline) != len(scores):
            raise ConfigError("paired bootstrap needs scores on the same documents", "score the same EvalText")
        b_num, b_den = columns(baseline)
    idx = torch.randint(0, len(scores), (n, len(scores)), generator=gen)
    stat = num[idx].sum(1) / den[idx].sum(1)
    if baseline is not None:
        stat = stat - b_num[idx].sum(1) / b_den[idx].sum(1)
    alpha = (1 - level) / 2
    lo, hi = torch.quantile(stat, torch.tensor([alpha, 1 - alpha], dtype=torch.float64)).tolist()
    return lo, hi
