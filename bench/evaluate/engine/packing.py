"""Requests that share a context, packed into one row: the context once, then every continuation.

lm-eval's HFLM scores a request `(context, continuation)` by running `(context + continuation)[:-1]`
(truncated from the left to `max_length + 1` tokens first) and reading the log-probabilities of the last
`len(continuation)` positions. The prefix those positions condition on is therefore
`full[:-len(continuation)]` with `full = (context + continuation)[-(max_length + 1):]`; requests with the
same prefix (a multiple-choice document's choices) form one `Group`.

A group is one row: the prefix, then each distinct continuation minus its last token, each continuation
block numbered from the end of the prefix (`position_ids`) and seeing only the prefix and itself (a 4-D
attention mask). Every continuation is then scored exactly as in its own sequence: the same tokens at
the same positions attend to the same keys. Pure token bookkeeping; tensors are built in `tensors`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch


@dataclass
class Group:
    """Requests sharing one prefix; `blocks` are their distinct continuations, `members[i]` the block of
    request `requests[i]` for each request index in `requests`."""

    prefix: tuple[int, ...]
    blocks: list[tuple[int, ...]] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)
    members: list[int] = field(default_factory=list)

    @property
    def length(self) -> int:
        return len(self.prefix) + sum(len(b) - 1 for b in self.blocks)

    def block_starts(self) -> list[int]:
        starts, at = [], len(self.prefix)
        for block in self.blocks:
            starts.append(at)
            at += len(block) - 1
        return starts

    def tokens(self) -> list[int]:
        out = list(self.prefix)
        for block in self.blocks:
            out += block[:-1]
        return out

    def positions(self) -> list[int]:
        p = len(self.prefix)
        out = list(range(p))
        for block in self.blocks:
            out += range(p, p + len(block) - 1)
        return out

    def segments(self) -> list[int]:
        """0 for the prefix, b + 1 for the tokens of block b."""
        out = [0] * len(self.prefix)
        for b, block in enumerate(self.blocks):
            out += [b + 1] * (len(block) - 1)
        return out

    def scored_positions(self, b: int) -> list[int]:
        """Row positions whose next-token distribution scores block b's tokens, in order."""
        start = self.block_starts()[b]
        return [len(self.prefix) - 1, *range(start, start + len(self.blocks[b]) - 1)]

    @property
    def key(self) -> bytes:
        """What identifies the row's content (the boundary-state cache is keyed by it)."""
        digest = hashlib.sha256()
        for part in (self.prefix, *self.blocks):
            digest.update(len(part).to_bytes(4, "little"))
            digest.update(b"".join(int(t).to_bytes(4, "little", signed=True) for t in part))
        return digest.digest()


def group_requests(requests: Sequence[tuple[object, Sequence[int], Sequence[int]]], max_length: int,
                   max_row: int | None = None) -> list[Group]:
    """lm-eval's `(request_str, context_enc, continuation_enc)` triples -> groups, in first-seen order.

    With `max_row`, a group takes no further block once its row would exceed `max_row` tokens: requests
    sharing a prefix then form several rows. Without it, contexts scored on their own (stability's
    question-plus-answer spread: every request `("", context)`, all sharing the one-token prefix) would be
    one row of every context's tokens, whose attention grows with the square of the whole task."""
    groups: list[Group] = []
    open_group: dict[tuple[int, ...], Group] = {}
    for index, (_, context, continuation) in enumerate(requests):
        continuation = tuple(continuation)
        if not context or not continuation:
            raise ValueError("lm-eval passed an empty context or continuation")
        full = (list(context) + list(continuation))[-(max_length + 1):]
        prefix = tuple(full[:-len(continuation)])
        group = open_group.get(prefix)
        if group is not None and continuation not in group.blocks and max_row is not None \
                and group.blocks and group.length + len(continuation) - 1 > max_row:
            group = None
        if group is None:
            group = open_group[prefix] = Group(prefix)
            groups.append(group)
        if continuation in group.blocks:
            block = group.blocks.index(continuation)
        else:
            block = len(group.blocks)
            group.blocks.append(continuation)
        group.requests.append(index)
        group.members.append(block)
    return groups


def batches(groups: list[Group], rows: int, max_tokens: int | None = None,
            max_attention: int | None = None) -> list[list[Group]]:
    """Longest rows first (padding stays small, a memory error shows at once), `rows` rows per batch at
    most, at most `max_tokens` padded tokens per batch and at most `max_attention` query-key pairs per head
    (rows x width², what the 4-D mask and the attention weights hold) when given; a single row always fits."""
    order = sorted(groups, key=lambda g: (-g.length, g.key))
    out: list[list[Group]] = []
    for group in order:
        current = out[-1] if out else None
        if current is not None:
            n, width = len(current) + 1, current[0].length
            full = (n > rows or (max_tokens is not None and width * n > max_tokens)
                    or (max_attention is not None and width * width * n > max_attention))
        if current is None or full:
            out.append([group])
        else:
            current.append(group)
    return out


@dataclass
class Batch:
    input_ids: torch.Tensor      # [B, T]
    position_ids: torch.Tensor   # [B, T]
    allowed: torch.Tensor        # [B, 1, T, T] bool: query may attend key
    lengths: list[int]


def tensors(groups: list[Group], device, sliding_window: int | None = None, pad_id: int = 0) -> Batch:
    """The padded batch of rows; padded query rows attend only to themselves (no fully masked row)."""
    width = max(g.length for g in groups)
    ids = torch.full((len(groups), width), pad_id, dtype=torch.long)
    pos = torch.zeros((len(groups), width), dtype=torch.long)
    seg = torch.full((len(groups), width), -1, dtype=torch.long)
    for r, g in enumerate(groups):
        n = g.length
        ids[r, :n] = torch.tensor(g.tokens(), dtype=torch.long)
        pos[r, :n] = torch.tensor(g.positions(), dtype=torch.long)
        seg[r, :n] = torch.tensor(g.segments(), dtype=torch.long)
    index = torch.arange(width)
    causal = index[None, :] <= index[:, None]                                   # [T(q), T(k)]
    seg_q, seg_k = seg[:, :, None], seg[:, None, :]
    allowed = causal[None] & (seg_k >= 0) & (seg_q >= 0) & ((seg_k == 0) | (seg_k == seg_q))
    if sliding_window is not None:
        allowed &= (pos[:, :, None] - pos[:, None, :]) < sliding_window
    allowed |= torch.eye(width, dtype=torch.bool)[None] & (seg_q < 0)
    return Batch(ids.to(device), pos.to(device), allowed[:, None].to(device), [g.length for g in groups])
