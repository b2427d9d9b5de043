"""SPLADE per question: the k_aux expansion terms and the document ranking R2.

Both depend only on the question, so they are computed before decoding, for a whole
batch in one encoder call. Questions that sparse_expand already processed are read from
its artifact; any other question (a CLI question, a new dataset) is encoded live with
the same encoder, so both paths give the same numbers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import msgpack
import numpy as np

from retrollm.decoding.state import Query
from retrollm.retrieval.splade import SparseDocIndex, SpladeEncoder


@dataclass(frozen=True)
class StoredSparse:
    """sparse_expand's answer for one question."""

    terms: list[tuple[str, float]]
    docs: np.ndarray
    scores: np.ndarray


class SparseQueries:
    """Fills Query.expansion_terms / sparse_docs / sparse_scores."""

    def __init__(
        self,
        encoder: SpladeEncoder | None,
        doc_index: SparseDocIndex | None,
        stored: Mapping[str, StoredSparse] | None = None,
    ) -> None:
        self.encoder = encoder
        self.doc_index = doc_index
        self.stored = dict(stored or {})

    def fill(self, queries: Sequence[Query], k_aux: int, top_docs: int) -> None:
        live: list[Query] = []
        for query in queries:
            found = self.stored.get(query.question)
            if found is None:
                live.append(query)
                continue
            query.expansion_terms = list(found.terms[:k_aux])
            query.sparse_docs = np.asarray(found.docs[:top_docs], dtype=np.int64)
            query.sparse_scores = np.asarray(found.scores[:top_docs], dtype=np.float32)
        if live:
            self._encode(live, k_aux, top_docs)

    def _encode(self, queries: Sequence[Query], k_aux: int, top_docs: int) -> None:
        if self.encoder is None:
            for query in queries:
                query.notes.append("no SPLADE encoder: no expansion terms, no sparse ranking")
            return
        texts = [q.question for q in queries]
        rows = self.encoder.encode(texts) if any(t.strip() for t in texts) else None
        for i, query in enumerate(queries):
            if rows is None or not query.question.strip():
                query.sparse_docs = np.zeros(0, dtype=np.int64)
                query.sparse_scores = np.zeros(0, dtype=np.float32)
                continue
            vector = rows.row(i)
            query.expansion_terms = self.encoder.top_terms_of(vector, k_aux) if k_aux else []
            if self.doc_index is not None:
                query.sparse_docs, query.sparse_scores = self.doc_index.search(vector, top_docs)
            else:
                query.sparse_docs = np.zeros(0, dtype=np.int64)
                query.sparse_scores = np.zeros(0, dtype=np.float32)


def load_stored_queries(
    splade_dir: Path, model_dir: Path, k_aux: int, top_docs: int
) -> tuple[dict[str, StoredSparse], str | None]:
    """sparse_expand's per-question results keyed by question text, when they were made
    by the same SPLADE model with at least k_aux terms and top_docs documents; else an
    empty map and the reason (then every question is encoded live, same numbers)."""
    manifest = Path(splade_dir) / "manifest.json"
    if not manifest.is_file():
        return {}, f"{splade_dir}: no sparse_expand artifact"
    params = json.loads(manifest.read_text()).get("params", {})
    if Path(params.get("model", "")).resolve() != Path(model_dir).resolve():
        return {}, f"{splade_dir} was made with SPLADE model {params.get('model')}"
    if params.get("top_terms", 0) < k_aux or params.get("top_docs", 0) < top_docs:
        return {}, f"{splade_dir} keeps fewer terms or documents than asked"
    stored: dict[str, StoredSparse] = {}
    for path in sorted((Path(splade_dir) / "queries").glob("*/*.msgpack")):
        with open(path, "rb") as handle:
            # Raw maps, not pydantic: tens of thousands of records load in a second.
            for raw in msgpack.Unpacker(handle, raw=False):
                stored[raw["question"]] = StoredSparse(
                    list(zip(raw["terms"], raw["term_weights"], strict=True)),
                    np.asarray(raw["doc_ranking"], dtype=np.int32),
                    np.asarray(raw["doc_scores"], dtype=np.float32),
                )
    return stored, None
