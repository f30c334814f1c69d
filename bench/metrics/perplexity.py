"""Perplexity per corpus (bench.evaluate.windowed_perplexity; a built-in corpus or a local .txt file): the
record part `perplexity` (a list of `PerplexityResult`, one per corpus) and the metric `perplexity`
("perplexity/<corpus>"; per token, so it depends on the tokenizer; `bench regress` compares its log, the mean
NLL, with an absolute tolerance in nats)."""

from __future__ import annotations

from pathlib import Path

from bench.evaluate.windowed_perplexity import PerplexityResult, corpus_perplexity
from bench.metrics import AbsoluteChange, Column, Evaluator, Measure, Metric, Outcome, evaluator, metric


@evaluator
class PerplexityEvaluator(Evaluator):
    name = "perplexity"
    part = PerplexityResult
    many = True
    order = 20

    def enabled(self, spec) -> bool:
        return spec.eval.perplexity is not None

    def evaluate(self, ctx) -> Outcome:
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
