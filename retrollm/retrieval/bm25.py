"""BM25 over the corpus documents: the naive-RAG baseline's sparse retriever.

Documents are wiki lead summaries (about 90 words), already passage-sized, so a
document is a passage. bm25s does the indexing; ranking (ties, k beyond the corpus, a
query with no known word) is handled here so it behaves like the other retrievers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import bm25s
import numpy as np

from retrollm.retrieval.ranking import top_k

STOPWORDS = "en"


def tokenize(texts: Sequence[str], progress: bool = False) -> list[list[str]]:
    """Lower-cased words of two or more characters, English stopwords removed."""
    return bm25s.tokenize(
        list(texts), stopwords=STOPWORDS, return_ids=False, show_progress=progress
    )


class BM25Retriever:
    """search(query, k) -> (document indices, BM25 scores), best first."""

    META = "bm25_meta.json"

    def __init__(self, model: bm25s.BM25, n_docs: int):
        self.model = model
        self.n_docs = n_docs

    @classmethod
    def build(
        cls, texts: Sequence[str], k1: float = 1.5, b: float = 0.75, progress: bool = False
    ) -> BM25Retriever:
        model = bm25s.BM25(k1=k1, b=b)
        model.index(tokenize(texts, progress), show_progress=progress)
        return cls(model, len(texts))

    def search(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        words = tokenize([query])[0]
        if not words or self.n_docs == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        return top_k(self.model.get_scores(words), k)

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save(str(folder), show_progress=False)
        meta = {"n_docs": self.n_docs, "stopwords": STOPWORDS, "bm25s": bm25s.__version__}
        (folder / self.META).write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def load(cls, folder: str | Path, mmap: bool = True) -> BM25Retriever:
        folder = Path(folder)
        meta_path = folder / cls.META
        if not meta_path.is_file():
            raise FileNotFoundError(f"{folder}: no BM25 index ({cls.META} missing)")
        meta = json.loads(meta_path.read_text())
        model = bm25s.BM25.load(str(folder), mmap=mmap, show_progress=False)
        return cls(model, int(meta["n_docs"]))
