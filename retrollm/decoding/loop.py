"""A plain batched greedy generation loop: left padding, the HF KV cache, one forward pass
per step, and a controller that decides every row's next token.

Why not `model.generate` with a LogitsProcessor: the controller must see which token was
chosen to advance its index states, wants only the rows still running (finished rows are
dropped from the batch and its cache, so a long evidence does not make the whole batch pay
for finished rows), and forced tokens are simply tokens it chooses regardless of logits.
Jump-forward over forced tokens can later replace a step with a multi-token feed here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
from transformers import DynamicCache


class Controller(Protocol):
    """Decides tokens; the loop only runs the model."""

    def step(self, rows: Sequence[int], logits: np.ndarray) -> list[int]:
        """Next token for each active row, given its last-position logits (fp32 numpy)."""
        ...

    def finished(self, row: int) -> bool:
        """True once a row needs no more forward passes (its last token is not fed)."""
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


@torch.inference_mode()
def greedy_loop(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    pad_id: int,
    controller: Controller,
    max_steps: int,
) -> LoopStats:
    """Run until every row is finished (or max_steps, a safety net the controller's own
    budget should never hit). Each prompt must hold at least one token."""
    if any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token")
    stats = LoopStats()
    input_ids, mask = left_pad(prompts, pad_id)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    next_position = positions[:, -1] + 1
    active = list(range(len(prompts)))
    cache = DynamicCache()
    logits = _forward(model, input_ids, mask, positions, cache, controller, active, stats)
    for _ in range(max_steps):
        started = time.perf_counter()
        tokens = controller.step(active, logits)
        keep = [i for i, row in enumerate(active) if not controller.finished(row)]
        stats.control_seconds += time.perf_counter() - started
        if not keep:
            return stats
        if len(keep) < len(active):
            index = torch.as_tensor(keep, dtype=torch.long)
            cache.batch_select_indices(index)
            mask, next_position = mask[index], next_position[index]
            active = [active[i] for i in keep]
            tokens = [tokens[i] for i in keep]
        step_ids = torch.as_tensor(tokens, dtype=torch.long).unsqueeze(1)
        mask = torch.cat([mask, torch.ones((len(active), 1), dtype=mask.dtype)], dim=1)
        logits = _forward(
            model, step_ids, mask, next_position.unsqueeze(1), cache, controller, active, stats
        )
        next_position = next_position + 1
    raise RuntimeError(f"greedy_loop: rows {active} still running after {max_steps} steps")


def _forward(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    mask: torch.Tensor,
    positions: torch.Tensor,
    cache: DynamicCache,
    controller: Controller,
    active: list[int],
    stats: LoopStats,
) -> np.ndarray:
    started = time.perf_counter()
    out = model(
        input_ids=input_ids,
        attention_mask=mask,
        position_ids=positions,
        cache=cache,
        use_cache=True,
        logits_to_keep=1,
    )
    logits = out.logits[:, -1, :].float().numpy()
    seconds = time.perf_counter() - started
    stats.forward_passes += 1
    stats.forward_seconds += seconds
    stats.batch_sizes.append(len(active))
    controller.record_forward(active, seconds)
    return logits
