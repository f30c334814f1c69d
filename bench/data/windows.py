"""How a token stream is cut into perplexity windows: one rule, read by the perplexity evaluation
(bench.evaluate.windowed_perplexity) and by the training-data split (bench.data.training_text), which must know
where the evaluation's last window ends so that training text is never scored."""

from __future__ import annotations

import torch

from bench.core.errors import ConfigError


def make_windows(ids: torch.Tensor, window: int, *, max_windows: int | None = None,
                 max_tokens: int | None = None, bos_id: int | None = None) -> torch.Tensor:
    """(n, window) non-overlapping windows from the start of `ids`; with `bos_id`, each window is BOS +
    window - 1 corpus tokens. The caps keep the first windows."""
    if window < 2:
        raise ConfigError(f"perplexity window {window} is too short", "use a window of at least 2 tokens")
    step = window - 1 if bos_id is not None else window
    n = ids.numel() // step
    if max_windows is not None:
        n = min(n, max_windows)
    if max_tokens is not None:
        n = min(n, max(1, max_tokens // window))
    if n == 0:
        raise ConfigError(f"the corpus has {ids.numel()} tokens, fewer than one window of {window}",
                          "use a shorter window")
    out = ids[: n * step].view(n, step)
    if bos_id is not None:
        out = torch.cat([torch.full((n, 1), bos_id, dtype=ids.dtype), out], dim=1)
    return out


def tokenizer_adds_bos(tokenizer) -> bool:
    """Whether the tokenizer, left to its own defaults, starts a text with its BOS token (Gemma's does,
    SmolLM2's GGUF tokenizer does not): the convention the model was trained with."""
    bos = tokenizer.bos_token_id
    if bos is None:
        return False
    return tokenizer("a", verbose=False)["input_ids"][:1] == [bos]


def resolve_add_bos(tokenizer, add_bos: bool | None) -> bool:
    """`None` (the default): BOS first exactly when the tokenizer adds one by itself. The one BOS rule of
    evaluation (perplexity, bits per byte), calibration and training windows."""
    if add_bos is None:
        return tokenizer_adds_bos(tokenizer)
    if add_bos and tokenizer.bos_token_id is None:
        raise ConfigError("add_bos was asked for but the tokenizer has no BOS token", "leave add_bos unset (auto)")
    return add_bos
