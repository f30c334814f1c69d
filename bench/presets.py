"""Embedded run presets, in the YAML shape of `RunSpec.to_dict()`; a config file and options go on top.

quick    the default `bench run`: SmolLM2-135M, every registered method, ratios 0.125 and 0.25, a CPU-sized
         real suite: 13 cells (1 dense + 6 methods x 2 ratios), each scoring PIQA, ARC-Easy and WinoGrande
         on a seeded subset of 50 documents (the same for every cell; --subset first for the first 50),
         8 windows x 256 tokens of the C4 sample, and a 32 + 32 token latency probe (3 repeats);
         calibration is 32 x 128 Wikipedia tokens, captured once per run. On a 2-core AVX2 CPU in fp32
         it took about 21 minutes from a cold cache before the evaluation engine; the engine cuts the
         accuracy share, the rest (downloads, conversion, calibration, training, perplexity, latency)
         is unchanged. Not yet re-measured on a quiet machine.
paper    the zero-shot suite of the pruning papers (LLM-Pruner, wanda, LLM-Streamline): BoolQ, PIQA,
         HellaSwag, WinoGrande, ARC-e, ARC-c, OpenBookQA at full size, Wikipedia- and C4-sample perplexity
         in 2048-token windows, on every registered model; meant for a GPU.
standard the papers' zero-shot suite for a CPU run of hours, resumable across days: SmolLM2-135M, every
         method at ratios 0.125 and 0.25 with calibration/training seeds 0-2 (0-4 for `random`), the seven
         zero-shot tasks on a seeded 1000-document subset each (whole splits where smaller: OpenBookQA's
         500), Wikipedia- and C4-sample perplexity in 512-token windows (64 each); fp32/bf16 as the host.
nightly  fixed batch sizes, limits and dtype so numbers are comparable night to night (lm-eval scores move
         with batch size and padding), for `bench regress` against a baseline.
"""

from __future__ import annotations

import copy
from typing import Any

from bench.errors import UnknownNameError

DEFAULT = "quick"

PAPER_TASKS = ["boolq", "piqa", "hellaswag", "winogrande", "arc_easy", "arc_challenge", "openbookqa"]

PRESETS: dict[str, dict[str, Any]] = {
    "quick": {
        "models": ["smollm2-135m"],
        "methods": "all",
        # CPU-sized method settings: Streamline trains its replacement layer on 32 x 128 tokens; LaCo merges
        # pairs of layers (merging 4 SmolLM2 layers drops the final-state similarity to 0.0-0.27, so the
        # search only accepts after many passes of threshold relaxation: over 10 minutes per cell here)
        "method_params": {"streamline": {"train_samples": 32, "train_seq_len": 128},
                          "laco": {"layers_per_merge": 2, "n_sentences": 4}},
        "ratios": [0.125, 0.25],
        "seeds": [0],
        "eval": {
            "tasks": ["piqa", "arc_easy", "winogrande"],
            "limit": 50,
            "num_fewshot": 0,
            "batch_size": 8,
            "perplexity": {"corpora": ["c4"], "window": 256, "max_windows": 8, "batch_size": 4},
            "latency": {"prompt_tokens": 32, "new_tokens": 32, "batch_size": 1, "warmup": 1, "repeats": 3},
            "stability": True,
        },
        "calib": {"source": "wikipedia", "n_samples": 32, "seq_len": 128, "batch_size": 8},
        "device": "auto",
        "dtype": "auto",
    },
    "paper": {
        "models": ["smollm2-135m", "gemma3-270m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"],
        "methods": "all",
        "ratios": [0.125, 0.25],
        "seeds": [0],
        "eval": {
            "tasks": PAPER_TASKS,
            "limit": None,
            "num_fewshot": 0,
            "batch_size": 32,
            "perplexity": {"corpora": ["wikipedia", "c4"], "window": 2048, "max_windows": None, "batch_size": 4},
            "latency": {"prompt_tokens": 128, "new_tokens": 64, "batch_size": 1, "warmup": 2, "repeats": 5},
            "stability": True,
        },
        "calib": {"source": "wikipedia", "n_samples": 64, "seq_len": 128, "batch_size": 8},
        "device": "auto",
        "dtype": "auto",
    },
    "standard": {
        "models": ["smollm2-135m"],
        "methods": "all",
        "method_params": {"laco": {"layers_per_merge": 2, "n_sentences": 4}},
        "ratios": [0.125, 0.25],
        "seeds": [0, 1, 2],
        "method_seeds": {"random": [0, 1, 2, 3, 4]},
        "eval": {
            "tasks": PAPER_TASKS,
            "limit": 1000,
            "subset": "random",
            "subset_seed": 0,
            "num_fewshot": 0,
            "batch_size": 8,
            "perplexity": {"corpora": ["wikipedia", "c4"], "window": 512, "max_windows": 64, "batch_size": 4},
            "latency": {"prompt_tokens": 64, "new_tokens": 32, "batch_size": 1, "warmup": 1, "repeats": 3},
            "stability": True,
        },
        "calib": {"source": "wikipedia", "n_samples": 64, "seq_len": 128, "batch_size": 8},
        "device": "auto",
        "dtype": "auto",
    },
    "nightly": {
        "models": ["smollm2-135m"],
        "methods": "all",
        "ratios": [0.125, 0.25],
        "seeds": [0],
        "eval": {
            "tasks": ["piqa", "arc_easy", "winogrande", "hellaswag", "boolq"],
            "limit": 200,
            "num_fewshot": 0,
            "batch_size": 16,
            "perplexity": {"corpora": ["wikipedia", "c4"], "window": 512, "max_windows": 32, "batch_size": 4},
            "latency": {"prompt_tokens": 64, "new_tokens": 32, "batch_size": 1, "warmup": 2, "repeats": 5},
            "stability": True,
        },
        "calib": {"source": "wikipedia", "n_samples": 64, "seq_len": 128, "batch_size": 8},
        "device": "auto",
        "dtype": "float32",
    },
}


def names() -> list[str]:
    return list(PRESETS)


def get(name: str) -> dict[str, Any]:
    """A deep copy of preset `name` (unknown names raise with a suggestion)."""
    if name not in PRESETS:
        raise UnknownNameError("preset", name, PRESETS)
    return copy.deepcopy(PRESETS[name])
