"""Relevance of every located window of every hypothesis leaving the clue phase together,
with as few scorer calls as the scorer allows.

A bi-encoder's window vector does not depend on the question, and windows are spans of a
fixed corpus, so a window text met before (by another row of the batch, or another
question of the run: popular documents recur) is embedded once and kept in a bounded
least-recently-used table. Each new text is embedded once per batch, whichever rows it
serves, and all of the batch's new texts go to the scorer in one call (sentence-
transformers sorts them by length, so its padding stays small). The score is the cosine
of unit vectors, as BiEncoderScorer.score computes it. Other scorers (a cross-encoder
reads question and window together) are called once per question.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np


class WindowScores:
    """scores(jobs) for (question, window texts) pairs: one float32 array per job."""

    def __init__(self, scorer: Any, cache_size: int = 0) -> None:
        """cache_size: window vectors kept across batches (0: every window is embedded
        every time, duplicates included, as the decoder did before the cache)."""
        self.scorer = scorer
        self.cache_size = cache_size
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self.embedded = 0  # window texts sent to the scorer (for benchmarks)
        self.requested = 0  # window texts asked for

    def __call__(self, jobs: Sequence[tuple[str, Sequence[str]]]) -> list[np.ndarray]:
        self.requested += sum(len(texts) for _, texts in jobs)
        if not any(texts for _, texts in jobs):
            return [np.zeros(0, dtype=np.float32) for _ in jobs]
        embed = getattr(self.scorer, "embed", None)
        if embed is None:
            self.embedded += sum(len(texts) for _, texts in jobs)
            return [
                np.asarray(self.scorer.score(q, t), dtype=np.float32)
                if t
                else np.zeros(0, np.float32)
                for q, t in jobs
            ]
        questions = sorted({q for q, texts in jobs if texts})
        if self.cache_size:
            return self._cached(jobs, questions, embed)
        flat = [text for _, texts in jobs for text in texts]
        self.embedded += len(flat)
        vectors = embed([*questions, *flat])
        qvec = {q: vectors[i] for i, q in enumerate(questions)}
        out, at = [], len(questions)
        for question, texts in jobs:
            rows = vectors[at : at + len(texts)]
            at += len(texts)
            out.append(_cosines(rows, qvec[question]) if texts else np.zeros(0, np.float32))
        return out

    def _cached(
        self, jobs: Sequence[tuple[str, Sequence[str]]], questions: list[str], embed: Any
    ) -> list[np.ndarray]:
        # Ordered by first use in the batch, not a set: eviction must not depend on the
        # interpreter's string hash seed.
        wanted = list(dict.fromkeys(text for _, texts in jobs for text in texts))
        missing = sorted(t for t in wanted if t not in self._vectors)
        self.embedded += len(missing)
        vectors = embed([*questions, *missing])
        qvec = {q: vectors[i] for i, q in enumerate(questions)}
        lookup = {t: self._vectors[t] for t in wanted if t in self._vectors}
        lookup.update(zip(missing, vectors[len(questions) :], strict=True))
        for text in wanted:  # most recently used last; the oldest go first
            self._vectors[text] = lookup[text]
            self._vectors.move_to_end(text)
        while len(self._vectors) > self.cache_size:
            self._vectors.popitem(last=False)
        return [
            _cosines(np.stack([lookup[t] for t in texts]), qvec[q])
            if texts
            else np.zeros(0, np.float32)
            for q, texts in jobs
        ]


def _cosines(rows: np.ndarray, question: np.ndarray) -> np.ndarray:
    return np.asarray(rows @ question, dtype=np.float32)
