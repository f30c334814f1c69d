"""Training text for healing and replacement modules, disjoint from calibration and evaluation text.

Sources are those of calibration: the built-in Wikipedia and C4 samples, or a local .txt/.jsonl file. A
built-in sample's training text is its training range of whole documents (`bench.data.splits`: evaluation
[0, a), calibration [a, b), training [b, n), documents repeated from earlier ranges dropped), so nothing a
method trains on is calibrated on or scored by the perplexity / bits-per-byte evaluators, which read only
the evaluation range. A local file is used whole, minus any document that is also a built-in evaluation
document.

Training windows are drawn like calibration windows (`splits.token_windows`: seeded shuffle of the
training documents, EOS-joined, non-overlapping `seq_len` blocks, BOS first when the tokenizer adds BOS by
itself) and are yielded batch by batch; only token ids are held. `describe()` is the provenance a record
stores: the document range, counts and the BOS rule.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import torch

from bench.core.errors import ConfigError
from bench.data import splits
from bench.data.calibration import corpus_documents

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainDataSpec:
    source: str = "c4"  # c4 | wikipedia (their training ranges) | path to a .txt (blank-line separated) or .jsonl
    add_bos: bool | None = None  # None: BOS first in each window exactly when the tokenizer adds one

    def to_dict(self) -> dict:
        return asdict(self)


class TrainData:
    """The training text of one source for one tokenizer; draws seeded windows from it."""

    def __init__(self, spec: TrainDataSpec, tokenizer):
        self.spec = spec
        self.tokenizer = tokenizer
        if spec.source in splits.BUILTIN:
            self.split = splits.split(spec.source)
            candidates = splits._builtin_documents(spec.source)[slice(*self.split.training)]
            self.documents = splits.documents(spec.source, "training")
        else:
            self.split = None
            candidates = corpus_documents(spec.source, "training", "training text", "--train-data")
            reserved = splits.evaluation_fingerprints()
            self.documents = tuple(d for d in candidates if splits._fingerprint(d) not in reserved)
        self.dropped_duplicates = len(candidates) - len(self.documents)
        if not self.documents:
            raise ConfigError(f"training source {spec.source!r} has no documents outside the evaluation text",
                              "give a local training file")
        log.info("training text of %s: %d documents (%d duplicates of earlier text dropped)", spec.source,
                 len(self.documents), self.dropped_duplicates)

    def describe(self) -> dict:
        from bench.data.windows import resolve_add_bos

        out = {**self.spec.to_dict(), "documents": len(self.documents), "dropped_duplicates": self.dropped_duplicates,
               "bos": resolve_add_bos(self.tokenizer, self.spec.add_bos)}
        if self.split is not None:
            out["document_range"] = list(self.split.training)
            out["splits"] = self.split.to_dict()
        return out

    def windows(self, n: int, seq_len: int, seed: int) -> torch.Tensor:
        """`n` non-overlapping windows of `seq_len` token ids from the seeded shuffle of the training text."""
        return splits.token_windows(self.documents, self.tokenizer, n, seq_len, seed, add_bos=self.spec.add_bos,
                                    what=f"the training text of {self.spec.source!r}")

    def batches(self, n: int, seq_len: int, batch_size: int, seed: int, device) -> Iterator[torch.Tensor]:
        wins = self.windows(n, seq_len, seed)
        for start in range(0, n, batch_size):
            yield wins[start:start + batch_size].to(device)
