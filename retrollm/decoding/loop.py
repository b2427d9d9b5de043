"""A plain batched greedy generation loop: left padding, the HF KV cache, and a controller
that decides every row's next token; with jump-forward, many forced tokens per pass.

Why not `model.generate` with a LogitsProcessor: the controller must see which token was
chosen to advance its index states, wants only the rows still running (finished rows are
dropped from the batch and its cache, so a long evidence does not make the whole batch pay
for finished rows), and forced tokens are simply tokens it chooses regardless of logits.

Jump-forward: after choosing a row's token, the controller may propose a draft, tokens it
expects to follow (forced text; the rest of an evidence whose prefix occurs at one place
only). The loop feeds token and draft as one chunk, reads the logits at every position, and
asks the controller for its choice at each position in turn, exactly as step-by-step
decoding would: the draft is accepted up to the first position where the choice differs
(a stop token, or another token under the eq. 12 bonus), and that choice is the row's next
token. Rejected draft tokens stay in the KV cache but are masked out for good (holes in the
attention mask; positions are explicit, so the next token takes the first rejected
position). Rows of a batch jump by different lengths; shorter chunks are padded and masked.
Once holes are most of the cache, it is compacted: each row's live cells are moved to the
right end, as in left padding (keys carry their rotary positions, so moving them is free).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch
from transformers import DynamicCache

from retrollm.decoding.forward import ModelForward
from retrollm.decoding.scores import ForwardOutput, StepScores


class Controller(Protocol):
    """Decides tokens; the loop only runs the model."""

    def step(self, rows: Sequence[int], scores: StepScores) -> list[int]:
        """Next token for each given row, from the scores after its latest token
        (`scores.pick` under a rule, or `scores[i]`, view row i's whole fp32 logit row)."""
        ...

    def finished(self, row: int) -> bool:
        """True once a row needs no more forward passes (its last token is not fed)."""
        ...

    def draft(self, row: int) -> Sequence[int]:
        """Tokens expected to follow the row's latest choice (may be empty). A guess only:
        the loop keeps those the controller's own step then chooses, nothing else."""
        ...

    def record_forward(self, rows: Sequence[int], seconds: float) -> None:
        """Called after every forward pass with the rows it served and its wall time."""
        ...


@dataclass
class LoopStats:
    forward_passes: int = 0
    forward_seconds: float = 0.0
    control_seconds: float = 0.0
    batch_sizes: list[int] = field(default_factory=list)
    fed_tokens: int = 0  # chunk cells fed, padding included
    drafted_tokens: int = 0
    accepted_tokens: int = 0  # drafted tokens the controller then chose
    compactions: int = 0  # times the cache was rebuilt without its holes


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask), prompts right-aligned so every row's next token is at
    the same column."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        if prompt:
            ids[row, width - len(prompt) :] = torch.as_tensor(list(prompt), dtype=torch.long)
            mask[row, width - len(prompt) :] = 1
    return ids, mask


def right_pad(chunks: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) of chunks fed after the cache, padding at the right."""
    width = max(len(c) for c in chunks)
    ids = torch.full((len(chunks), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(chunks), width), dtype=torch.long)
    for row, chunk in enumerate(chunks):
        ids[row, : len(chunk)] = torch.as_tensor(list(chunk), dtype=torch.long)
        mask[row, : len(chunk)] = 1
    return ids, mask


@torch.inference_mode()
def greedy_loop(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    pad_id: int,
    controller: Controller,
    max_steps: int,
    max_jump: int = 0,
    call_cost: float = 0.0,
    forward: ModelForward | None = None,
) -> LoopStats:
    """Run until every row is finished (or max_steps forward passes, a safety net the
    controller's own budget should never hit). Each prompt must hold at least one token.
    max_jump: most draft tokens fed after a chosen token in one pass (0: one token per
    pass, plain greedy decoding). call_cost: a forward call's fixed cost in fed cells
    (see chunk_width). forward: how the model runs (default: its head split off, on the
    model's device); token ids, masks and the cache live on that device."""
    if any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token")
    forward = forward if forward is not None else ModelForward(model)
    device = forward.device
    stats = LoopStats()
    input_ids, mask = (t.to(device) for t in left_pad(prompts, pad_id))
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    next_position = positions[:, -1] + 1
    active = list(range(len(prompts)))
    cache = DynamicCache()
    logits = _forward(forward, input_ids, mask, positions, 1, cache, controller, active, stats)
    drafts: list[Sequence[int]] = [() for _ in active]
    after_prefill = True
    for _ in range(max_steps):
        started = time.perf_counter()
        tokens, kept = _verify(controller, active, drafts, logits, stats)
        if not after_prefill:  # the last forward fed a chunk per row: settle it
            base = mask.shape[1] - logits.keep
            for i, count in enumerate(kept):
                if count < logits.keep:
                    mask[i, base + count :] = 0  # rejected draft tokens (padding already is)
            next_position = next_position + torch.as_tensor(kept, device=device)
            if int(mask.sum()) * 2 < mask.numel():
                compacted = _compact(cache, mask)
                stats.compactions += compacted.shape[1] < mask.shape[1]
                mask = compacted
        after_prefill = False
        keep = [i for i, row in enumerate(active) if not controller.finished(row)]
        if not keep:
            stats.control_seconds += time.perf_counter() - started
            return stats
        if len(keep) < len(active):
            index = torch.as_tensor(keep, dtype=torch.long, device=device)
            cache.batch_select_indices(index)
            mask, next_position = mask[index], next_position[index]
            active = [active[i] for i in keep]
            tokens = [tokens[i] for i in keep]
        drafts = [list(controller.draft(row))[:max_jump] if max_jump else () for row in active]
        if max_jump:
            width = chunk_width([1 + len(d) for d in drafts], call_cost)
            drafts = [d[: width - 1] for d in drafts]
        stats.control_seconds += time.perf_counter() - started
        chunk_ids, chunk_mask = (
            t.to(device)
            for t in right_pad(
                [[token, *draft] for token, draft in zip(tokens, drafts, strict=True)], pad_id
            )
        )
        width = chunk_ids.shape[1]
        mask = torch.cat([mask, chunk_mask], dim=1)
        offsets = torch.arange(width, device=device).unsqueeze(0)
        chunk_positions = next_position.unsqueeze(1) + offsets
        logits = _forward(
            forward, chunk_ids, mask, chunk_positions, width, cache, controller, active, stats
        )
        stats.fed_tokens += int(chunk_ids.numel())
        stats.drafted_tokens += sum(len(d) for d in drafts)
    raise RuntimeError(f"greedy_loop: rows {active} still running after {max_steps} steps")


def chunk_width(lengths: Sequence[int], call_cost: float) -> int:
    """How wide the next chunk is: the width W that feeds the most wanted cells per unit
    of cost, sum(min(length, W)) / (call_cost + rows * W). A chunk costs its fixed call
    cost plus every cell, padding included; one row with a long draft must not make the
    whole batch pay for padding. One row: always its whole draft (call_cost > 0)."""
    best_width, best_rate = 1, -1.0
    for width in sorted(set(lengths)):
        wanted = sum(min(length, width) for length in lengths)
        rate = wanted / (call_cost + len(lengths) * width)
        if rate > best_rate + 1e-12:
            best_width, best_rate = width, rate
    return best_width


def _verify(
    controller: Controller,
    active: list[int],
    drafts: Sequence[Sequence[int]],
    logits: ForwardOutput,
    stats: LoopStats,
) -> tuple[list[int], list[int]]:
    """Walk the last chunk position by position with the controller's own step. Returns
    each row's next token to feed and how many tokens of its chunk stay in the cache
    (its chosen token plus the accepted draft)."""
    tokens = [-1] * len(active)
    kept = [0] * len(active)
    live = list(range(len(active)))
    depth = 0
    while live:
        chosen = controller.step([active[i] for i in live], logits.at(live, depth))
        still = []
        for i, token in zip(live, chosen, strict=True):
            draft = drafts[i]
            if depth < len(draft) and token == draft[depth] and not controller.finished(active[i]):
                still.append(i)  # already fed as the chunk's next cell
                stats.accepted_tokens += 1
            else:
                tokens[i], kept[i] = token, depth + 1
        live = still
        depth += 1
    return tokens, kept


def _compact(cache: DynamicCache, mask: torch.Tensor) -> torch.Tensor:
    """Drop the cache's masked cells; each row's live cells keep their order, right
    aligned. Returns the new attention mask (the old one where a layer slides a window
    over cache cells, which moving cells would change)."""
    if any(getattr(layer, "is_sliding", False) for layer in cache.layers):
        return mask
    live = mask.sum(dim=1)
    width = int(live.max())
    # Stable sort puts each row's masked cells first, live cells last in their order.
    order = torch.sort(mask, dim=1, stable=True).indices[:, -width:]
    for layer in cache.layers:
        index = order[:, None, :, None].expand(-1, layer.keys.shape[1], -1, layer.keys.shape[3])
        layer.keys = torch.gather(layer.keys, 2, index)
        layer.values = torch.gather(layer.values, 2, index)
    return torch.gather(mask, 1, order)


def _forward(
    forward: ModelForward,
    input_ids: torch.Tensor,
    mask: torch.Tensor,
    positions: torch.Tensor,
    keep: int,
    cache: DynamicCache,
    controller: Controller,
    active: list[int],
    stats: LoopStats,
) -> ForwardOutput:
    """The last `keep` positions of every row (hidden states, or logits: see forward.py)."""
    started = time.perf_counter()
    out = forward(input_ids, mask, positions, keep, cache)
    if out.device.type == "cuda":
        torch.cuda.synchronize(out.device)  # the timing is the pass's, not its launch's
    seconds = time.perf_counter() - started
    stats.forward_passes += 1
    stats.forward_seconds += seconds
    stats.batch_sizes.append(len(active))
    controller.record_forward(active, seconds)
    return out
