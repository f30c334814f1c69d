"""Perplexity per corpus (bench.evaluate.perplexity; a built-in corpus or a local .txt file): the record
part `perplexity` (a list, one entry per corpus) and the metric `perplexity` ("perplexity/<corpus>"; per
token, so it depends on the tokenizer; `bench regress` compares its log, the mean NLL, with an absolute
tolerance in nats)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.core.record import Part
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
class CorpusPerplexity(Part):
    optional = ("documents", "document_range")  # absent from records written before document splits

    corpus: str | None = None  # its label
    window: int | None = None
    tokens: int | None = None
    windows: int | None = None
    windows_total: int | None = None
    perplexity: float | None = None
    nll: float | None = None
    source: str | None = None
    add_bos: bool | None = None
    batch_size: int | None = None
    wall_s: float | None = None
    documents: int | None = None
    document_range: list[int] | None = None  # [start, stop) of a built-in corpus's evaluation range


def corpus_perplexity(model, tokenizer, corpus: str, spec) -> CorpusPerplexity:
    """Perplexity on a built-in corpus or a local .txt file (`spec`: bench.run.config.PerplexitySpec)."""
    from bench.evaluate.perplexity import evaluate_perplexity, text_perplexity

    windows = {"window": spec.window, "batch_size": spec.batch_size, "max_windows": spec.max_windows,
               "add_bos": spec.add_bos}
    from bench.core.textfile import is_text_file, read_text

    path = Path(corpus).expanduser()
    if is_text_file(path):  # a file, or a pipe the early checks read (its text is kept)
        r = text_perplexity(model, tokenizer, read_text(path, "perplexity corpus", "--ppl"), label=path.name,
                            source=f"file:{path.resolve()}", documents=1, **windows)
    else:
        r = evaluate_perplexity(model, tokenizer, corpus, **windows)
    return CorpusPerplexity(corpus=r.corpus, window=r.window, tokens=r.tokens, windows=r.windows,
                            windows_total=r.windows_total, perplexity=r.perplexity, nll=r.nll, source=r.source,
                            add_bos=r.add_bos, batch_size=r.batch_size, wall_s=r.wall_s, documents=r.documents,
                            document_range=r.provenance.get("document_range"))


@evaluator
class PerplexityEvaluator(Evaluator):
    name = "perplexity"
    part = CorpusPerplexity
    many = True
    order = 20

    def enabled(self, spec) -> bool:
        return spec.eval.perplexity is not None

    def evaluate(self, ctx: EvalContext) -> Outcome:
        spec = ctx.spec.eval.perplexity
        out = []
        for corpus in spec.corpora:
            with ctx.stage(f"perplexity {corpus}", f"perplexity_{Path(corpus).stem}_s"):
                out.append(corpus_perplexity(ctx.model, ctx.tokenizer, corpus, spec))
        return Outcome(out)


def _read(record) -> dict[str, Measure]:
    return {f"perplexity/{p.corpus}": Measure(float(p.perplexity)) for p in record.perplexity
            if isinstance(p.perplexity, int | float)}


def _columns(group) -> list[Column]:
    return [Column(f"PPL {corpus_name(corpus)} (tokens, w={p.window}) ↓",
                   lambda g, r, c=corpus: (r.perplexity_of(c), None),
                   style="ppl")
            for corpus, p in group.corpora.items()]


def _progress(record) -> list[str]:
    return [f"{corpus_name(p.corpus)} ppl {p.perplexity:.2f}" if p.perplexity < 1000 else
            f"{corpus_name(p.corpus)} ppl {p.perplexity:.2e}" for p in record.perplexity]


def corpus_name(label: str | None) -> str:
    """A built-in corpus by the one name the options take (`C4-sample` -> `c4`); a file's label as it is."""
    from bench.data import tasks

    for corpus in tasks.CORPORA.values():
        if label in (corpus.name, corpus.label):
            return corpus.name
    return str(label)


metric(Metric(name="perplexity", title="Perplexity", unit="perplexity", direction="lower", uncertainty="none",
              read=_read, regress=AbsoluteChange("nll", unit="nats/token", log=True), columns=_columns,
              progress=_progress,
              order=30))
