"""Evaluation: accuracy (lm-eval), stability vs the dense model, corpus perplexity, latency and sizes.

- `accuracy.evaluate_accuracy(model, tokenizer, tasks, *, batch_size, limit=None, num_fewshot=0,
  data="local", ...) -> AccuracyResult`: lm-eval's built-in tasks on local data; scores plus per-sample
  records (per-choice log-likelihoods, continuation token counts, gold, acc/acc_norm).
- `stability.stability(dense_samples, pruned_samples)` / `stability_of(dense_result, pruned_result)`:
  LLM-Streamline's stability from the paper's formula (`official=True`: the released script's).
- `perplexity.evaluate_perplexity(model, tokenizer, corpus, *, window=512, ...) -> PerplexityResult`.
- `fidelity.prepare_text(tokenizer, documents, *, window, max_documents, max_bytes) -> EvalText`, then
  `fidelity.evaluate_fidelity(model, text, *, dense=None | model | DenseReference) -> FidelityResult`:
  bits per byte over whole held-out documents, KL(dense || model) and top-1 agreement on the same tokens
  (`fidelity.bits_per_byte(...)` does both steps; `fidelity.bootstrap_ci` resamples documents).
- `latency.measure_latency(model, *, batch_size, prompt_tokens, new_tokens, ...) -> LatencyResult`.

Dense once: a dense model's AccuracyResult (with its samples) is computed once per model and evaluation
settings and reused for every pruned model's stability (`accuracy.cached_accuracy` is a small helper;
the runner owns the store). Import the submodules directly; this package imports nothing heavy.
"""
