"""The evaluation engine: lm-eval's multiple-choice scoring at a fraction of the cost, same numbers.

- `packing`: requests sharing a prefix become one row (the context once, each continuation after it);
- `states`: the dense model's hidden states at layer boundaries, reused by pruned models that share
  the layers before them (`first_changed_layer`, `shared_prefix`, `BoundaryStates`, bounded in bytes);
- `lm`: `PrefixLM`, lm-eval's HFLM with that scoring behind its `LM` interface, checked against HFLM's
  own path on each call's first batch.
"""

from bench.evaluate.engine.lm import EngineStats, Reuse, bisection_order, prefix_lm_class
from bench.evaluate.engine.states import BoundaryStates, first_changed_layer, shared_prefix

__all__ = ["BoundaryStates", "EngineStats", "Reuse", "bisection_order", "first_changed_layer", "prefix_lm_class",
           "shared_prefix"]
