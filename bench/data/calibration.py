"""Calibration data and layer-boundary statistics, captured once per (model, spec) and shared.

A `Calibration` holds seeded, fixed-length token windows from real text and, on first use, one pass of
the dense model that accumulates, for every pair of layer boundaries (i, j), the mean cosine similarity
of the hidden states over all (non-padding) tokens and over each sequence's last token. ShortGPT's Block
Influence, LLM-Streamline's window cosine and the angular distance all read from these two matrices, so
scoring all three costs one forward pass without the LM head. Accumulation is batch by batch in fp32:
memory does not grow with the number of samples.

Boundary h_0 is the embedding output (the first layer's input) and h_{i+1} the output of layer i, taken
with hooks: the raw residual stream. `last_boundary="final_norm"` applies the final norm to h_L instead,
as HF's `output_hidden_states` (and every official implementation) does.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch

from bench.core.errors import ConfigError
from bench.core.textfile import BUILTIN_SOURCES as BUILTIN_SOURCES  # re-exported: traindata, session
from bench.core.textfile import source_documents_or_builtin
from bench.models import arch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CalibSpec:
    source: str = "wikipedia"  # wikipedia | c4 | path to a .txt (blank-line separated) or .jsonl ("text")
    n_samples: int = 64
    seq_len: int = 128
    seed: int = 0
    batch_size: int = 8
    last_boundary: Literal["raw", "final_norm"] = "raw"
    add_bos: bool | None = None  # None: BOS first in each window exactly when the tokenizer adds one

    def __post_init__(self):
        if self.n_samples < 1 or self.seq_len < 2 or self.batch_size < 1:
            raise ConfigError("calibration needs n_samples >= 1, seq_len >= 2 and batch_size >= 1",
                              "e.g. n_samples=64 seq_len=128")
        if self.last_boundary not in ("raw", "final_norm"):
            raise ConfigError(f"unknown last_boundary {self.last_boundary!r}", "use raw or final_norm")

    def to_dict(self) -> dict:
        return asdict(self)


def corpus_documents(source: str, role: str = "calibration", what: str = "calibration text",
                     option: str = "--calib") -> tuple[str, ...]:
    """The documents of a text source: for a built-in sample, its `role` range (`bench.data.splits`:
    calibration by default, never the evaluation text); a local file whole (`what` and `option` name its
    use in messages: calibration text from --calib, training text from --train-data)."""
    docs = source_documents_or_builtin(source, what, option)
    if docs is not None:
        return docs
    from bench.data import splits

    return splits.documents(source, role)


def token_windows(docs: tuple[str, ...], tokenizer, n: int, seq_len: int, seed: int,
                  add_bos: bool | None = None) -> torch.Tensor:
    """`n` windows of `seq_len` tokens from the seeded shuffle of `docs` (`bench.data.splits.token_windows`)."""
    from bench.data.splits import token_windows as windows

    return windows(docs, tokenizer, n, seq_len, seed, add_bos=add_bos, what="the calibration text")


@dataclass
class BoundaryStats:
    """Mean pairwise cosine between layer boundaries: over all tokens, and over last tokens."""

    cos_tokens: torch.Tensor  # (L+1, L+1), fp32
    cos_last: torch.Tensor  # (L+1, L+1), fp32
    angle_last: torch.Tensor  # (L+1, L+1), fp32: mean over sequences of arccos(cos)/pi at the last token
    n_tokens: int
    n_sequences: int
    last_boundary: str
    seconds: float

    @property
    def n_layers(self) -> int:
        return self.cos_tokens.shape[0] - 1


class Calibration:
    """Seeded calibration windows for one dense model; `stats` is captured once, on first use."""

    def __init__(self, spec: CalibSpec, model, tokenizer):
        self.spec = spec
        self.model = model
        self.tokenizer = tokenizer
        self.windows = token_windows(corpus_documents(spec.source), tokenizer, spec.n_samples, spec.seq_len,
                                     spec.seed, spec.add_bos)
        # where greedy searches on these windows keep their rounds across processes (methods.memo; the
        # runner sets the store's searches/ folder); None: in this process only
        self.memo_dir: Path | None = None

    def describe(self) -> dict:
        """The spec plus where its text comes from (provenance): the document range of a built-in corpus
        (disjoint from the evaluation and training ranges) and whether windows start with BOS."""
        from bench.data import splits
        from bench.data.windows import resolve_add_bos

        out = {**self.spec.to_dict(), "bos": resolve_add_bos(self.tokenizer, self.spec.add_bos)}
        if self.spec.source in BUILTIN_SOURCES:
            out["document_range"] = list(splits.split(self.spec.source).calibration)
        return out

    def batches(self):
        device = next(self.model.parameters()).device
        for start in range(0, len(self.windows), self.spec.batch_size):
            ids = self.windows[start:start + self.spec.batch_size].to(device)
            yield ids, torch.ones_like(ids)

    @functools.cached_property
    def stats(self) -> BoundaryStats:
        return capture_boundary_stats(self.model, self.batches(), self.spec.last_boundary)


@torch.inference_mode()
def capture_boundary_stats(model, batches, last_boundary: str = "raw") -> BoundaryStats:
    """One forward pass per batch, stopped after the last decoder layer (no LM head)."""
    layers = arch.decoder_layers(model)
    n = len(layers)
    norm = arch.final_norm(model) if last_boundary == "final_norm" else None
    if last_boundary == "final_norm" and norm is None:
        raise ConfigError("this architecture has no known final norm", "use last_boundary=raw")
    cos_tokens = torch.zeros(n + 1, n + 1, dtype=torch.float64)
    cos_last = torch.zeros(n + 1, n + 1, dtype=torch.float64)
    angle_last = torch.zeros(n + 1, n + 1, dtype=torch.float64)
    states: list[torch.Tensor] = []

    def pre_first(_module, args, kwargs):
        states.append(args[0] if args else kwargs["hidden_states"])

    def post(i):
        def hook(_module, _args, output):
            states.append(arch.layer_output(output))
            if i == n - 1:
                raise arch.StopForward

        return hook

    handles = [layers[0].register_forward_pre_hook(pre_first, with_kwargs=True)]
    handles += [layer.register_forward_hook(post(i)) for i, layer in enumerate(layers)]
    n_tokens = n_seqs = 0
    start = time.perf_counter()
    with arch.hooks(handles):
        for ids, mask in batches:
            states.clear()
            arch.forward_until_stop(model, ids, mask)
            if norm is not None:
                states[-1] = norm(states[-1])
            tok_gram, last_gram, last_angle, count = _grams(states, mask)
            cos_tokens += tok_gram
            cos_last += last_gram
            angle_last += last_angle
            n_tokens += count
            n_seqs += ids.shape[0]
    seconds = time.perf_counter() - start
    log.info("captured boundary statistics over %d tokens in %.1f s", n_tokens, seconds)
    return BoundaryStats((cos_tokens / n_tokens).float(), (cos_last / n_seqs).float(),
                         (angle_last / n_seqs).float(), n_tokens, n_seqs, last_boundary, seconds)


def _grams(states: list[torch.Tensor], mask: torch.Tensor, chunk: int = 4096):
    """Sums over tokens of cos(h_i, h_j) for all boundary pairs, and over last non-pad tokens the sums of
    cos(h_i, h_j) and of the per-sequence angular distance arccos(cos)/pi (cosine clamped to [-1, 1])."""
    states = [s.to(mask.device) for s in states]  # a model dispatched over devices leaves them where computed
    keep = mask.reshape(-1).bool()
    flat = [s.reshape(-1, s.shape[-1])[keep] for s in states]  # (N, d) per boundary
    n_tok = flat[0].shape[0]
    gram = torch.zeros(len(states), len(states), dtype=torch.float64, device=flat[0].device)
    for lo in range(0, n_tok, chunk):
        u = torch.stack([torch.nn.functional.normalize(f[lo:lo + chunk].float(), dim=-1) for f in flat])
        gram += torch.einsum("ind,jnd->ij", u, u).double()
    # last non-pad position of each row (padding may be on either side)
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    last = torch.where(mask.bool(), positions, -1).max(dim=1).values
    rows = torch.arange(mask.shape[0], device=mask.device)
    u_last = torch.stack([torch.nn.functional.normalize(s[rows, last].float(), dim=-1) for s in states])
    per_seq = torch.einsum("ibd,jbd->bij", u_last, u_last).double()
    angle = torch.arccos(per_seq.clamp(-1.0, 1.0)) / torch.pi
    return gram.cpu(), per_seq.sum(0).cpu(), angle.sum(0).cpu(), n_tok
