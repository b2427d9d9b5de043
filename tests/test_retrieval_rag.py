"""Naive-RAG retrievers (BM25, dense) on the fixture corpus."""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from retrollm.retrieval.bm25 import BM25Retriever
from retrollm.retrieval.dense import DenseRetriever
from tests.retrieval_tiny import tiny_biencoder

# (question, index of the document that obviously answers it) in tests/fixtures/corpus.jsonl
OBVIOUS = [
    ("Who is the engineer the Eiffel Tower is named after?", 15),
    ("What nationality was the playwright William Shakespeare?", 5),
    ("Who wrote the Principia Mathematica on classical mechanics?", 17),
    ("Which river in northeast Africa empties into the Mediterranean Sea?", 13),
]


def test_bm25_finds_the_obvious_document(fixture_texts: list[str], tmp_path: Path) -> None:
    retriever = BM25Retriever.build(fixture_texts)
    for question, doc in OBVIOUS:
        docs, scores = retriever.search(question, 5)
        assert docs[0] == doc, question
        assert np.all(np.diff(scores) <= 0) and 0 < len(docs) <= 5
    retriever.save(tmp_path / "bm25")
    loaded = BM25Retriever.load(tmp_path / "bm25")
    for question, _ in OBVIOUS:
        np.testing.assert_array_equal(
            loaded.search(question, 5)[0], retriever.search(question, 5)[0]
        )
    assert loaded.search("the of and", 5)[0].size == 0  # only stopwords
    assert loaded.search("xylophonezzz", 5)[0].size == 0  # no known word
    assert len(loaded.search("Paris", 100)[0]) <= len(fixture_texts)


class BagOfWords:
    """A deterministic stand-in bi-encoder: hashed counts of words of 4+ letters."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), 4096), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"[a-z]{4,}", text.lower()):
                out[row, zlib.crc32(word.encode()) % 4096] += 1
        return out


def test_dense_finds_the_obvious_document(fixture_texts: list[str], tmp_path: Path) -> None:
    retriever = DenseRetriever.build(BagOfWords(), fixture_texts, batch_size=4)
    assert retriever.embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(retriever.embeddings, axis=1), 1.0, rtol=1e-5)
    for question, doc in OBVIOUS:
        docs, scores = retriever.search(question, 3)
        assert docs[0] == doc, question
        assert np.all(np.diff(scores) <= 0)
    retriever.save(tmp_path / "dense")
    loaded = DenseRetriever.load(tmp_path / "dense", BagOfWords())
    assert (
        loaded.search(OBVIOUS[0][0], 3)[0].tolist()
        == retriever.search(OBVIOUS[0][0], 3)[0].tolist()
    )


def test_dense_with_a_sentence_transformers_folder(
    fixture_texts: list[str], tmp_path: Path
) -> None:
    import torch

    torch.set_num_threads(2)
    folder = tiny_biencoder(tmp_path / "bi", fixture_texts)
    retriever = DenseRetriever.build(folder, fixture_texts)  # a path loads the bi-encoder
    docs, scores = retriever.search(fixture_texts[7], 2)  # a document finds itself
    assert docs[0] == 7 and scores[0] == pytest.approx(1.0, abs=1e-4)


REAL_BIENCODER = Path("data/assets/biencoder")


@pytest.mark.skipif(not REAL_BIENCODER.is_dir(), reason="fetch_assets has not run")
def test_dense_with_the_default_biencoder(fixture_texts: list[str]) -> None:
    import torch

    torch.set_num_threads(2)
    retriever = DenseRetriever.build(REAL_BIENCODER, fixture_texts)
    for question, doc in OBVIOUS:
        assert retriever.search(question, 1)[0][0] == doc, question
