"""The BM25 window ranking of bench.window_proxies against bm25s on the same texts."""

from __future__ import annotations

import bm25s
import numpy as np

from bench.window_proxies import BM25_B, BM25_K1, _bm25
from retrollm.retrieval.bm25 import tokenize

WINDOWS = [
    "Hamlet is a tragedy written by William Shakespeare",
    "The Nile is a river in Africa, the longest river",
    "Shakespeare wrote Hamlet and Macbeth; Hamlet is long",
    "nothing relevant here at all",
]


def test_bm25_equals_bm25s_when_the_corpus_is_the_windows() -> None:
    question = "who wrote the tragedy Hamlet"
    model = bm25s.BM25(k1=BM25_K1, b=BM25_B)
    model.index(tokenize(WINDOWS))
    expected = model.get_scores(tokenize([question])[0])
    (ours,) = _bm25([question], [WINDOWS], WINDOWS)
    np.testing.assert_allclose(ours, expected, rtol=1e-5)
    assert ours[3] == 0 and ours.argmax() == 2


def test_bm25_of_a_question_without_windows_is_empty() -> None:
    assert [len(s) for s in _bm25(["a question", "another"], [[], WINDOWS[:1]], WINDOWS)] == [0, 1]
