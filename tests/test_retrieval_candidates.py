"""Candidate documents: clue scores (paper eq. 4-6) and rank fusion (eq. 8), by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from retrollm.index import CorpusIndex
from retrollm.retrieval.candidates import clue_document_scores, fuse, select_documents

# Four documents; token 9 occurs nowhere. [2, 1] occurs across the d0 -> d1 boundary
# (d0 ends with 2, d1 starts with 1), which must not count, and twice inside d3.
DOCS = [[1, 2, 3, 1, 2], [1, 2, 4], [5, 6], [1, 2, 1, 2, 1, 2]]


@pytest.fixture(scope="module")
def index() -> CorpusIndex:
    offsets = np.cumsum([0] + [len(d) for d in DOCS])
    return CorpusIndex.build(np.concatenate(DOCS), offsets)


def test_clue_scores_follow_eq_4_to_6(index: CorpusIndex) -> None:
    scores = clue_document_scores(index, [[1, 2], [5], [9], [2, 1]])
    n = 4
    # [1, 2]: TF d0=2, d1=1, d3=3 -> CF 6, DF 3.  [5]: d2 once -> CF 1, DF 1.
    # [9]: no hit, skipped.  [2, 1]: d3 twice (not across d0|d1) -> CF 2, DF 1.
    w12 = math.log(n / 6) + math.log(n / 3)
    w5 = math.log(n / 1) + math.log(n / 1)
    w21 = math.log(n / 2) + math.log(n / 1)
    expected = {
        0: w12 * math.log(1 + 2),
        1: w12 * math.log(1 + 1),
        2: w5 * math.log(1 + 1),
        3: w12 * math.log(1 + 3) + w21 * math.log(1 + 2),
    }
    assert scores.keys() == expected.keys()
    for doc, value in expected.items():
        assert scores[doc] == pytest.approx(value)


def test_cap_duplicates_and_restricted_views(index: CorpusIndex) -> None:
    capped = clue_document_scores(index, [[1, 2], [5]], max_corpus_hits=5)  # [1, 2] has 6
    assert capped == pytest.approx({2: 2 * math.log(4) * math.log(2)})
    once = clue_document_scores(index, [[5]])
    assert clue_document_scores(index, [[5], [5], []]) == pytest.approx(once)
    # On a restricted view N stays the corpus's document count.
    view = index.restrict([2, 3])
    assert clue_document_scores(view, [[5]]) == pytest.approx(once)


def test_fusion_follows_eq_8() -> None:
    # R1 = [3, 1, 2], R2 = [2, 5, 3], w1 = 1, w2 = 2, no k = 60 constant.
    fused = fuse([3, 1, 2], [2, 5, 3])
    expected = [(2, 1 / 3 + 2 / 1), (3, 1 / 1 + 2 / 3), (5, 2 / 2), (1, 1 / 2)]
    assert [d for d, _ in fused] == [d for d, _ in expected]
    for (_, got), (_, want) in zip(fused, expected, strict=True):
        assert got == pytest.approx(want)
    # 6 (1/1 from R1) ties with 5 (2/2 from R2): the lower index goes first.
    assert fuse([6], [9, 5]) == [(9, 2.0), (5, 1.0), (6, 1.0)]
    assert fuse([7, 8], [], w1=3.0) == [(7, 3.0), (8, 1.5)]


def test_select_documents_with_and_without_fusion(index: CorpusIndex) -> None:
    clues = [[1, 2], [5]]
    # R1 from the (hand-checked) clue scores; R2 = [1, 2].
    scores = clue_document_scores(index, clues)
    r1 = sorted(scores, key=lambda d: (-scores[d], d))
    traces = select_documents(
        index,
        clues,
        sparse_docs=[1, 2],
        sparse_scores=[3.0, 1.0],
        k=3,
        doc_ids=["a", "b", "c", "d"],
        titles=["A", "B", "C", "D"],
    )
    fused = fuse(r1, [1, 2])[:3]
    assert [t.doc_index for t in traces] == [d for d, _ in fused]
    first = traces[0]
    assert first.doc_id == "abcd"[first.doc_index] and first.title == "ABCD"[first.doc_index]
    by_doc = {t.doc_index: t for t in traces}
    assert by_doc[1].sparse_rank == 1 and by_doc[1].clue_rank == r1.index(1) + 1
    assert by_doc[1].clue_score == pytest.approx(scores[1])

    released = select_documents(index, clues, sparse_docs=[1, 2], k=2, fusion=False)
    assert [t.doc_index for t in released] == r1[:2]
    assert [t.score for t in released] == pytest.approx([scores[d] for d in r1[:2]])
    assert released[0].doc_id == str(r1[0]) and released[0].title == ""


def test_no_clue_hits_falls_back_to_the_sparse_ranking(index: CorpusIndex) -> None:
    traces = select_documents(index, [[9]], sparse_docs=[3, 0], k=5)
    assert [(t.doc_index, t.score) for t in traces] == [(3, 2.0), (0, 1.0)]
    assert all(t.clue_rank is None for t in traces)
    assert select_documents(index, [[9]], sparse_docs=[3, 0], fusion=False) == []
