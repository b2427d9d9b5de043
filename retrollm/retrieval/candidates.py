"""Candidate documents from clues (paper eq. 4-6) fused with a SPLADE ranking (eq. 8).

The index answers "where does this token sequence occur"; this module turns those hits
into a document ranking. It never sees text, only token ids and global positions, so it
works with any CorpusIndex (full or restricted) and any tokenizer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from schemas.prediction import DocumentTrace


class ClueIndex(Protocol):
    """The part of retrollm.index.CorpusIndex this module needs."""

    @property
    def doc_offsets(self) -> np.ndarray: ...

    def count(self, pattern: Sequence[int]) -> int: ...

    def locate(self, pattern: Sequence[int]) -> np.ndarray: ...

    def doc_of(self, positions: np.ndarray) -> np.ndarray: ...


def _unique_clues(clues: Sequence[Sequence[int]]) -> list[tuple[int, ...]]:
    """Non-empty clues, each once, first occurrence first: an expansion term equal to a
    generated clue joins the clue set, it does not count twice."""
    seen: dict[tuple[int, ...], None] = {}
    for clue in clues:
        key = tuple(int(t) for t in clue)
        if key:
            seen.setdefault(key, None)
    return list(seen)


def clue_document_scores(
    index: ClueIndex, clues: Sequence[Sequence[int]], max_corpus_hits: int | None = None
) -> dict[int, float]:
    """S_gen(d) = sum_i w_i log(1 + TF(c_i, d)), w_i = log(N / CF(c_i)) + log(N / DF(c_i)).

    N is the corpus's document count (also on a restricted index). Clues with no hit are
    skipped; `max_corpus_hits` (the released code uses 1000) also skips very frequent
    clues, and is checked with a count before any positions are fetched. A clue more
    frequent than N has a negative w_i under the paper's formula; that is kept as is.
    """
    n_docs = len(index.doc_offsets) - 1
    scores: dict[int, float] = {}
    for clue in _unique_clues(clues):
        if max_corpus_hits is not None and index.count(clue) > max_corpus_hits:
            continue
        positions = index.locate(clue)
        if positions.size == 0:
            continue
        docs, tf = np.unique(index.doc_of(positions), return_counts=True)
        weight = math.log(n_docs / positions.size) + math.log(n_docs / docs.size)
        for doc, count in zip(docs.tolist(), tf.tolist(), strict=True):
            scores[doc] = scores.get(doc, 0.0) + weight * math.log1p(count)
    return scores


def rank(scores: dict[int, float]) -> list[int]:
    """Documents by descending score, ties to the lower index (reproducible)."""
    return sorted(scores, key=lambda doc: (-scores[doc], doc))


def fuse(
    clue_ranking: Sequence[int],
    sparse_ranking: Sequence[int],
    w1: float = 1.0,
    w2: float = 2.0,
) -> list[tuple[int, float]]:
    """Weighted reciprocal-rank fusion, S(d) = w1 / rank_R1(d) + w2 / rank_R2(d).

    Ranks are 1-based, there is no k = 60 constant (paper eq. 8), and a document missing
    from one list gets nothing from it. Sorted by score, ties to the lower index.
    """
    fused: dict[int, float] = {}
    for weight, ranking in ((w1, clue_ranking), (w2, sparse_ranking)):
        seen: set[int] = set()
        for position, doc in enumerate(ranking, start=1):
            doc = int(doc)
            if doc in seen:  # a repeated entry keeps its best rank only
                continue
            seen.add(doc)
            fused[doc] = fused.get(doc, 0.0) + weight / position
    return [(doc, fused[doc]) for doc in rank(fused)]


def select_documents(
    index: ClueIndex,
    clues: Sequence[Sequence[int]],
    sparse_docs: Sequence[int],
    sparse_scores: Sequence[float] | None = None,
    k: int = 25,
    fusion: bool = True,
    w1: float = 1.0,
    w2: float = 2.0,
    max_corpus_hits: int | None = None,
    doc_ids: Sequence[str] | None = None,
    titles: Sequence[str] | None = None,
) -> list[DocumentTrace]:
    """The top k candidate documents with the trace of why each was picked.

    fusion=True: the paper's R1 x R2 fusion. fusion=False: the released code's variant,
    the top k of the clue ranking R1 alone (sparse ranks are still recorded when known).
    `sparse_docs` is the SPLADE ranking best first (`sparse_scores` only documents it);
    `doc_ids` and `titles`, indexed by document, fill the trace's names.
    """
    del sparse_scores  # ranks, not scores, enter eq. 8
    clue_scores = clue_document_scores(index, clues, max_corpus_hits)
    clue_ranking = rank(clue_scores)
    clue_rank = {doc: r for r, doc in enumerate(clue_ranking, start=1)}
    sparse_rank: dict[int, int] = {}
    for r, doc in enumerate(sparse_docs, start=1):
        sparse_rank.setdefault(int(doc), r)
    if fusion:
        chosen = fuse(clue_ranking, list(sparse_rank), w1, w2)[:k]
    else:
        chosen = [(doc, clue_scores[doc]) for doc in clue_ranking[:k]]
    return [
        DocumentTrace(
            doc_index=doc,
            doc_id=str(doc_ids[doc]) if doc_ids is not None else str(doc),
            title=str(titles[doc]) if titles is not None else "",
            score=float(score),
            clue_score=float(clue_scores.get(doc, 0.0)),
            clue_rank=clue_rank.get(doc),
            sparse_rank=sparse_rank.get(doc),
        )
        for doc, score in chosen
    ]
