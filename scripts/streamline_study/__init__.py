"""The LLM-Streamline study: does a trained replacement beat dropping the block, and ShortGPT / LaCo?

    python -m scripts.streamline_study run    [--out reports/streamline-study] [--deadline HH:MM]
    python -m scripts.streamline_study report [--out reports/streamline-study] [--page reports/streamline-study.md]

(from the repository root). Its modules, each importing only those below it (`pyproject.toml`
[tool.importlinter]): `__main__` (the command) -> `report` (the page and figure) | `study` (the runner:
the jobs, the untrained points, accuracy) -> `answers` (the page's answers, defaults, gaps, compute) |
`train` (one training run, every budget a checkpoint) | `teacher` (the cached dense states) -> `points`
(reading the points, bits-per-byte intervals, accuracy tests) -> `design` (the constants, the job list).

SmolLM2-135M, 8 of its 30 decoder layers removed (25 % of the layers) by every point. Baselines at the same
layer budget: `none` (Streamline's block dropped, no replacement), ShortGPT, LaCo. Streamline's `layer`
replacement (layer l kept, layers l+1..l+8 deleted, layer l trained) under each objective: `mse` (the
official loss), `mse` without position 0 (`mse_skip_first=1`: the attention-sink position), `lm`
(next-token loss) and `kd` (KL from the dense model's logits), at the training-token budgets `design.BUDGETS`
(geometric, 25.6 K to 1.02 M tokens); `mlp` and `ffn` replacements at the best objective; a second seed at
the largest budget; and the method's defaults (`methods.create("streamline")`, the official schedule) with
two seeds.

One run per (replacement, objective, seed) gives every budget: the study trains with a constant learning
rate (2e-4, no warm-up; the official loop's effective schedule is 2e-4 decaying only to 1.95e-4 after an 8 %
warm-up) on one seeded stream of windows, so the state after N tokens *is* the N-token run (the same
batches, the same steps: `tests/test_train.py`), and each budget is a checkpoint of the longest run
(`bench.train.train(on_step=...)`).

Data (document-level, disjoint by construction, `bench.data.splits`): calibration on the Wikipedia sample's
calibration range; training windows (256 tokens, batch 4) from the C4 sample's training range; evaluation on
whole documents of the C4 sample's evaluation range (bits per byte, KL(dense || pruned), top-1 agreement,
`bench.evaluate.bits_per_byte`), and full PIQA and ARC-Easy (lm-eval tasks, the prefix engine) for the points of
the accuracy jobs in `design.jobs()`.

Compute reuse (`teacher.TeacherCache`): the dense model runs once over every training window and keeps
h_l (the input of the replaced block), the dense h_{l+9} (the MSE target) and the dense final-normed hidden
state (whose LM-head product is the kd teacher's logits). Every objective then trains from h_l: the frozen
prefix (layers 0..l-1) is never run again, and the kd teacher is one head matmul instead of a dense forward.
The first batch checks the cached path against the model's own forward.

Every point writes <out>/points/<name>.json (atomic) and is skipped when present: `run` resumes (a run
restarts from step 0 but skips the budgets already written). `--deadline` (UTC, HH:MM) stops starting work
that would end after it, and stops a run at its last budget before it. `report` writes the page.
"""
