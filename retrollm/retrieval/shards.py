"""Document-side retrieval artifacts of a sharded corpus (docs/design.md §11): one SPLADE
inverted index and one block of bi-encoder embeddings per corpus shard, each written by
a shard job, and searched as one.

Search over shards is exact: a document's score depends on its own vector only, so the
global top k are among the union of every shard's top k, and merging them under the one
tie rule (higher score, then lower global number) gives the ranking one index would.
An unsharded folder loads as the plain SparseDocIndex / DenseRetriever, unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retrollm.retrieval.dense import DenseRetriever, Embedder, _unit_rows, as_embedder, row_dots
from retrollm.retrieval.ranking import top_k
from retrollm.retrieval.splade import SparseDocIndex, SparseVector
from retrollm.sharding import ShardInfo, checked_shards

SPARSE_META = "meta.json"  # SparseDocIndex's own meta file; a sharded one lists shards
SHARDS = "shards"
# Texts per embed call: sentence-transformers length-sorts each call's texts, so its
# batches hold texts of similar length (little padding), and a progress bar still moves.
DENSE_CHUNK = 1024


def merge_top_k(
    starts: Sequence[int], results: Sequence[tuple[np.ndarray, np.ndarray]], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Global top k from each shard's (local ids, scores) top k: ids offset by the shard's
    first document, then ordered as ranking.top_k orders (score down, id up)."""
    ids = np.concatenate([local + start for start, (local, _) in zip(starts, results, strict=True)])
    scores = np.concatenate([scores for _, scores in results]).astype(np.float32)
    order = np.lexsort((ids, -scores))[: max(k, 0)]
    return ids[order].astype(np.int64), scores[order]


def write_listing(folder: Path, shards: Sequence[ShardInfo], meta_name: str, **totals: int) -> None:
    """The top-level meta file of a sharded folder: totals plus the shard list."""
    listing = {**totals, SHARDS: [shard.model_dump() for shard in shards]}
    (folder / meta_name).write_text(json.dumps(listing, indent=2) + "\n")


def read_listing(folder: Path, meta_name: str) -> tuple[dict[str, Any], list[ShardInfo] | None]:
    """The meta file of a saved folder and its shard list (None: one plain folder)."""
    path = folder / meta_name
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: {meta_name} missing (not a saved index?)")
    meta = json.loads(path.read_text())
    if SHARDS not in meta:
        return meta, None
    return meta, checked_shards(meta[SHARDS], path)


class ShardedSparseDocIndex:
    """SparseDocIndex shards over consecutive runs of documents, searched as one."""

    def __init__(self, starts: Sequence[int], parts: Sequence[SparseDocIndex]):
        self.starts, self.parts = list(starts), list(parts)

    @property
    def n_docs(self) -> int:
        return sum(part.n_docs for part in self.parts)

    @property
    def nnz(self) -> int:
        return sum(part.nnz for part in self.parts)

    def search(self, query: SparseVector, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top k documents by dot product (score > 0 only), ties to the lower number."""
        return merge_top_k(self.starts, [part.search(query, k) for part in self.parts], k)


def load_doc_index(folder: str | Path, mmap: bool = True) -> SparseDocIndex | ShardedSparseDocIndex:
    """sparse_expand's docs/ folder, one index or one per shard, memory-mapped."""
    folder = Path(folder)
    meta, shards = read_listing(folder, SPARSE_META)
    if shards is None:
        return SparseDocIndex.load(folder, mmap)
    parts = [SparseDocIndex.load(folder / shard.folder, mmap) for shard in shards]
    for shard, part in zip(shards, parts, strict=True):
        if part.n_docs != shard.n_docs:
            raise ValueError(
                f"{folder / shard.folder}: {part.n_docs} documents, listed {shard.n_docs}"
            )
    index = ShardedSparseDocIndex([shard.doc_start for shard in shards], parts)
    if index.n_docs != meta.get("n_docs"):
        raise ValueError(
            f"{folder}: shards hold {index.n_docs} documents, {SPARSE_META} says "
            f"{meta.get('n_docs')}"
        )
    return index


class ShardedDenseRetriever:
    """DenseRetriever.search over one embeddings block per shard (memory-mapped)."""

    def __init__(self, encoder: Embedder, starts: Sequence[int], parts: Sequence[np.ndarray]):
        self.encoder = encoder
        self.starts, self.parts = list(starts), list(parts)

    @property
    def n_docs(self) -> int:
        return sum(int(part.shape[0]) for part in self.parts)

    def search(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        vector = _unit_rows(np.asarray(self.encoder.embed([query]), dtype=np.float32))[0]
        results = [top_k(row_dots(part, vector), k, positive_only=False) for part in self.parts]
        return merge_top_k(self.starts, results, k)


def load_dense(
    folder: str | Path, encoder: Embedder | str | Path, mmap: bool = True
) -> DenseRetriever | ShardedDenseRetriever:
    """dense_index's folder, one embeddings file or one per shard."""
    folder = Path(folder)
    meta, shards = read_listing(folder, DenseRetriever.META)
    if shards is None:
        return DenseRetriever.load(folder, encoder, mmap)
    embedder = as_embedder(encoder)
    parts = [DenseRetriever.load(folder / s.folder, embedder, mmap).embeddings for s in shards]
    for shard, part in zip(shards, parts, strict=True):
        if part.shape[0] != shard.n_docs:
            raise ValueError(
                f"{folder / shard.folder}: {part.shape[0]} rows, listed {shard.n_docs}"
            )
    retriever = ShardedDenseRetriever(embedder, [s.doc_start for s in shards], parts)
    if retriever.n_docs != meta.get("n_docs"):
        raise ValueError(
            f"{folder}: shards hold {retriever.n_docs} rows, {DenseRetriever.META} says "
            f"{meta.get('n_docs')}"
        )
    return retriever


def encode_sparse_shard(
    documents: str,
    out: str,
    model: str,
    device: str,
    max_length: int,
    batch_size: int,
    threads: int,
    manifest: dict[str, Any],
) -> dict[str, int]:
    """Shard job: SPLADE vectors of one corpus shard's documents, saved as a SparseDocIndex
    in the new folder `out` with its manifest. Peak memory follows the shard's size."""
    import torch

    from retrollm.artifacts import read_records, write_manifest
    from retrollm.retrieval.splade import SpladeEncoder
    from schemas import CorpusRecord, Manifest

    torch.set_num_threads(threads)
    encoder = SpladeEncoder(model, device, max_length)
    texts = [record.contents for record in read_records(Path(documents), CorpusRecord)]
    index = SparseDocIndex.build(encoder.encode(texts, batch_size))
    index.save(out)
    counts = {"documents": index.n_docs, "doc_nonzeros": index.nnz}
    write_manifest(Path(out), Manifest(**manifest, counts=counts))
    return counts


def embed_dense_shard(
    documents: str,
    out: str,
    model: str,
    max_length: int,
    batch_size: int,
    threads: int,
    manifest: dict[str, Any],
) -> dict[str, int]:
    """Shard job: bi-encoder embeddings of one corpus shard's documents (chunks of 1024
    from the shard's start, as dense_index embeds a whole corpus), saved as a
    DenseRetriever folder `out` with its manifest."""
    import torch

    from retrollm.artifacts import read_records, write_manifest
    from retrollm.retrieval.scorer import BiEncoderScorer
    from schemas import CorpusRecord, Manifest

    torch.set_num_threads(threads)
    encoder = BiEncoderScorer(model, max_length=max_length, batch_size=batch_size)
    texts = [record.contents for record in read_records(Path(documents), CorpusRecord)]
    retriever = DenseRetriever.build(encoder, texts, batch_size=DENSE_CHUNK)
    retriever.save(out)
    counts = {"documents": retriever.n_docs}
    write_manifest(Path(out), Manifest(**manifest, counts=counts))
    return counts
