"""Future windows (docs/method.md §5): text around clue hits inside the candidate documents,
scored for relevance, so the decoder can look ahead of each evidence token.

Coordinates are the index's global token offsets; a window never leaves its document,
because hits come from the index (which never matches across a document end) and
windows are clipped to the document's [start, end).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from schemas.prediction import WindowTrace

if TYPE_CHECKING:  # the scorer pulls in torch; window finding itself needs only numpy
    from retrollm.retrieval.scorer import RelevanceScorer

# Merged windows list every clue that made them, in order of appearance.
CLUE_JOIN = " | "


@dataclass(frozen=True, slots=True)
class Window:
    """Global token span [start, end) of one document, cut around hits of `clue`."""

    doc_index: int
    start: int
    end: int
    clue: str

    @property
    def length(self) -> int:
        return self.end - self.start


class WindowIndex(Protocol):
    """The part of retrollm.index.CorpusIndex (usually a restricted view) used here."""

    @property
    def doc_offsets(self) -> np.ndarray: ...

    def locate(self, pattern: Sequence[int]) -> np.ndarray: ...

    def doc_of(self, positions: np.ndarray) -> np.ndarray: ...


def find_windows(
    sub_index: WindowIndex,
    doc_indices: Sequence[int],
    clue_seqs: Sequence[tuple[str, Sequence[int]]],
    radius: int = 32,
    max_window: int = 128,
    max_hits_per_clue: int = 64,
    max_per_doc: int = 32,
    max_total: int = 512,
) -> list[Window]:
    """Windows of +-radius tokens around every hit of every clue in the given documents.

    A window spans the whole hit plus `radius` tokens each side (so a long clue is never
    cut), clipped to its document. Per document and clue the first `max_hits_per_clue`
    hits (by position) count. Overlapping windows of one document merge while the merged
    span stays <= max_window. Then documents are taken in the order of `doc_indices`
    (their rank), windows by position, at most `max_per_doc` per document and
    `max_total` in all. Hits outside `doc_indices` are ignored, so the full index works
    too, only slower.
    """
    doc_rank: dict[int, int] = {}
    for r, doc in enumerate(doc_indices):
        doc_rank.setdefault(int(doc), r)
    offsets = sub_index.doc_offsets
    spans: dict[int, list[tuple[int, int, str]]] = {doc: [] for doc in doc_rank}
    for label, seq in clue_seqs:
        length = len(seq)
        if length == 0:
            continue
        positions = np.asarray(sub_index.locate(list(seq)), dtype=np.int64)
        if positions.size == 0:
            continue
        docs = np.asarray(sub_index.doc_of(positions), dtype=np.int64)
        taken: dict[int, int] = {}
        for pos, doc in zip(positions.tolist(), docs.tolist(), strict=True):
            if doc not in spans or taken.get(doc, 0) >= max_hits_per_clue:
                continue
            taken[doc] = taken.get(doc, 0) + 1
            doc_start, doc_end = int(offsets[doc]), int(offsets[doc + 1])
            start = max(doc_start, pos - radius)
            end = min(doc_end, pos + length + radius)
            spans[doc].append((start, end, label))

    windows: list[Window] = []
    for doc in sorted(spans, key=doc_rank.__getitem__):
        merged = _merge(spans[doc], max_window)[:max_per_doc]
        room = max_total - len(windows)
        windows.extend(Window(doc, start, end, clue) for start, end, clue in merged[:room])
        if len(windows) >= max_total:
            break
    return windows


def _merge(spans: list[tuple[int, int, str]], max_window: int) -> list[tuple[int, int, str]]:
    """Greedy left-to-right merge of overlapping spans, refused when it would exceed
    max_window (the two windows then stay separate, still overlapping)."""
    merged: list[tuple[int, int, list[str]]] = []
    for start, end, label in sorted(spans):
        if merged:
            cur_start, cur_end, labels = merged[-1]
            new_end = max(cur_end, end)
            if start < cur_end and new_end - cur_start <= max_window:
                if label not in labels:
                    labels.append(label)
                merged[-1] = (cur_start, new_end, labels)
                continue
        merged.append((start, end, [label]))
    return [(start, end, CLUE_JOIN.join(labels)) for start, end, labels in merged]


def index_detokenizer(index: Any, tokenizer: Any) -> Callable[[int, int], str]:
    """detokenize(start, end): the text of global token span [start, end)."""

    def detokenize(start: int, end: int) -> str:
        ids = [int(t) for t in index.extract(start, end)]
        return tokenizer.decode(ids, skip_special_tokens=True)

    return detokenize


def score_windows(
    scorer: RelevanceScorer,
    question: str,
    windows: Sequence[Window],
    detokenize: Callable[[int, int], str],
) -> np.ndarray:
    """Relevance of each window's text to the question (float32, one per window).

    `question` must be the bare question, not the prompt (the released code scored
    "...\\nYour Response:", docs/method.md §11).
    """
    if not windows:
        return np.zeros(0, dtype=np.float32)
    texts = [detokenize(w.start, w.end) for w in windows]
    return np.asarray(scorer.score(question, texts), dtype=np.float32)


def top_windows(
    windows: Sequence[Window],
    scores: Sequence[float],
    k: int = 5,
    max_per_doc: int | None = None,
    disjoint: bool = False,
) -> list[tuple[Window, float]]:
    """The k best windows, best first; equal scores keep the find_windows order.

    Diversity before the cut: with `max_per_doc`, at most that many per document; with
    `disjoint`, a window overlapping a better kept one is skipped (merging refuses spans
    over max_window, so two windows of one document may overlap)."""
    if len(windows) != len(scores):
        raise ValueError(f"{len(windows)} windows but {len(scores)} scores")
    kept: list[int] = []
    per_doc: dict[int, int] = {}
    for i in sorted(range(len(windows)), key=lambda i: (-float(scores[i]), i)):
        w = windows[i]
        if max_per_doc is not None and per_doc.get(w.doc_index, 0) >= max_per_doc:
            continue
        if disjoint and any(_overlap(w, windows[j]) for j in kept):
            continue
        kept.append(i)
        per_doc[w.doc_index] = per_doc.get(w.doc_index, 0) + 1
        if len(kept) == k:
            break
    return [(windows[i], float(scores[i])) for i in kept]


def with_document_prior(
    windows: Sequence[Window], scores: Sequence[float], doc_order: Sequence[int], weight: float
) -> np.ndarray:
    """Ranking scores: min-max scorer scores plus `weight` times the prior of each window's
    document, 1 - rank / len(doc_order) (rank 0 for the best of the fused document
    ranking `doc_order`). Weight 0 returns the scores unchanged."""
    values = np.asarray(scores, dtype=np.float64)
    if weight == 0 or values.size == 0:
        return values
    rank = {doc: r for r, doc in enumerate(doc_order)}
    count = max(1, len(doc_order))
    prior = np.asarray([1.0 - rank.get(w.doc_index, count) / count for w in windows])
    return normalize_scores(values, "minmax", 0.0) + weight * prior


def _overlap(a: Window, b: Window) -> bool:
    return a.start < b.end and b.start < a.end


def normalize_scores(scores: Sequence[float], method: str, floor: float = 0.5) -> np.ndarray:
    """Per-question S(w) for eq. 12. "none": as the scorer gave them. "minmax": mapped
    linearly onto [floor, 1] (best window 1, worst `floor`; all equal: all 1), so the
    bonus's scale no longer depends on which scorer made the scores."""
    values = np.asarray(scores, dtype=np.float64)
    if method == "none" or values.size == 0:
        return values
    if method != "minmax":
        raise ValueError(f"unknown window score normalisation {method!r} (none | minmax)")
    low, high = float(values.min()), float(values.max())
    if high - low <= 1e-12:
        return np.ones_like(values)
    return floor + (1.0 - floor) * (values - low) / (high - low)


def window_traces(
    ranked: Sequence[tuple[Window, float]],
    texts: Sequence[str] | None = None,
    weights: Sequence[float] | None = None,
) -> list[WindowTrace]:
    """Prediction-trace records for kept windows (texts optional, for people; weights:
    S(w) as eq. 12 uses it, the raw score when not given)."""
    return [
        WindowTrace(
            doc_index=w.doc_index,
            start=w.start,
            end=w.end,
            clue=w.clue,
            score=score,
            weight=float(weights[i]) if weights is not None else score,
            text=texts[i] if texts is not None else "",
        )
        for i, (w, score) in enumerate(ranked)
    ]


def term_variants(tokenizer: Any, term: str, upper_max_len: int = 4) -> list[list[int]]:
    """LM token sequences under which a SPLADE term (lower-cased word) may occur.

    BPE tokenizers spell a word differently mid-sentence (" paris"), capitalised
    (" Paris"), at a line start ("Paris", e.g. after a title) and as an acronym
    (" NASA", tried for terms up to `upper_max_len` letters). Deduplicated, in that
    order of preference; empty encodings dropped.
    """
    term = term.strip()
    if not term:
        return []
    forms = [term, term.capitalize()]
    if len(term) <= upper_max_len:
        forms.append(term.upper())
    texts = [f" {form}" for form in forms] + forms
    seen: dict[tuple[int, ...], None] = {}
    for text in texts:
        ids = tuple(int(i) for i in tokenizer.encode(text, add_special_tokens=False))
        if ids:
            seen.setdefault(ids, None)
    return [list(ids) for ids in seen]


def clue_sequences(tokenizer: Any, terms: Sequence[str]) -> list[tuple[str, list[int]]]:
    """(term, token ids) for every variant of every expansion term, ready for
    find_windows (and, in the paper's setting, for clue_document_scores)."""
    return [(term, ids) for term in terms for ids in term_variants(tokenizer, term)]
