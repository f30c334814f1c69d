"""Shared test setup: offline hub, this folder on the path, and fixtures several test files use."""

import os
import sys
from pathlib import Path

import pytest

# lm-eval and datasets must never wait on the hub in tests
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run ~100x faster on one thread than on oversubscribed cores; restored after the module.
    Use with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
