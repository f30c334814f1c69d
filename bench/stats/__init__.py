"""Paired statistics over the store's per-sample records (no torch; numpy and scipy only).

Every pruned model is scored on the same documents as its dense model and as every other pruned model,
so comparisons are *paired*: the unit is a document, and the noise that matters is how often two models
disagree on the same document, not the binomial noise of one model's accuracy.

- `samples`: per-sample records of two or more cells aligned into 0/1 correctness matrices, per task,
  by each task's headline metric (acc_norm where the page shows acc_norm).
- `bootstrap`: a stratified paired bootstrap (documents resampled within each task, the same draw for
  every model) of the Avg (mean over tasks of each task's accuracy) and of any linear contrast of it.
- `significance`: exact McNemar per task (a two-sided binomial test on the discordant pairs), a paired
  sign-flip randomization test of an Avg difference, and Holm's step-down correction.
- `speedup`: a paired confidence interval of a speed-up from interleaved repeats (t on log-ratios).

Everything is seeded (`SEED`), so the same store gives the same numbers and the pages stay byte-identical.
"""

SEED = 20250101          # the one seed every resampling here uses (pages must not move between renders)
ITERS = 10_000           # bootstrap draws and randomization-test resamples
LEVEL = 0.95             # confidence level of every interval
ALPHA = 0.05             # family-wise error rate the pages' claims are held to (after Holm)
