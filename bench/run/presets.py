"""Embedded run presets, in the YAML shape of `RunSpec.to_dict()`; a config file and options go on top.

quick    the default `bench run`: SmolLM2-135M, six methods (shortgpt, streamline, laco, last, angular,
         random), ratios 0.125 and 0.25, a CPU-sized real suite: 13 cells (1 dense + 6 methods x 2
         ratios), each scoring PIQA, ARC-Easy and WinoGrande on a seeded subset of 50 documents (the same
         for every cell; --subset first for the first 50), 4 windows x 256 tokens of the C4 sample, bits
         per byte and KL to dense on whole held-out C4 documents (16 KiB: the first two), and a 32 + 8
         token latency probe at batch size 1 (3 repeats interleaved with dense); calibration is 32 x 128
         Wikipedia tokens, captured once per run. Sized for a 2-core CPU in fp32 (no bf16 units): 522 s
         from a cold cache (`bench run --dtype float32`, 47 s of it the one-time download and conversion).
paper    the zero-shot suite of the pruning papers (LLM-Pruner, wanda, LLM-Streamline): BoolQ, PIQA,
         HellaSwag, WinoGrande, ARC-e, ARC-c, OpenBookQA at full size, Wikipedia- and C4-sample perplexity
         in 2048-token windows, on every registered model; meant for a GPU.
standard the papers' zero-shot suite for a CPU run of hours, resumable across days: SmolLM2-135M, every
         method at ratios 0.125 and 0.25 with calibration/training seeds 0-2 (0-4 for `random`), the seven
         zero-shot tasks on a seeded 1000-document subset each (whole splits where smaller: OpenBookQA's
         500), Wikipedia- and C4-sample perplexity in 512-token windows (64 each), bits per byte and KL on 64
         C4 documents; fp32/bf16 as the host.
nightly  fixed batch sizes, limits and dtype so numbers are comparable night to night (lm-eval scores move
         with batch size and padding), for `bench regress` against a baseline: ten methods at ratio 0.25,
         100 documents of five tasks, fp32. Its committed baseline (reports/baseline-nightly.json) took
         64 min wall (1:04:05, 6,357 s user CPU, 5.4 GiB peak RSS) on a 2-core AMD EPYC without bf16
         units, the 2 cores shared during about 15 of those minutes; the dry run estimated 76 min.
"""

from __future__ import annotations

import copy
from typing import Any

from bench.core.errors import UnknownNameError

DEFAULT = "quick"
FILE = "presets.yaml"  # package data of `bench`


def _load() -> dict[str, dict[str, Any]]:
    """The presets file, checked as a mapping of names to run mappings (each is validated key by key, with
    suggestions, when `bench.run.config.resolve` turns it into a RunSpec; a test builds every preset)."""
    from bench.core import tables

    data = tables.load("bench", FILE)
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise tables.TableError(f"bench/{FILE}: expected a mapping of preset names to run mappings")
    return data


def names() -> list[str]:
    return list(_load())


def get(name: str) -> dict[str, Any]:
    """A deep copy of preset `name` (unknown names raise with a suggestion)."""
    presets = _load()
    if name not in presets:
        raise UnknownNameError("preset", name, presets)
    return copy.deepcopy(presets[name])
