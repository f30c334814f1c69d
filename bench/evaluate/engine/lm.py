"""PrefixLM: lm-eval's HFLM with a faster `_loglikelihood_tokens`, and the same numbers.

lm-eval still tokenizes (HFLM's own `loglikelihood`/`_encode_pair`: the context/continuation split,
trailing whitespace, BOS, the empty-context prefix token), builds the requests and computes the metrics;
only the scoring of token sequences is replaced:

- requests that share their prefix are one row (`packing`): the context runs once, each continuation
  after it with positions and a 4-D mask that reproduce its own sequence exactly;
- the LM head and log-softmax run on the scored positions only (HFLM runs them on every position);
- with a `Reuse`, rows start from the dense model's stored states at the deepest boundary the model
  shares with it (`states`), and store the boundaries asked for.

Every call checks its first batch against HFLM's own path (up to `CHECK_REQUESTS` requests): a
log-likelihood off by more than the tolerance (fp32: 1e-3 absolute + 1e-4 relative; half precision:
0.5 + 0.05) switches that LM to HFLM's path for good, with a warning. Attention implementations other
than sdpa and eager, non-causal backends and layer types other than full/sliding attention take HFLM's
path from the start.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from bench.evaluate.engine import packing
from bench.evaluate.engine.states import BoundaryStates, recording, stubbed
from bench.evaluate.lm_eval_glue import counting_hflm_class

log = logging.getLogger(__name__)

CHECK_REQUESTS = 4
MAX_BATCH_TOKENS = 16384
# query-key pairs per head in one batch (rows x width²): 8 rows of 2,048 tokens. The 4-D mask takes sdpa's
# math path, which holds the attention weights of every head: a batch of 4 rows of 4,000 tokens (BoolQ's
# longest contexts, scored whole for stability) held gigabytes per layer; typical rows never reach the cap
MAX_BATCH_ATTENTION = 8 * 2048 * 2048
# tokens of one packed row at most (one context's continuations always share a row)
MAX_ROW_TOKENS = 2048
HEAD_POSITIONS = 2048  # scored positions per LM-head chunk (bounds the logits' memory, not the numbers)


@dataclass
class Reuse:
    """How a model shares the dense model's layers: it runs from the stored states of any boundary
    <= `shared` (the number of leading layers it shares), and stores the `record` boundaries (each
    <= `shared`; in priority order) while the budget allows, at most `share` of it per call."""

    states: BoundaryStates
    shared: int
    record: tuple[int, ...] = ()
    share: float = 1.0


@dataclass
class EngineStats:
    rows: int = 0
    row_tokens: int = 0
    requests: int = 0
    start_boundaries: Counter = field(default_factory=Counter)   # boundary -> rows started there
    recorded: list[int] = field(default_factory=list)
    checked: int = 0
    max_abs_diff: float = 0.0
    fallback: str | None = None

    def to_dict(self) -> dict:
        return {"rows": self.rows, "row_tokens": self.row_tokens, "requests": self.requests,
                "start_boundaries": {str(k): v for k, v in sorted(self.start_boundaries.items())},
                "recorded": sorted(set(self.recorded)), "checked_requests": self.checked,
                "check_max_abs_diff": self.max_abs_diff, "fallback": self.fallback}


def bisection_order(n_layers: int) -> list[int]:
    """Boundaries 1..n-1, coarse to fine (middle, quarters, eighths, ...): what to store when the
    boundaries later cells need are not known yet."""
    out, seen, parts = [], set(), 2
    while len(seen) < n_layers - 1 and parts <= 2 * n_layers:
        for i in range(1, parts):
            b = round(i * n_layers / parts)
            if 0 < b < n_layers and b not in seen:
                seen.add(b)
                out.append(b)
        parts *= 2
    return out + [b for b in range(1, n_layers) if b not in seen]


@functools.cache
def prefix_lm_class():
    class PrefixLM(counting_hflm_class()):
        def __init__(self, *args, reuse: Reuse | None = None, **kwargs):
            super().__init__(*args, **kwargs)
            self.reuse = reuse
            self.stats = EngineStats()
            self._checked = False
            reason = self._unsupported()
            if reason:
                self.stats.fallback = reason
                log.warning("evaluation engine: %s; scoring with lm-eval's HFLM path", reason)

        # ---------------------------------------------------------------------------------- support

        def _unsupported(self) -> str | None:
            if self.backend != "causal":
                return f"backend {self.backend!r} is not causal"
            impl = getattr(self.model.config, "_attn_implementation", None)
            if impl not in ("sdpa", "eager"):
                return f"attention implementation {impl!r} takes no 4-D mask"
            types = set(getattr(self.model.config, "layer_types", None) or ())
            if types - {"full_attention", "sliding_attention"}:
                return f"layer types {sorted(types)}"
            return None

        def _mask(self, groups):
            config = self.model.config
            types = set(getattr(config, "layer_types", None) or ())
            window = getattr(config, "sliding_window", None)
            full = packing.tensors(groups, self.device)
            if not types:
                batch = packing.tensors(groups, self.device, sliding_window=window) if window else full
                return batch, self._as_mask(batch.allowed)
            masks = {"full_attention": self._as_mask(full.allowed)}
            if "sliding_attention" in types:
                masks["sliding_attention"] = self._as_mask(
                    packing.tensors(groups, self.device, sliding_window=window).allowed)
            return full, masks

        def _as_mask(self, allowed: torch.Tensor) -> torch.Tensor:
            if self.model.config._attn_implementation == "sdpa":
                return allowed
            dtype = self.model.dtype
            return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(
                ~allowed, torch.finfo(dtype).min)

        # --------------------------------------------------------------------------------- scoring

        def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs: int | None = None):
            if self.stats.fallback is not None or not requests:
                return super()._loglikelihood_tokens(requests, disable_tqdm=disable_tqdm, override_bs=override_bs)
            groups = packing.group_requests(requests, self.max_length, MAX_ROW_TOKENS)
            rows = override_bs or (self.batch_size if isinstance(self.batch_size, int) else 8)
            record = self._reserve(groups)
            results: list[tuple[float, bool] | None] = [None] * len(requests)
            for batch in packing.batches(groups, rows, MAX_BATCH_TOKENS, MAX_BATCH_ATTENTION):
                try:
                    scored = self._score(batch, record)
                except Exception as exc:  # noqa: BLE001 - a model the 4-D mask path does not fit
                    if self._checked:
                        raise
                    self._checked = True
                    self.stats.fallback = f"the first batch failed: {type(exc).__name__}: {exc}"
                    log.warning("evaluation engine: %s; scoring with lm-eval's HFLM path", self.stats.fallback)
                    self._discard(record)
                    return super()._loglikelihood_tokens(requests, disable_tqdm=disable_tqdm,
                                                         override_bs=override_bs)
                for group, scores in zip(batch, scored, strict=True):
                    for index, block in zip(group.requests, group.members, strict=True):
                        results[index] = scores[block]
                        request_str = requests[index][0]
                        if request_str is not None:
                            self.cache_hook.add_partial("loglikelihood", request_str, scores[block])
                if not self._checked and not self._check(requests, batch, results):
                    self._discard(record)
                    return super()._loglikelihood_tokens(requests, disable_tqdm=disable_tqdm,
                                                         override_bs=override_bs)
            self.stats.requests += len(requests)
            return results

        def _reserve(self, groups) -> list[int]:
            if self.reuse is None:
                return []
            states, keys = self.reuse.states, [g.key for g in groups]
            per_boundary = sum(g.length for g in groups) * self.model.config.hidden_size * self.model.dtype.itemsize
            allowance = self.reuse.share * states.max_bytes
            out = []
            for b in self.reuse.record:
                if 0 < b <= self.reuse.shared and not states.has(b, keys) and per_boundary * (len(out) + 1) <= allowance:
                    if not states.reserve(b, per_boundary):
                        break
                    out.append(b)
            self.stats.recorded += out
            return out

        def _discard(self, record: list[int]) -> None:
            """Drop what this call stored (it may come from states the check just refused)."""
            for b in record:
                self.reuse.states.discard(b)
            self.stats.recorded = [b for b in self.stats.recorded if b not in record]

        @torch.no_grad()
        def _score(self, groups, record: list[int]) -> list[list[tuple[float, bool]]]:
            model = self.model
            keys = [g.key for g in groups]
            start = self.reuse.states.deepest(keys, self.reuse.shared) if self.reuse else 0
            batch, mask = self._mask(groups)
            width = batch.input_ids.shape[1]
            boundary_states = (self.reuse.states.batch(start, keys, width, self.device, model.dtype)
                               if start else None)
            wanted = [b for b in record if b > start]
            sink: dict[int, torch.Tensor] = {}
            autocast = functools.partial(torch.autocast, device_type=self.device.type,
                                         dtype=self.mixed_precision_dtype,
                                         enabled=self.mixed_precision_dtype is not None)
            with autocast(), stubbed(model, start, boundary_states), recording(model, wanted, sink):
                out = model.base_model(input_ids=batch.input_ids, attention_mask=mask,
                                       position_ids=batch.position_ids, use_cache=False)
                hidden = out[0]
                for b in wanted:
                    for r, g in enumerate(groups):
                        self.reuse.states.put(b, g.key, sink[b][r, : g.length].detach().to("cpu", copy=True))
            del out, sink
            rows, cols, targets, spans = [], [], [], []
            for r, g in enumerate(groups):
                spans.append([])
                for b, block in enumerate(g.blocks):
                    positions = g.scored_positions(b)
                    spans[-1].append((len(targets), len(targets) + len(block)))
                    rows += [r] * len(positions)
                    cols += positions
                    targets += block
            token_lp, greedy = [], []
            cap = getattr(model.config, "final_logit_softcapping", None)
            for a in range(0, len(targets), HEAD_POSITIONS):
                # the LM head and log-softmax over at most HEAD_POSITIONS scored positions at a time: a batch
                # of whole contexts scored (stability's question-plus-answer spread) would otherwise hold
                # MAX_BATCH_TOKENS x vocabulary floats twice (3.2 GB each for a 49K vocabulary in fp32)
                z = a + HEAD_POSITIONS
                index = (torch.tensor(rows[a:z], device=hidden.device), torch.tensor(cols[a:z], device=hidden.device))
                with autocast():
                    logits = model.get_output_embeddings()(hidden[index])
                if cap:
                    logits = torch.tanh(logits / cap) * cap
                logprobs = F.log_softmax(logits, dim=-1, dtype=self.softmax_dtype)
                del logits
                target = torch.tensor(targets[a:z], device=logprobs.device)
                token_lp += logprobs.gather(1, target[:, None]).squeeze(1).tolist()
                greedy += (logprobs.argmax(dim=-1) == target).tolist()
                del logprobs
            self.stats.rows += len(groups)
            self.stats.row_tokens += sum(batch.lengths)
            self.stats.start_boundaries[start] += len(groups)
            return [[(float(sum(token_lp[a:z])), bool(all(greedy[a:z]))) for a, z in row] for row in spans]

        def _check(self, requests, batch, results) -> bool:
            """The first batch's first requests against HFLM's own path; False (and the fallback set)
            when they differ by more than the tolerance."""
            # HFLM asserts a continuation fits its context window; the engine scores longer ones (as HFLM
            # would fail to), so only requests HFLM can score are compared, and a batch without any
            # leaves the check to the next batch
            picked = [i for g in batch for i in g.requests if len(requests[i][2]) <= self.max_length]
            picked = picked[:CHECK_REQUESTS]
            if not picked:
                return True
            self._checked = True
            plain = super()._loglikelihood_tokens([(None, *requests[i][1:]) for i in picked], disable_tqdm=True)
            low = self.model.dtype in (torch.float16, torch.bfloat16)
            atol, rtol = (0.5, 0.05) if low else (1e-3, 1e-4)
            for i, (ll, greedy) in zip(picked, plain, strict=True):
                diff = abs(results[i][0] - ll)
                self.stats.max_abs_diff = max(self.stats.max_abs_diff, diff)
                if diff > atol + rtol * abs(ll) or (not low and results[i][1] != greedy):
                    self.stats.fallback = (f"the engine's log-likelihood {results[i][0]:.6f} differs from "
                                           f"HFLM's {ll:.6f}")
                    log.warning("evaluation engine: %s; scoring with lm-eval's HFLM path", self.stats.fallback)
                    return False
            self.stats.checked += len(picked)
            return True

    return PrefixLM
