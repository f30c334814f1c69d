"""Document-level evaluation / calibration / training splits of the built-in text corpora, and the one
windowing rule calibration and training share.

Each built-in corpus (the Wikipedia and C4 samples) is cut, by construction, into three contiguous ranges
of whole documents, in corpus order:

    evaluation   [0, a)   the documents starting before EVAL_SHARE of the corpus's characters (the head
                          `bench.evaluate.windowed_perplexity` scores, from its start, and the held-out
                          documents of `bench.evaluate.bits_per_byte`)
    calibration  [a, b)   the documents starting before EVAL_SHARE + CALIB_SHARE of the characters
    training     [b, n)   the rest (healing, replacement modules), minus any document whose text also
                          occurs in an earlier range (the C4 sample repeats a few)

so no text is both calibrated or trained on and evaluated. `describe(corpus)` is the provenance a record
stores. A local file (calibration or training) is not split; training drops its documents that also occur
in a built-in evaluation range (`bench.data.training_text`).

Windows (`token_windows`): a seeded shuffle of the documents, each tokenized without special tokens and
followed by EOS (the separator of pre-training), the stream cut into non-overlapping windows. With BOS
(`add_bos`, by default exactly when the model's tokenizer adds BOS by itself, as the evaluators do:
`bench.evaluate.windowed_perplexity.resolve_add_bos`), each window is BOS + seq_len - 1 stream tokens, so
calibration statistics and training see inputs shaped like those the model is evaluated on.
"""

from __future__ import annotations

import functools
import hashlib
import random
from dataclasses import dataclass

import torch

from bench.core.errors import ConfigError
from bench.data.tasks import CORPORA

SEPARATOR = "\n\n"  # how bench.evaluate.windowed_perplexity joins a corpus's documents
EVAL_SHARE = 0.5
CALIB_SHARE = 0.15
BUILTIN = tuple(CORPORA)  # the corpora bench/data/tasks.yaml declares
ROLES = ("evaluation", "calibration", "training")


@dataclass(frozen=True)
class Split:
    corpus: str
    evaluation: tuple[int, int]   # [start, stop) document indices
    calibration: tuple[int, int]
    training: tuple[int, int]
    documents: int

    def range(self, role: str) -> tuple[int, int]:
        if role not in ROLES:
            raise ConfigError(f"unknown split {role!r}", f"use one of {', '.join(ROLES)}")
        return getattr(self, role)

    def to_dict(self) -> dict:
        return {"corpus": self.corpus, "documents": self.documents, "unit": "document index, [start, stop)",
                "shares_of_characters": {"evaluation": EVAL_SHARE, "calibration": CALIB_SHARE},
                **{role: list(self.range(role)) for role in ROLES}}


def _builtin_documents(corpus: str) -> tuple[str, ...]:
    from bench.data import loaders

    if corpus not in BUILTIN:
        raise ConfigError(f"{corpus!r} is not a built-in corpus", f"use one of {', '.join(BUILTIN)}")
    return getattr(loaders, CORPORA[corpus].loader)()


def _boundary(docs: tuple[str, ...], share: float) -> int:
    """How many leading documents start before `share` of the joined text's characters (at least one)."""
    total = len(SEPARATOR.join(docs))
    pos, count = 0, 0
    for d in docs:
        if pos >= share * total:
            break
        count += 1
        pos += len(d) + len(SEPARATOR)
    return max(1, count)


@functools.cache
def split(corpus: str) -> Split:
    """The evaluation / calibration / training document ranges of a built-in corpus."""
    docs = _builtin_documents(corpus)
    a = _boundary(docs, EVAL_SHARE)
    b = max(a + 1, _boundary(docs, EVAL_SHARE + CALIB_SHARE))
    if b >= len(docs):
        raise ConfigError(f"the {corpus} sample is too small to split", "use a larger corpus")
    return Split(corpus, (0, a), (a, b), (b, len(docs)), len(docs))


def _fingerprint(text: str) -> str:
    return hashlib.sha1(text.strip().encode("utf-8")).hexdigest()


@functools.cache
def documents(corpus: str, role: str) -> tuple[str, ...]:
    """The documents of one range; calibration and training drop documents repeated from earlier ranges."""
    docs = _builtin_documents(corpus)
    s = split(corpus)
    lo, hi = s.range(role)
    earlier = {_fingerprint(d) for d in docs[:lo]}
    return tuple(d for d in docs[lo:hi] if _fingerprint(d) not in earlier)


def evaluation_fingerprints() -> frozenset[str]:
    """Fingerprints of every built-in evaluation document (what local training files must not contain)."""
    return frozenset(_fingerprint(d) for c in BUILTIN for d in documents(c, "evaluation"))


def token_windows(docs: tuple[str, ...], tokenizer, n: int, seq_len: int, seed: int, *,
                  add_bos: bool | None = None, what: str = "the text") -> torch.Tensor:
    """`n` non-overlapping windows of `seq_len` tokens from the seeded shuffle of `docs`, EOS-joined; with
    BOS (None: the tokenizer's own convention), each window is BOS + seq_len - 1 stream tokens."""
    from bench.data.windows import resolve_add_bos

    bos = tokenizer.bos_token_id if resolve_add_bos(tokenizer, add_bos) else None
    step = seq_len - 1 if bos is not None else seq_len
    order = list(range(len(docs)))
    random.Random(seed).shuffle(order)
    sep = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    need, stream = n * step, []
    for i in order:
        stream.extend(tokenizer(docs[i], add_special_tokens=False, verbose=False)["input_ids"] + sep)
        if len(stream) >= need:
            break
    if len(stream) < need:
        raise ConfigError(f"{what} has {len(stream)} tokens, fewer than {n} windows of {seq_len}",
                          "lower the number of samples or the sequence length, or give more text")
    out = torch.tensor(stream[:need], dtype=torch.long).view(n, step)
    if bos is not None:
        out = torch.cat([torch.full((n, 1), bos, dtype=torch.long), out], dim=1)
    return out
