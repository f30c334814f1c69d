"""Training text for healing and replacement modules, split away from the perplexity evaluation.

Sources are those of calibration (`bench.calib.corpus_documents`): the built-in Wikipedia and C4 samples,
or a local .txt/.jsonl file. The built-in samples are also the perplexity corpora, and the evaluator
(`bench.evaluate.perplexity`) joins a corpus's documents with blank lines, tokenizes the stream once and
scores windows *from its start*. So each built-in corpus is split by position:

- the head, the documents holding the first `eval_share` of the corpus's characters, is the evaluation
  split: `eval_max_tokens(tokenizer, corpus)` is the `max_tokens` that keeps the evaluator inside it;
- training windows come only from the documents after it, minus any document whose text also occurs in
  the head (the C4 sample repeats a few documents).

`TrainData` checks this when it is built, and `assert_disjoint` checks a concrete evaluation set-up (window,
caps, BOS) against it: the evaluator's own tokenization and windowing give the character offset where its
last window ends, and every training document must start after it. An evaluation that reads into the
training split is a ConfigError, never a silent overlap. A local file is split the same way against both
built-in corpora's heads only by exact-document deduplication (its own positions are not evaluated).

Training windows are drawn like calibration windows (seeded shuffle of the training documents, EOS-joined,
non-overlapping `seq_len` blocks) and are yielded batch by batch; only token ids are held.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import torch

from bench.calib import BUILTIN_SOURCES, corpus_documents
from bench.errors import ConfigError

log = logging.getLogger(__name__)

SEPARATOR = "\n\n"  # how bench.evaluate.perplexity joins a corpus's documents


@dataclass(frozen=True)
class TrainDataSpec:
    source: str = "c4"  # c4 | wikipedia | path to a .txt (blank-line separated) or .jsonl ("text")
    eval_share: float = 0.5  # head of each built-in corpus reserved for perplexity evaluation

    def __post_init__(self):
        if not 0.0 < self.eval_share < 1.0:
            raise ConfigError(f"eval_share {self.eval_share} is outside (0, 1)", "e.g. eval_share=0.5")

    def to_dict(self) -> dict:
        return asdict(self)


def _doc_starts(docs: tuple[str, ...]) -> list[int]:
    """Character offset of each document in SEPARATOR.join(docs)."""
    starts, pos = [], 0
    for d in docs:
        starts.append(pos)
        pos += len(d) + len(SEPARATOR)
    return starts


def head_documents(docs: tuple[str, ...], eval_share: float) -> int:
    """How many leading documents form the evaluation head: those starting before eval_share of the text."""
    total = len(SEPARATOR.join(docs))
    starts = _doc_starts(docs)
    return max(1, sum(1 for s in starts if s < eval_share * total))


def _fingerprint(text: str) -> str:
    return hashlib.sha1(text.strip().encode("utf-8")).hexdigest()


@functools.lru_cache(maxsize=4)
def _token_ends(tokenizer, corpus: str) -> torch.Tensor:
    """End character offset of each token of the evaluator's token stream over `corpus` (non-decreasing)."""
    text = SEPARATOR.join(corpus_documents(corpus))
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    return torch.tensor([end for _, end in enc["offset_mapping"]], dtype=torch.long)


def split_char(docs: tuple[str, ...], eval_share: float) -> int:
    """Character offset (in the joined text) where the training split of a built-in corpus starts."""
    n_head = head_documents(docs, eval_share)
    return _doc_starts(docs)[n_head] if n_head < len(docs) else len(SEPARATOR.join(docs))


def eval_max_tokens(tokenizer, corpus: str, eval_share: float = 0.5) -> int:
    """The largest `max_tokens` for `bench.evaluate.perplexity` that stays inside the evaluation head."""
    boundary = split_char(corpus_documents(corpus), eval_share)
    return int((_token_ends(tokenizer, corpus) <= boundary).sum())


def eval_end_char(tokenizer, corpus: str, window: int, max_windows: int | None = None,
                  max_tokens: int | None = None, add_bos: bool = False) -> int:
    """The character offset where the evaluator's last window ends, from its own windowing rule."""
    from bench.data.windows import make_windows

    ends = _token_ends(tokenizer, corpus)
    ids = torch.zeros(len(ends), dtype=torch.long)
    wins = make_windows(ids, window, max_windows=max_windows, max_tokens=max_tokens, bos_id=0 if add_bos else None)
    used = wins.shape[0] * (window - 1 if add_bos else window)  # corpus tokens the windows read
    return int(ends[used - 1])


class TrainData:
    """The training split of one source for one tokenizer; draws seeded windows from it."""

    def __init__(self, spec: TrainDataSpec, tokenizer):
        self.spec = spec
        self.tokenizer = tokenizer
        docs = corpus_documents(spec.source)
        reserved: set[str] = set()
        if spec.source in BUILTIN_SOURCES:
            n_head = head_documents(docs, spec.eval_share)
            self.first_doc, self.start_char = n_head, split_char(docs, spec.eval_share)
            reserved = {_fingerprint(d) for d in docs[:n_head]}
            candidates = list(range(n_head, len(docs)))
        else:  # a local file: all of it, minus documents that are in a built-in evaluation head
            self.first_doc, self.start_char = 0, 0
            for corpus in BUILTIN_SOURCES:
                heads = corpus_documents(corpus)
                reserved |= {_fingerprint(d) for d in heads[:head_documents(heads, spec.eval_share)]}
            candidates = list(range(len(docs)))
        self.doc_indices = [i for i in candidates if _fingerprint(docs[i]) not in reserved]
        self.dropped_duplicates = len(candidates) - len(self.doc_indices)
        if not self.doc_indices:
            raise ConfigError(f"training source {spec.source!r} has no documents outside the evaluation split",
                              "lower eval_share or give a local training file")
        self.documents = tuple(docs[i] for i in self.doc_indices)
        if spec.source in BUILTIN_SOURCES:
            starts = _doc_starts(docs)
            assert all(starts[i] >= self.start_char for i in self.doc_indices)
        log.info("training split of %s: %d documents (from #%d, %d duplicates of evaluation text dropped)",
                 spec.source, len(self.documents), self.first_doc, self.dropped_duplicates)

    def describe(self) -> dict:
        return {**self.spec.to_dict(), "documents": len(self.documents), "first_document": self.first_doc,
                "start_char": self.start_char, "dropped_duplicates": self.dropped_duplicates}

    def assert_disjoint(self, corpus: str, window: int, max_windows: int | None = None,
                        max_tokens: int | None = None, add_bos: bool = False) -> None:
        """Raise ConfigError when a perplexity evaluation with these settings would read training text."""
        if self.spec.source not in BUILTIN_SOURCES:
            return
        from bench.data import tasks

        if tasks.get_corpus(corpus).name != self.spec.source:
            return
        end = eval_end_char(self.tokenizer, self.spec.source, window, max_windows, max_tokens, add_bos)
        if end > self.start_char:
            limit = eval_max_tokens(self.tokenizer, self.spec.source, self.spec.eval_share)
            raise ConfigError(f"the {corpus} perplexity evaluation reads up to character {end}, into the training "
                              f"split (which starts at character {self.start_char})",
                              f"cap the evaluation at max_tokens={limit} or train on another source")

    def windows(self, n: int, seq_len: int, seed: int) -> torch.Tensor:
        """`n` non-overlapping windows of `seq_len` token ids from the seeded shuffle of the training split."""
        order = list(range(len(self.documents)))
        random.Random(seed).shuffle(order)
        eos = self.tokenizer.eos_token_id
        sep = [eos] if eos is not None else []
        need, stream = n * seq_len, []
        for i in order:
            stream.extend(self.tokenizer(self.documents[i], add_special_tokens=False, verbose=False)["input_ids"]
                          + sep)
            if len(stream) >= need:
                break
        if len(stream) < need:
            raise ConfigError(f"the training split of {self.spec.source!r} has {len(stream)} tokens, fewer than "
                              f"{n} x {seq_len}", "lower train_samples or train_seq_len, or give more text")
        return torch.tensor(stream[:need], dtype=torch.long).view(n, seq_len)

    def batches(self, n: int, seq_len: int, batch_size: int, seed: int, device) -> Iterator[torch.Tensor]:
        wins = self.windows(n, seq_len, seed)
        for start in range(0, n, batch_size):
            yield wins[start:start + batch_size].to(device)
