"""The result store: one folder per cell, an index, a parquet view, and a lock for concurrent writers.

    <store>/
      cells/<key>/record.json       the record (written last, atomically: it marks the cell finished)
      cells/<key>/plan.json         the prune plan (scores, ops, cost)
      cells/<key>/samples.jsonl     per-sample records of every task (what stability needs)
      cells/<key>/accuracy.json     the accuracy result without samples (settings, provenance)
      cells/<key>/timings.json      per-stage seconds
      results.jsonl                 the index: one summary line per cell, rewritten atomically
      results.parquet               a flat pandas view of every record (one row per cell)
      .lock                         serializes index and view updates across processes
      locks/<key>.lock              held while a process computes that cell
      searches/<method>-<hash>.json the rounds of a greedy search computed so far (methods.memo), so a plan of
                                    hours resumes where a stopped run left it

Every file is written to a temporary name and renamed, so a crash (even kill -9) leaves either the old
file or the new one. A cell is finished when its record.json exists; its other files are written first.
The index is derived data: `sync_index` rebuilds lines for records it lacks (a crash between the record
and the index update loses nothing).

A record (schema 1: bench.core.record.CellRecord as JSON, its parts typed by their evaluators in bench.metrics;
a part that does not apply is null, an evaluation the run does not ask for leaves its key out):

    key, schema, status ("ok" | "failed"), error {type, message, stage, user_error, traceback},
    started_at, finished_at, files, artifacts {<file>: {size, sha256}} (each cell file as written: a cell
    whose file was truncated or edited since reads as failed, DamagedArtifact, and is computed again)
    cell        {kind "dense"|"pruned", model, method, params (resolved), budget {layers, ratio}, seed, label}
    model       {name, source (zoo provenance: kind, sha256, wheels, licence), n_layers, params_total}
    pruning     {method, params, budget, n_layers, layers_after, layers_removed, removed_layers (dense
                 indices), ops, params_total, params_removed, params_after, param_ratio (tied weights
                 once), plan_hash, seconds, plan_seconds, capture_seconds, training (cost: wall_seconds,
                 steps, tokens, flops, peak memory, loss), training_data, cost, scores (per_layer
                 importance profile and the method's own), notes, calibration}
    accuracy    {tasks {<task>: {acc, acc_stderr, acc_norm, acc_norm_stderr, metric, score, n, n_total,
                 split, limit, shots, version, extra}}, average (of each task's headline `metric`),
                 average_of, delta_vs_dense, limit, num_fewshot, batch_size, data, softmax_dtype, wall_s,
                 task_versions}
    stability   {per_task, mean, mean_ci, ci, agreement, agreement_mean, ess, metric, metrics, spread,
                 official, n, skipped} (vs the dense cell's per-sample records)
    perplexity  [{corpus (label), window, tokens, windows, windows_total, perplexity, nll, source,
                 add_bos, batch_size, wall_s}]
    fidelity    [{corpus, documents, bytes, tokens, windows, window, prefix, nll, bits_per_byte,
                 bits_per_byte_ci, kl_to_dense, kl_to_dense_ci, top1_agreement, wall_s}] (kl: pruned cells;
                 per-document sums in cells/<key>/fidelity.jsonl)
    latency     {prefill_ms, ttft_ms, decode_tokens_per_s, generate_s, *_runs, prompt_tokens, new_tokens,
                 batch_size, warmup, repeats, peak_memory_bytes, parameters, checkpoint_bytes, weights_bytes,
                 kv_cache_bytes, device, dtype, dense_paired {..._runs}, decode_speedup_vs_dense,
                 prefill_speedup_vs_dense, decode_speedup_ci / prefill_speedup_ci {estimate, low, high,
                 repeats}, batches {<batch size>: the same fields}} (the first batch size at the top level)
    timings     {calibration_s, prune_s, accuracy_<task>_s, perplexity_<corpus>_s, latency_s, total_s}
    provenance  {harness_version, git_commit {sha, dirty}, versions {torch, transformers, lm-eval,
                 datasets, tokenizers}, python, host, pid, device, device_name, dtype, torch_threads,
                 batch_size, seeds {run, calibration, latency}, data {<package>: {package, sha256}},
                 calibration (CalibSpec), preset, executor, slurm_job_id, model_load_s, peak_rss_mb, date}
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from bench.core.atomic import write_bytes, write_json, write_text
from bench.core.errors import ConfigError
from bench.core.textfile import JsonlLineError, jsonl_rows
from bench.results.artifacts import RECORD as RECORD  # re-exported: the record's file name
from bench.results.artifacts import DamagedArtifact as DamagedArtifact  # re-exported: what readers catch
from bench.results.artifacts import damage, digests
from bench.results.artifacts import read_artifact as read_cell_file

log = logging.getLogger(__name__)

SCHEMA = 1
INDEX = "results.jsonl"
SEARCHES = "searches"  # greedy-search rounds (methods.memo), per search
STATES = "states"  # the dense models' layer states for the evaluation engine (`--engine-states store`)
VIEW = "results.parquet"


def _is_index_line(line: str) -> bool:
    try:
        row = json.loads(line)
    except ValueError:
        return False
    return isinstance(row, dict) and isinstance(row.get("key"), str) and "record" in row


def check_location(root: str | os.PathLike) -> Path:
    """The store folder, checked without creating anything: it must not be a file, and an existing folder
    must be laid out as a store (`cells` and `locks` folders, `results.*` and `.lock` files) and must not
    hold a `results.jsonl` or `results.parquet` of someone else's (the store rewrites both: without a
    `cells` folder, an index whose first line is not an index line is the user's own file)."""
    path = Path(root).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"store path {path} is a file, not a folder", "give --store a folder (new or existing)")
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"store path {path} lies under the file {parent}", "give --store a folder")
            break
    if not path.is_dir():
        return path
    for name, folder in (("cells", True), ("locks", True), (INDEX, False), (VIEW, False), (".lock", False)):
        item = path / name
        if os.path.lexists(item) and (item.is_symlink() or item.is_dir() != folder):
            raise ConfigError(f"store path {path} is not laid out as a result store: {name} is "
                              f"{'a link' if item.is_symlink() else 'a file' if folder else 'a folder'}",
                              "give --store a new folder or an existing store (see `bench run --help`)")
    if not (path / "cells").is_dir():
        foreign = []
        index = path / INDEX
        if index.is_file():
            try:
                with open(index, encoding="utf-8") as fh:
                    first = next((line for line in fh if line.strip()), None)
            except (OSError, ValueError):
                first = "not text"
            if first is not None and not _is_index_line(first):
                foreign.append(INDEX)
        if (path / VIEW).is_file() and (foreign or not index.is_file()):
            foreign.append(VIEW)
        if foreign:
            raise ConfigError(f"store path {path} holds {' and '.join(foreign)} that no result store wrote (it has "
                              "no cells folder); the store would replace them", f"give --store a new folder, or "
                              f"move {' and '.join(foreign)} out of {path}")
    return path


class Store:
    """A result store rooted at `root` (created on first write)."""

    def __init__(self, root: str | os.PathLike):
        self.root = check_location(root).absolute()

    # --------------------------------------------------------------------------------------- locations

    def cell_dir(self, key: str) -> Path:
        return self.root / "cells" / key

    def lock(self, timeout: float = -1):
        from filelock import FileLock

        self.root.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.root / ".lock"), timeout=timeout)

    def cell_lock(self, key: str):
        """A per-cell lock: held while one process computes the cell (released by the OS on a crash)."""
        from filelock import FileLock

        (self.root / "locks").mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.root / "locks" / f"{key}.lock"))

    # ------------------------------------------------------------------------------------------ reading

    def get(self, key: str) -> dict[str, Any] | None:
        """The cell's record; None when it has none, or one that is unreadable or not a record of this cell
        (a hand-edited or damaged file: the cell counts as not computed, so `bench run` computes it again)."""
        path = self.cell_dir(key) / RECORD
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:  # never happens with atomic writes; a hand-edited file
            log.warning("unreadable record %s (%s); ignoring it (`bench run` computes the cell again)", path, exc)
            return None
        if not isinstance(record, dict) or record.get("key") != key or not record.get("status"):
            log.warning("%s is not a record of cell %s; ignoring it (`bench run` computes the cell again)", path, key)
            return None
        from bench.metrics import load_record

        try:
            load_record(record)  # every part's types (a record typed once here never fails a reader later)
        except ValueError as exc:
            log.warning("%s cannot be read (%s); ignoring it (`bench run` computes the cell again)", path, exc)
            return None
        damaged = damage(self.cell_dir(key), record, False, self._hint)
        if damaged and record.get("status") == "ok":  # said in the record itself: not ok, and why
            record = {**record, "status": "failed", "error": {
                "type": "DamagedArtifact", "message": damaged, "stage": "store", "user_error": False}}
            log.warning("cell %s: %s; it counts as not computed (`bench run` computes it again)", key, damaged)
        return record

    @property
    def _hint(self) -> str:
        return f"run `bench run --store {self.root}` again: it computes the cell anew"

    def is_done(self, key: str) -> bool:
        """True when the cell has a successful record whose files are intact (failed cells, and cells with a
        truncated or edited file, are computed again on the next run)."""
        record = self.get(key)
        if record is None or record.get("status") != "ok":
            return False
        damaged = damage(self.cell_dir(key), record, True, self._hint)
        if damaged:
            log.warning("cell %s: %s; computing it again", key, damaged)
        return damaged is None

    def records(self) -> list[dict[str, Any]]:
        """Every record in the store (one per cell folder), ordered by completion time."""
        out = []
        for folder in sorted((self.root / "cells").glob("*")) if (self.root / "cells").is_dir() else []:
            record = self.get(folder.name)
            if record is not None:
                out.append(record)
        return sorted(out, key=lambda r: r.get("finished_at") or "")

    def index(self) -> list[dict[str, Any]]:
        """The index lines (one per cell); an index that cannot be read is rebuilt from the cell folders."""
        path = self.root / INDEX
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            return self._rebuilt_index(str(exc))
        try:
            rows = jsonl_rows(text)
        except JsonlLineError as exc:
            return self._rebuilt_index(f"line {exc.number} is not an index line")
        for number, row in rows:
            if not isinstance(row.get("key"), str):
                return self._rebuilt_index(f"line {number} is not an index line")
        return [row for _, row in rows]

    def _rebuilt_index(self, why: str) -> list[dict[str, Any]]:
        """The index derived from the records, for an index file that cannot be read (the next write saves it)."""
        log.warning("the store's index %s cannot be read (%s); rebuilding it from the cell folders",
                    self.root / INDEX, why)
        return [index_line(record) for record in self.records()]

    def read_artifact(self, key: str, name: str) -> Any:
        """A cell's JSON or JSONL file (None when absent); one that does not parse is a DamagedArtifact,
        said in one line (which file, which line), never a JSONDecodeError."""
        return read_cell_file(self.cell_dir(key) / name, self._hint)

    # ------------------------------------------------------------------------------------------ writing

    def put(self, key: str, record: dict[str, Any], artifacts: dict[str, Any] | None = None) -> Path:
        """Write the cell's artifacts, then its record (the commit point), then its index line."""
        folder = self.cell_dir(key)
        folder.mkdir(parents=True, exist_ok=True)
        for name, content in (artifacts or {}).items():
            path = folder / name
            if isinstance(content, bytes):  # a file copied as it is (a shared evaluation's)
                write_bytes(path, content)
            elif name.endswith(".jsonl"):
                write_text(path, "".join(json.dumps(row, default=str) + "\n" for row in content))
            elif isinstance(content, str):
                write_text(path, content)
            else:
                write_json(path, content)
        # each file's size and sha256 in the record, so that a truncated or edited file is found (`damage`)
        record["artifacts"] = digests(folder, artifacts or {})
        write_json(folder / RECORD, record)
        with self.lock():
            self._write_index(self._merged_index([record]))
        return folder / RECORD

    def sync_index(self) -> None:
        """Add index lines for records the index lacks (or holds in an older version)."""
        with self.lock():
            records = self.records()
            self._write_index(self._merged_index(records))

    def _merged_index(self, records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        lines = {row["key"]: row for row in self.index()}
        for record in records:
            lines[record["key"]] = index_line(record)
        return sorted(lines.values(), key=lambda r: r.get("finished_at") or "")

    def _write_index(self, rows: list[dict[str, Any]]) -> None:
        write_text(self.root / INDEX, "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows))

    # --------------------------------------------------------------------------------------------- views

    def frame(self):
        """A pandas DataFrame with one flat row per record."""
        import pandas as pd

        return pd.DataFrame([flat_row(r) for r in self.records()])

    def write_view(self) -> Path | None:
        """Rewrite results.parquet from the records (atomically, under the store lock)."""
        import io

        with self.lock():
            df = self.frame()
            if df.empty:
                return None
            buf = io.BytesIO()
            _parquet_safe(df).to_parquet(buf, index=False)
            write_bytes(self.root / VIEW, buf.getvalue())
        return self.root / VIEW


def _parquet_safe(df):
    """`df` with every column parquet can store: a column holding an integer beyond 64 bits (a seed of a
    record written before seeds were range-checked) or values of mixed kinds is written as text."""
    out = df.copy()
    for column in out.columns:
        if out[column].dtype != object:
            continue
        kinds = {type(v) for v in out[column] if v is not None and v == v}
        big = any(isinstance(v, int) and not -2**63 <= v < 2**63 for v in out[column])
        if big or len(kinds - {bool}) > 1 and not kinds <= {int, float}:
            out[column] = [None if v is None else str(v) for v in out[column]]
    return out


# ------------------------------------------------------------------------------------------ flattening


def _get(d: dict | None, *path, default=None):
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return default
        d = d[p]
    return d


def index_line(record: dict[str, Any]) -> dict[str, Any]:
    """The summary of a record that the index keeps (enough to list and filter without opening files)."""
    cell = record.get("cell", {})
    return {
        "key": record["key"], "status": record.get("status"), "kind": cell.get("kind"),
        "model": cell.get("model"), "method": cell.get("method"), "params": cell.get("params"),
        "budget": cell.get("budget"), "seed": cell.get("seed"),
        "layers_removed": _get(record, "pruning", "layers_removed"),
        "param_ratio": _get(record, "pruning", "param_ratio"),
        "accuracy_avg": _get(record, "accuracy", "average"),
        "stability": _get(record, "stability", "mean"),
        "perplexity": {p["corpus"]: p["perplexity"] for p in record.get("perplexity") or []},
        "error": _get(record, "error", "message"),
        "finished_at": record.get("finished_at"),
        "record": f"cells/{record['key']}/{RECORD}",
    }


def _finite(x):
    return x if isinstance(x, int | float) and not (isinstance(x, float) and math.isnan(x)) else None


def flat_row(record: dict[str, Any]) -> dict[str, Any]:
    """One flat row (scalars only) per record, for the parquet view and the run's summary: the cell, its
    structure, and every declared metric's values (bench.metrics: a column per value name, e.g.
    `accuracy/avg`, `accuracy/piqa`, `perplexity/c4`, `latency/prefill_ms`, with `<name>:stderr` beside
    the values that carry one)."""
    from bench.metrics import load_record, values

    rec = load_record(record)
    cell, pruning, budget = rec.cell, rec.pruning, rec.cell.budget or {}
    row: dict[str, Any] = {
        "key": rec.key, "status": rec.status, "kind": cell.kind, "model": cell.model, "method": cell.method,
        "label": cell.label, "params": json.dumps(cell.params or {}, sort_keys=True), "seed": cell.seed,
        "budget_layers": budget.get("layers"), "budget_ratio": budget.get("ratio"),
        "n_layers": pruning.n_layers if pruning else None,
        "layers_removed": pruning.layers_removed if pruning else None,
        "removed_layers": json.dumps(pruning.removed_layers) if pruning else None,
        "params_total": pruning.params_total if pruning else None,
        "params_after": pruning.params_after if pruning else None,
        "param_ratio": pruning.param_ratio if pruning else None,
        "speedup": rec.latency.decode_speedup_vs_dense if rec.latency else None,
        "seconds": rec.timings.get("total_s"), "device": rec.provenance.get("device"),
        "dtype": rec.provenance.get("dtype"), "limit": rec.accuracy.limit if rec.accuracy else None,
        "error": rec.error.message if rec.error else None, "finished_at": rec.finished_at,
    }
    for name, (_, measure) in values(rec).items():
        row[name] = _finite(measure.value)
        if measure.stderr is not None:
            row[f"{name}:stderr"] = _finite(measure.stderr)
    return row


def iter_samples(rows: Iterable[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for row in rows:
        row = dict(row)
        yield row.pop("task"), row
