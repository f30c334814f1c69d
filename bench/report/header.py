"""The provenance header every report page starts with: where, when and how its numbers were made.

All of it comes from the records (`provenance`, `accuracy`, `perplexity` parts); the date is the newest
record's, so the same store always gives the same header. A value that differs between records is listed
with every variant and flagged as mixed; a limit (a subset of a task or corpus) is flagged too.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bench.core.record import CellRecord
from bench.report.coverage import Plan, coverage_lines
from bench.report.groups import Collection
from bench.report.markdown import DASH
from bench.results.rows import canonical, newest_date

WARN = "⚠"
KEY_PACKAGES = ("torch", "transformers", "lm-eval")
OTHER_PACKAGES = ("datasets", "tokenizers")


def distinct(values: Iterable[Any]) -> list[Any]:
    """The distinct values (None dropped) in first-seen order."""
    seen: dict[str, Any] = {}
    for v in values:
        if v is not None and canonical(v) not in seen:
            seen[canonical(v)] = v
    return list(seen.values())


def joined(values: Iterable[Any], fmt=str) -> str:
    vals = distinct(values)
    if not vals:
        return DASH
    text = "; ".join(fmt(v) for v in vals)
    return f"{text} ({WARN} mixed)" if len(vals) > 1 else text


def _commit(c: dict[str, Any]) -> str:
    sha = str(c.get("sha") or "?")
    return f"`{sha[:12]}`" + (" (uncommitted changes)" if c.get("dirty") else "")


def _calibration(c: dict[str, Any]) -> str:
    parts = [f"{c.get('source')}", f"{c.get('n_samples')} × {c.get('seq_len')} tokens", f"seed {c.get('seed')}"]
    rest = {k: v for k, v in sorted(c.items()) if k not in ("source", "n_samples", "seq_len", "seed")}
    parts += [f"{k.replace('_', ' ')} {v}" for k, v in rest.items()]
    return ", ".join(parts)


def _seeds(prov: list[dict[str, Any]]) -> str:
    """Each kind of seed with its distinct values (several are a matrix's seeds, not a mix-up)."""
    kinds: dict[str, list[Any]] = {}
    for p in prov:
        for kind, value in (p.get("seeds") or {}).items():
            kinds.setdefault(kind, []).append(value)
    parts = [f"{kind} {', '.join(str(v) for v in sorted(distinct(vals)))}" for kind, vals in sorted(kinds.items())
             if distinct(vals)]
    return "; ".join(parts) or DASH


def _limits(records: list[CellRecord]) -> str:
    limits = distinct(r.accuracy.limit for r in records if r.accuracy)
    full = any(r.accuracy and r.accuracy.limit is None for r in records)
    if not limits:
        return "none (full splits)" if full else DASH
    text = f"{WARN} {'; '.join(str(v) for v in limits)} documents per task (subsets)"
    return text + (" and full splits" if full else "") + (f" ({WARN} mixed)" if len(limits) + full > 1 else "")


def _tasks(records: list[CellRecord]) -> list[str]:
    by_task: dict[str, list[str]] = {}
    for r in records:
        for name, t in (r.accuracy.tasks if r.accuracy else {}).items():
            n, total = t.n, t.n_total
            docs = f"{n}/{total} documents" + (f" {WARN}" if n is not None and total and n < total else "")
            text = (f"{t.split} split, {docs}, {t.shots}-shot, headline metric {t.metric}, "
                    f"lm-eval task version {t.version or '?'}")
            by_task.setdefault(name, []).append(text)
    return [f"`{name}`: {joined(texts)}" for name, texts in by_task.items()]


def _corpora(records: list[CellRecord]) -> list[str]:
    by_corpus: dict[str, list[str]] = {}
    for r in records:
        for p in r.perplexity:
            windows, total = p.windows, p.windows_total
            subset = f" {WARN} {windows} of {total} windows" if windows and total and windows < total else ""
            text = f"{p.window}-token windows, {p.tokens} tokens scored{subset}, source {p.source}"
            by_corpus.setdefault(str(p.corpus), []).append(text)
    return [f"{name}: {joined(texts)}" for name, texts in by_corpus.items()]


def _data(records: list[CellRecord]) -> str:
    packages = []
    for r in records:
        for entry in (r.provenance.get("data") or {}).values():
            sha = entry.get("sha256")
            packages.append(f"`{entry.get('package')}`" + (f" (sha256 `{sha[:16]}…`)" if sha else ""))
    return ", ".join(distinct(packages)) or DASH


def header(coll: Collection, plan: Plan | None = None) -> str:
    """The provenance section (markdown) for the records of `coll`; with `plan`, which of its cells the store
    lacks (bench.report.coverage)."""
    recs = coll.records
    prov = [r.provenance for r in recs]
    versions = [p.get("versions") or {} for p in prov]
    pkgs = " · ".join(f"{name} {joined(v.get(name) for v in versions)}" for name in KEY_PACKAGES)
    others = " · ".join(f"{name} {joined(v.get(name) for v in versions)}" for name in OTHER_PACKAGES
                        if any(v.get(name) for v in versions))
    device = joined(f"{p.get('device')}" + (f" ({p['device_name']})" if p.get("device_name") else "")
                    for p in prov if p.get("device"))
    calib = [p.get("calibration") for p in prov if p.get("calibration")]
    superseded = sum(g.superseded for g in coll.groups)
    lines = [
        "## Provenance",
        "",
        f"- Date (newest record): {newest_date(recs) or DASH}",
        f"- Harness: {joined(p.get('harness_version') for p in prov)}, git commit "
        f"{joined((p.get('git_commit') for p in prov), _commit)}",
        f"- Versions: {pkgs}" + (f" (also {others})" if others else ""),
        f"- Python: {joined(p.get('python') for p in prov)}; preset: {joined(p.get('preset') for p in prov)}",
        f"- Device: {device}; dtype: {joined(p.get('dtype') for p in prov)}; torch threads: "
        f"{joined(p.get('torch_threads') for p in prov)}",
        f"- Evaluation batch size: {joined(p.get('batch_size') for p in prov)}; latency batch size: "
        f"{joined(r.latency.batch_size for r in recs if r.latency)}",
        f"- Seeds: {_seeds(prov)}",
        f"- Limit: {_limits(recs)}",
        f"- Few-shot: {joined(r.accuracy.num_fewshot if r.accuracy else None for r in recs)}",
        f"- Data packages: {_data(recs)}",
        f"- Calibration: {joined(calib, _calibration) if calib else DASH}",
    ]
    tasks, corpora = _tasks(recs), _corpora(recs)
    if tasks:
        lines += ["- Tasks:", *[f"  - {t}" for t in tasks]]
    if corpora:
        lines += ["- Perplexity corpora:", *[f"  - {c}" for c in corpora]]
    lines.append(f"- Records: {len(coll.ok_records)} finished, {len(coll.failed)} failed"
                 + (f", {superseded} superseded by newer records of the same cell" if superseded else ""))
    if plan is not None:
        lines += coverage_lines(plan, {str(r.key) for r in coll.ok_records})
    return "\n".join(lines) + "\n"
