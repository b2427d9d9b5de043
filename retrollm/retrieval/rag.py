"""The two retrievers behind the naive-RAG baselines, as search functions.

Shared by evaluation and by the rag-lora trainset, so the passages a baseline is trained
on and the passages it is evaluated with come from the same code.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from retrollm.artifacts import ArtifactError
from retrollm.baselines import SearchFn

Retriever = Literal["bm25", "dense"]


def bm25_search(texts: Sequence[str]) -> SearchFn:
    from retrollm.retrieval.bm25 import BM25Retriever

    return BM25Retriever.build(list(texts)).search


def dense_search(
    index_dir: Path,
    model: Path,
    max_length: int,
    batch_size: int,
    n_docs: int,
    device: str = "cpu",
) -> SearchFn:
    """Search over the dense_index stage's embeddings with the bi-encoder that made them,
    the questions encoded on `device`."""
    from retrollm.retrieval.scorer import BiEncoderScorer
    from retrollm.retrieval.shards import load_dense

    encoder = BiEncoderScorer(model, max_length=max_length, batch_size=batch_size, device=device)
    retriever = load_dense(index_dir, encoder)
    if retriever.n_docs != n_docs:
        raise ArtifactError(
            f"{index_dir} embeds {retriever.n_docs} documents, the corpus has {n_docs}: "
            "rerun the dense_index stage"
        )
    return retriever.search
