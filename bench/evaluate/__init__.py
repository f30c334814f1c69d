"""Evaluation: accuracy (lm-eval), stability vs the dense model, corpus perplexity, bits per byte and fidelity
to dense, latency and sizes. Each module's result type is the record part its metric stores
(`bench.metrics` registers them); what only the caller needs (per-sample records, provenance, per-document
sums) rides along in fields the record never writes (`bench.core.record.Part.transient`).

- `multiple_choice.evaluate_accuracy(model, tokenizer, tasks, *, batch_size, limit=None, num_fewshot=0,
  data="local", ...) -> AccuracyResult`: lm-eval's built-in tasks on local data; scores plus per-sample
  records (per-choice log-likelihoods, continuation token counts, gold, acc/acc_norm). lm-eval's internals it
  relies on (and the engine shares) are in `lm_eval_glue`.
- `answer_agreement.stability(dense_samples, pruned_samples)` / `stability_of(dense_result, pruned_result)`:
  LLM-Streamline's stability from the paper's formula (`official=True`: the released script's).
- `windowed_perplexity.evaluate_perplexity(model, tokenizer, corpus, *, window=512, ...) -> PerplexityResult`.
- `bits_per_byte.prepare_text(tokenizer, documents, *, window, max_documents, max_bytes) -> EvalText`, then
  `bits_per_byte.evaluate_fidelity(model, text, *, dense=None | model | DenseReference) -> FidelityResult`:
  bits per byte over whole held-out documents, KL(dense || model) and top-1 agreement on the same tokens
  (`bits_per_byte.bits_per_byte(...)` does both steps; `bits_per_byte.bootstrap_ci` resamples documents).
- `timing.measure_latency(model, *, batch_size, prompt_tokens, new_tokens, ...) -> LatencyResult`.

Dense once: a dense model's AccuracyResult (with its samples) is computed once per model and evaluation
settings and reused for every pruned model's stability (`multiple_choice.cached_accuracy` is a small helper;
the runner owns the store). Import the submodules directly; this package imports nothing heavy, nor do the
modules that declare record parts (torch and lm-eval are imported inside the functions that use them).
"""
