"""Fidelity (bench.evaluate.fidelity): bits per byte over whole held-out documents (tokenizer-free, so it
compares across models) and, for a pruned cell, KL(dense || pruned) and top-1 agreement with the dense model
on the same tokens: the low-noise measure quantization evaluations use. The dense cell computes the dense
model's final hidden states once (`DenseReference`, tokens x hidden size) and every pruned cell of the session
is scored against it: one extra set of hidden states, never a second model's logits for the whole text.

The record part `fidelity` (one entry per corpus, each with a bootstrap interval over documents, shown on
the pages only from `MIN_DOCUMENTS_FOR_CI` documents; the per-document sums go to `fidelity.jsonl` beside
the record for paired statistics); metrics
`bits_per_byte/<corpus>` and `kl_to_dense/<corpus>` (group "fidelity", compared by `bench regress` with
absolute tolerances) and `top1_agreement/<corpus>` (shown).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.core.record import Part, number
from bench.metrics import (
    AbsoluteChange,
    Column,
    EvalContext,
    Evaluator,
    Measure,
    Metric,
    Outcome,
    evaluator,
    metric,
)


@dataclass
class CorpusFidelity(Part):
    corpus: str | None = None
    documents: int | None = None
    bytes: int | None = None
    tokens: int | None = None
    windows: int | None = None
    window: int | None = None
    prefix: str | None = None
    nll: float | None = None
    bits_per_byte: float | None = None
    bits_per_byte_ci: list[float] = field(default_factory=list)
    kl_to_dense: float | None = None
    kl_to_dense_ci: list[float] = field(default_factory=list)
    top1_agreement: float | None = None
    wall_s: float | None = None


def _text(ctx: EvalContext, corpus: str):
    """The scored documents: a built-in corpus's evaluation split, or a local .txt file's blank-line-separated
    documents."""
    from pathlib import Path

    from bench.data import loaders
    from bench.evaluate.fidelity import prepare_text

    spec = ctx.spec.eval.fidelity
    from bench.core.textfile import is_text_file, read_text

    path = Path(corpus).expanduser()
    if is_text_file(path):  # a file, or a pipe read before (its text is kept)
        text = read_text(path, "fidelity corpus", "eval.fidelity.corpora")
        docs, label = [d for d in text.split("\n\n") if d.strip()], path.name
    else:
        # the corpus's documents in order from its start: the text perplexity scores, and the head of the
        # evaluation range bench.data.splits (branch fid) reserves; calibration and training come later
        if corpus not in ("c4", "wikipedia"):
            from bench.core.errors import ConfigError

            raise ConfigError(f"fidelity corpus {corpus!r} is neither c4, wikipedia nor a .txt file",
                              "e.g. fidelity: {corpora: [c4]}")
        docs, label = (loaders.c4_documents() if corpus == "c4" else loaders.wikipedia_documents()), corpus
    if spec.max_document_bytes is not None:  # the corpus's short documents, in the same order
        docs = [d for d in docs if len(d.encode("utf-8")) <= spec.max_document_bytes]
    return prepare_text(ctx.tokenizer, docs, label=label, window=spec.window, max_documents=spec.max_documents,
                        max_bytes=spec.max_bytes)


def _reference(model, text, batch_size: int):
    """The dense model's hidden states on `text`, or None where its logits are not head(hidden states)
    (then the dense model itself is run beside each pruned one)."""
    from bench.core.errors import ConfigError
    from bench.evaluate.fidelity import DenseReference

    try:
        return DenseReference(model, text, batch_size=batch_size)
    except ConfigError:
        return None


@evaluator
class FidelityEvaluator(Evaluator):
    name = "fidelity"
    part = CorpusFidelity
    many = True
    order = 25

    def enabled(self, spec) -> bool:
        return getattr(spec.eval, "fidelity", None) is not None

    def evaluate(self, ctx: EvalContext) -> Outcome:
        from bench.evaluate.fidelity import bootstrap_ci, evaluate_fidelity

        spec = ctx.spec.eval.fidelity
        mine = (ctx.reference or {}).get("fidelity")
        references = dict(mine.value or {}) if mine is not None and isinstance(mine.value, dict) else {}
        parts, rows, value = [], [], {}
        for corpus in spec.corpora:
            with ctx.stage(f"fidelity {corpus}", f"fidelity_{corpus}_s"):
                text = _text(ctx, corpus)
                dense = None
                if ctx.cell.dense:
                    value[corpus] = _reference(ctx.model, text, spec.batch_size)
                elif ctx.model is not ctx.dense_model:
                    dense = references.get(corpus)
                    if dense is None or dense.text != text:   # a later session: the dense model is in memory
                        dense = _reference(ctx.dense_model, text, spec.batch_size) or ctx.dense_model
                r = evaluate_fidelity(ctx.model, text, dense=dense, batch_size=spec.batch_size)
            part = CorpusFidelity(corpus=r.label, documents=r.documents, bytes=r.bytes, tokens=r.tokens,
                                  windows=r.windows, window=r.window, prefix=r.prefix, nll=r.nll,
                                  bits_per_byte=r.bits_per_byte,
                                  bits_per_byte_ci=list(bootstrap_ci(r.per_document, metric="bits_per_byte")),
                                  kl_to_dense=r.kl, top1_agreement=r.top1_agreement, wall_s=r.wall_s)
            if r.kl is not None:
                part.kl_to_dense_ci = list(bootstrap_ci(r.per_document, metric="kl"))
            parts.append(part)
            rows += [{"corpus": r.label, "document": i, **d.__dict__} for i, d in enumerate(r.per_document)]
        return Outcome(parts, {"fidelity.jsonl": rows}, {k: v for k, v in value.items() if v is not None} or None)

    def reference(self, store, key, record) -> Outcome | None:
        part = record.part(self.name)
        return None if part is None else Outcome(part)   # the hidden states are recomputed where needed


def _reader(field_name: str, prefix: str):
    def read(record) -> dict[str, Measure]:
        out = {}
        for p in record.part("fidelity") or []:
            value = number(getattr(p, field_name))
            if value is not None:
                ci = getattr(p, f"{field_name}_ci", None) or []
                out[f"{prefix}/{p.corpus}"] = Measure(value, low=ci[0] if len(ci) == 2 else None,
                                                      high=ci[1] if len(ci) == 2 else None)
        return out

    return read


def _corpora(group) -> list[str]:
    seen: dict[str, None] = {}
    for row in group.all_rows:
        for p in row.record.part("fidelity") or []:
            seen[str(p.corpus)] = None
    return list(seen)


MIN_DOCUMENTS_FOR_CI = 10   # a bootstrap over fewer whole documents says little; no interval is shown


def _value(field_name: str, corpus: str):
    def value(g, r):
        for p in r.record.part("fidelity") or []:
            if p.corpus == corpus:
                ci = getattr(p, f"{field_name}_ci", None) or []
                shown = len(ci) == 2 and (p.documents or 0) >= MIN_DOCUMENTS_FOR_CI
                return number(getattr(p, field_name)), (tuple(ci) if shown else None)
        return None, None

    return value


def _bpb_columns(group) -> list[Column]:
    return [Column(f"Bits/byte {c} [95 % CI] ↓", _value("bits_per_byte", c), style="ratio", digits=3, suffix="")
            for c in _corpora(group)]


def _kl_columns(group) -> list[Column]:
    return [Column(f"KL to dense {c}, nats/token [95 % CI] ↓", _value("kl_to_dense", c), style="ratio", digits=3,
                   dense=False) for c in _corpora(group)]


def _top1_columns(group) -> list[Column]:
    return [Column(f"Top-1 agreement {c} % ↑", lambda g, r, c=c: (_value("top1_agreement", c)(g, r)[0], None),
                   style="pct", dense=False) for c in _corpora(group)]


def _progress(record) -> list[str]:
    out = []
    for p in record.part("fidelity") or []:
        out.append(f"{p.corpus} bpb {p.bits_per_byte:.3f}")
        if p.kl_to_dense is not None:
            out.append(f"KL {p.kl_to_dense:.3f}")
    return out


metric(Metric(name="bits_per_byte", title="Bits per byte", unit="bits/byte", direction="lower",
              uncertainty="interval", read=_reader("bits_per_byte", "bits_per_byte"),
              regress=AbsoluteChange("bpb", unit="bits/byte"), group="fidelity", columns=_bpb_columns,
              progress=_progress, digits=3, order=32))
metric(Metric(name="kl_to_dense", title="KL to dense", unit="nats/token", direction="lower", uncertainty="interval",
              read=_reader("kl_to_dense", "kl_to_dense"), regress=AbsoluteChange("kl", unit="nats/token"),
              group="fidelity", columns=_kl_columns, progress=lambda r: [], digits=3, order=33))
metric(Metric(name="top1_agreement", title="Top-1 agreement with dense", unit="fraction", direction="higher",
              uncertainty="none", read=_reader("top1_agreement", "top1_agreement"), regress=None, group="fidelity",
              columns=_top1_columns, progress=lambda r: [], summary=lambda name: False, scale=100.0, digits=1,
              order=34))
