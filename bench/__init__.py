"""The reference benchmark for LLM layer pruning."""

import logging

__version__ = "0.1.0"

logging.getLogger("bench").addHandler(logging.NullHandler())
