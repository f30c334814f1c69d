"""Shared fixtures for the runner, store, CLI and Slurm tests: a tiny local model folder, a local text corpus
and a run YAML for a perplexity-only suite, so `bench run` works offline in seconds. (No tests here.)"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from methods.base import Budget, Pruner

REPO = Path(__file__).resolve().parent.parent


@dataclass
class TinyEnv:
    model: Path
    corpus: Path
    root: Path

    def config(self, path: Path, **over) -> Path:
        """A run YAML over the quick preset: tiny model, local calibration and perplexity, no tasks."""
        data = {
            "models": [str(self.model)], "methods": ["shortgpt", "last"], "layers": [1],
            "eval": {"tasks": [], "limit": None, "batch_size": 2, "latency": None, "stability": True,
                     "perplexity": {"corpora": [str(self.corpus)], "window": 32, "max_windows": 2, "batch_size": 2}},
            "calib": {"source": str(self.corpus), "n_samples": 4, "seq_len": 32, "batch_size": 4},
            "device": "cpu", "dtype": "float32",
        }
        for key, value in over.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        path.write_text(yaml.safe_dump(data))
        return path


@pytest.fixture(scope="session")
def tiny_env(tmp_path_factory) -> TinyEnv:
    from tiny import CORPUS, tiny_model

    root = tmp_path_factory.mktemp("tiny_env")
    model, tok = tiny_model("llama", n_layers=4)
    folder = root / "tiny-llama"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    corpus = root / "corpus.txt"
    corpus.write_text("\n\n".join(CORPUS))
    return TinyEnv(folder, corpus, root)


def subprocess_env(**extra) -> dict[str, str]:
    """The environment for a `bench` subprocess: this checkout first on the path, offline, quiet."""
    env = dict(os.environ)
    env.update(PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]), CI="1", HF_HUB_OFFLINE="1",
               HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    env.update(extra)
    return env


PYTHON = sys.executable


class Boom(Pruner):
    """A method that fails the way healing fails: NaN loss (TrainingError), after a valid plan."""

    name = "boom"
    title = "always fails"
    paper = ""
    needs_calibration = False
    may_train = True
    trains = True

    def plan(self, model, calib, budget: Budget):
        return self.removal_plan(model, budget, [0], {}, None)

    def heal(self, model, plan, data):
        from bench.core.errors import TrainingError

        raise TrainingError("training diverged: loss is NaN at step 3", "lower the learning rate")


@pytest.fixture
def boom_method():
    import methods

    methods.register(Boom)
    try:
        yield "boom"
    finally:
        methods.unregister("boom")
