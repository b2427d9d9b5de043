"""Top-k selection shared by every retriever: one tie rule for all rankings."""

from __future__ import annotations

import numpy as np


def top_k(scores: np.ndarray, k: int, positive_only: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Indices (int64) and scores (float32) of the k best entries, best first.

    Equal scores go to the lower index, so rankings are reproducible across runs and
    machines. `positive_only` drops zero scores: for sparse retrievers a zero means
    "no term in common", which is not a retrieved document.
    """
    scores = np.asarray(scores)
    candidates = np.flatnonzero(scores > 0) if positive_only else np.arange(scores.shape[0])
    if k <= 0:
        candidates = candidates[:0]
    elif candidates.size > k:
        # Keep everything tied with the k-th best score, then order exactly.
        kth = np.partition(scores[candidates], candidates.size - k)[candidates.size - k]
        candidates = candidates[scores[candidates] >= kth]
    order = np.lexsort((candidates, -scores[candidates]))[: max(k, 0)]
    chosen = candidates[order].astype(np.int64)
    return chosen, scores[chosen].astype(np.float32)
