"""The Streamline study's design: its constants (model budget, training budgets, data sizes, objectives, costs)
and its job list, in the order `run` works through it. Every other module of the study imports this one and
reads the constants as `design.NAME` at call time (a test shrinks the budgets by setting them here).
"""

from __future__ import annotations

from bench.data.calibration import CalibSpec

LAYERS = 8
SEQ, BATCH = 256, 4
WINDOWS = tuple(BATCH * round(25 * 40 ** (i / 4)) for i in range(5))  # 100, 252, 632, 1592, 4000 windows
BUDGETS = tuple(w * SEQ for w in WINDOWS)  # 25,600 .. 1,024,000 tokens, ratio 40^(1/4) = 2.51
SCHEDULE = {"schedule": "constant", "warmup": 0.0, "lr": 2e-4}
EVAL_BYTES = 40_000                 # whole C4 evaluation documents up to this many UTF-8 bytes in all,
EVAL_DOC_BYTES = 2_000              # taking, in corpus order, the documents of at most this many bytes
ACC_TASKS = ("piqa", "arc_easy")
CALIB = CalibSpec(source="wikipedia", n_samples=32, seq_len=128, seed=0)
OBJECTIVES = {"mse": {"objective": "mse"}, "mse_skip1": {"objective": "mse", "mse_skip_first": 1},
              "lm": {"objective": "lm"}, "kd": {"objective": "kd"}}
# LaCo with the official Baichuan2-13B notebook's settings (C = 3, I = 1, T = 0.6, two calibration sequences)
LACO = {"name": "laco", "kind": "baseline", "method": "laco",
        "params": {"layers_per_merge": 3, "interval": 1, "threshold": 0.6, "n_sentences": 2}, "estimate_s": 900}
# seconds per training token on the study machine (quiet, 2 cores, bf16), from the cached teacher states
COST = {"mse": 0.0003, "mse_skip1": 0.0003, "lm": 0.0022, "kd": 0.003}
ACC_SECONDS = 420


def name(replacement: str, objective: str, tokens: int, seed: int) -> str:
    return f"{replacement}-{objective}-{tokens // 1000}k-s{seed}"


def _run(replacement: str, objective: str, seed: int, windows: int = WINDOWS[-1]) -> dict:
    return {"kind": "train", "replacement": replacement, "objective": objective, "seed": seed,
            "windows": windows, "name": f"run {replacement}-{objective}-s{seed}"}


def jobs() -> list[dict]:
    """Every job in the order it runs: the cheap and the decisive first, so a deadline cuts the tail. `kd` runs
    to WINDOWS[2] first (which objective gets there first is decided at the small budgets) and restarts for
    the larger ones at the end (a restart skips the budgets already written)."""
    base = [{"name": "dense", "kind": "dense"},
            {"name": "none", "kind": "baseline", "method": "streamline", "params": {"replacement": "none"}},
            {"name": "shortgpt", "kind": "baseline", "method": "shortgpt", "params": {}}]
    out = [*base, _run("layer", "mse", 0), _run("layer", "mse_skip1", 0), _run("layer", "lm", 0),
           _run("layer", "kd", 0, windows=WINDOWS[min(2, len(WINDOWS) - 1)])]
    out += [{"name": f"default-s{s}", "kind": "default", "seed": s} for s in (0, 1)]
    out += [{"kind": "best", "what": w} for w in ("mlp", "ffn")]
    out += [_run("layer", "mse", 1)]  # a second seed at the largest budget, minutes with the cached states
    out += [{"kind": "accuracy", "of": n} for n in ("none", "shortgpt", "best-last")]
    out += [LACO]
    out += [{"kind": "accuracy", "of": n} for n in ("best-first", "default-s0")]
    out += [{"kind": "best", "what": "seed1"}, _run("mlp", "mse", 0), _run("ffn", "mse", 0),
            {"kind": "accuracy", "of": "layer-mse-1024k-s0"}, _run("layer", "kd", 0),
            {"kind": "accuracy", "of": "dense"}, {"kind": "accuracy", "of": "default-s1"}]
    return out


def best_run(what: str, best: str) -> dict:
    """The run a `best` job stands for: a second seed of the best objective, or its mlp / ffn replacement."""
    if what == "seed1":
        return _run("layer", best, 1)
    cheap = best in ("mse", "mse_skip1")  # module-only training: the whole grid costs minutes
    return _run(what, best, 0, windows=WINDOWS[-1] if cheap else WINDOWS[min(2, len(WINDOWS) - 1)])


def best_objective(done: dict[str, dict]) -> str | None:
    """The objective whose seed-0 `layer` point at the largest budget any objective reached has the lowest
    bits per byte (every objective's run checkpoints at the same budgets)."""
    rows = [r for r in done.values() if r["point"]["kind"] == "train" and r["point"]["replacement"] == "layer"
            and r["point"]["seed"] == 0]
    if not rows:
        return None
    top = max(r["point"]["tokens"] for r in rows)
    return min((r for r in rows if r["point"]["tokens"] == top),
               key=lambda r: r["fidelity"]["bits_per_byte"])["point"]["objective"]
