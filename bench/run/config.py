"""The run spec's names in one place, for the modules that build or read a run: the dataclasses
(bench.run.spec), plain data read into them in canonical spelling (bench.run.spec_read), and the preset,
YAML and command-line layers they are built from (bench.run.spec_layers). This module imports no torch.
"""

from __future__ import annotations

from bench.run.spec import (
    ALL,
    EXECUTORS,
    MAX_CELLS,
    MAX_LIST,
    MAX_SEED,
    MAX_YAML_VALUES,
    CalibConfig,
    EvalSpec,
    FidelitySpec,
    LatencySpec,
    MethodSpec,
    ModelSpec,
    PerplexitySpec,
    RunSpec,
    SlurmSpec,
    TrainConfig,
    check_seed,
    option,
)
from bench.run.spec_layers import from_yaml, load_yaml, merge, resolve
from bench.run.spec_read import canonical, canonical_corpus, canonical_method, canonical_model, canonical_task
from bench.run.spec_read import read as from_dict

__all__ = ["ALL", "EXECUTORS", "MAX_CELLS", "MAX_LIST", "MAX_SEED", "MAX_YAML_VALUES", "CalibConfig", "EvalSpec",
           "FidelitySpec", "LatencySpec", "MethodSpec", "ModelSpec", "PerplexitySpec", "RunSpec", "SlurmSpec",
           "TrainConfig", "canonical", "canonical_corpus", "canonical_method", "canonical_model", "canonical_task",
           "check_seed", "from_dict", "from_yaml", "load_yaml", "merge", "option", "resolve"]
