"""Fidelity (bench.evaluate.bits_per_byte): bits per byte over whole held-out documents (tokenizer-free, so it
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

from bench.core.record import number
from bench.evaluate.bits_per_byte import (
    FidelityResult,
    bootstrap_ci,
    corpus_documents,
    dense_reference,
    evaluate_fidelity,
    prepare_text,
)
from bench.metrics import AbsoluteChange, Column, Evaluator, Measure, Metric, Outcome, evaluator, metric


@evaluator
class FidelityEvaluator(Evaluator):
    name = "fidelity"
    part = FidelityResult
    many = True
    order = 25

    def enabled(self, spec) -> bool:
        return getattr(spec.eval, "fidelity", None) is not None

    def evaluate(self, ctx) -> Outcome:
        spec = ctx.spec.eval.fidelity
        mine = (ctx.reference or {}).get("fidelity")
        references = dict(mine.value or {}) if mine is not None and isinstance(mine.value, dict) else {}
        parts, rows, value = [], [], {}
        for corpus in spec.corpora:
            with ctx.stage(f"fidelity {corpus}", f"fidelity_{corpus}_s"):
                docs, label = corpus_documents(corpus, spec.max_document_bytes)
                text = prepare_text(ctx.tokenizer, docs, label=label, window=spec.window,
                                    max_documents=spec.max_documents, max_bytes=spec.max_bytes)
                dense = None
                if ctx.cell.dense:
                    value[corpus] = dense_reference(ctx.model, text, spec.batch_size)
                elif ctx.model is not ctx.dense_model:
                    dense = references.get(corpus)
                    if dense is None or dense.text != text:   # a later session: the dense model is in memory
                        dense = dense_reference(ctx.dense_model, text, spec.batch_size) or ctx.dense_model
                r = evaluate_fidelity(ctx.model, text, dense=dense, batch_size=spec.batch_size)
            r.bits_per_byte_ci = list(bootstrap_ci(r.per_document, metric="bits_per_byte"))
            if r.kl_to_dense is not None:
                r.kl_to_dense_ci = list(bootstrap_ci(r.per_document, metric="kl"))
            parts.append(r)
            rows += [{"corpus": r.corpus, "document": i, **d.__dict__} for i, d in enumerate(r.per_document)]
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
