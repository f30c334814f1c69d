"""Research and measurement code around the harness, not shipped with it: `pyproject.toml`'s
[tool.setuptools.packages.find] includes only `bench*` and `methods*`, so nothing here is installed, and
nothing in `bench/` or `methods/` imports it (`lint-imports`: `scripts` is the top layer of the contract).

Run from the repository root as modules: `python -m scripts.<name>` (e.g. `python -m scripts.pruners_table`);
the single-file scripts also run as `python scripts/<name>.py`, as their docstrings show.
- `streamline_study/`: the LLM-Streamline study behind `reports/streamline-study.md`
  (`python -m scripts.streamline_study run|report`, a package whose modules import downwards only);
- `benchmarks/`: measurements of the harness itself, ratios timed in one interleaved run
  (`python -m scripts.benchmarks.<name>`; `tests/benchmarks/` checks them on a tiny model);
- the tables and plans behind other pages and issues: `scale_plan`, `scale_tokens`, `scale_measured`
  (`reports/scale.md`), `gpu_check`, `pruners_table`, `methods_table`, `train_table`, `train_memory`,
  `dense_smollm2`; `evidence_run.sh` drives the long evidence run;
- `official_parity/`: drivers run inside scratch copies of the official repositories (not a package; each
  runs as `python scripts/official_parity/<name>.py`, see its README).
"""
