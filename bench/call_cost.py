"""Measure `decode.jump_call_cost` on this device: a forward call's fixed cost in fed cells.

The decoder widens a batch's chunk only where the forward calls it saves outweigh the
padding it feeds (loop.chunk_width), which needs the ratio of a call's fixed cost to one
cell's cost. Both depend on the device: on a CPU a cell costs its matmuls, on a GPU cells
are nearly free up to the width that fills it. So the ratio is measured, on the model the
decoder runs and the way it runs it (ModelForward: head split off or not): chunks of
several widths are fed after a cache of `context` cells per row, and a line
time = call + cell * rows * width is fitted by least squares over the widths.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from transformers import DynamicCache

from retrollm.decoding.forward import ModelForward

WIDTHS = (1, 2, 4, 8, 16, 32)


@torch.inference_mode()
def measure_call_cost(
    forward: ModelForward,
    rows: int,
    context: int = 200,
    widths: Sequence[int] = WIDTHS,
    repeats: int = 3,
    vocab: int = 1000,
) -> dict[str, Any]:
    """{"jump_call_cost": cells, "call_ms": fixed ms per call, "cell_ms": ms per cell}.
    The fastest of `repeats` runs counts for each width (other load only slows down)."""
    device = forward.device
    generator = torch.Generator().manual_seed(0)
    prompt = torch.randint(10, vocab, (rows, context), generator=generator).to(device)
    cache = DynamicCache()
    full = torch.ones(rows, context, dtype=torch.long, device=device)
    positions = torch.arange(context, device=device).expand(rows, -1)
    forward(prompt, full, positions, 1, cache)
    cells, seconds = [], []
    for width in widths:
        chunk = torch.randint(10, vocab, (rows, width), generator=generator).to(device)
        mask = torch.ones(rows, context + width, dtype=torch.long, device=device)
        at = torch.arange(context, context + width, device=device).expand(rows, -1)
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            forward(chunk, mask, at, width, cache)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            best = min(best, time.perf_counter() - started)
            cache.crop(-width)  # drop the chunk: the next run sees the same cache
        cells.append(rows * width)
        seconds.append(best)
    slope, intercept = np.polyfit(np.asarray(cells, float), np.asarray(seconds, float), 1)
    slope = max(float(slope), 1e-9)
    return {
        "jump_call_cost": round(max(float(intercept), 0.0) / slope, 1),
        "call_ms": round(1000 * float(intercept), 2),
        "cell_ms": round(1000 * slope, 3),
        "rows": rows,
        "context": context,
    }
