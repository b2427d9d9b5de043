"""The per-question retrieval step, run once when a hypothesis closes its clue block:
candidate documents (eq. 4-8), the document-level index over them, and the kept future
windows with their relevance (RETROLLM.md 4-5).

The retrieval itself lives in retrollm.retrieval (candidates, windows, scorer); this module
only wires it to a hypothesis, batches the relevance model over all hypotheses that leave
the clue phase at the same step, and turns each problem (no hit, no document, no window)
into a status and a note instead of an exception.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from retrollm.decoding.config import DecodeConfig
from retrollm.decoding.state import EvidenceContext, Hypothesis, WindowTable
from retrollm.decoding.strategies import Strategy
from retrollm.index import CorpusIndex
from retrollm.retrieval.candidates import select_documents
from retrollm.retrieval.windows import (
    Window,
    clue_sequences,
    find_windows,
    top_windows,
    window_traces,
)
from schemas.prediction import DocumentTrace
from schemas.records import CorpusRecord


@dataclass
class _Pending:
    """A hypothesis between document selection and window scoring."""

    hyp: Hypothesis
    terms: list[str]
    documents: list[DocumentTrace]
    index: CorpusIndex | None
    windows: list[Window]
    window_tokens: list[np.ndarray]
    texts: list[str]


class RetrievalContexts:
    """Builds EvidenceContexts for hypotheses leaving the clue phase (decoder.ContextSource)."""

    def __init__(
        self,
        index: CorpusIndex,
        tokenizer: Any,
        scorer: Any,
        config: DecodeConfig,
        strategy: Strategy,
        corpus: Sequence[CorpusRecord] | None = None,
    ) -> None:
        self.index, self.tokenizer, self.scorer = index, tokenizer, scorer
        self.config, self.strategy = config, strategy
        self.doc_ids = [r.id for r in corpus] if corpus is not None else None
        self.titles = [r.title for r in corpus] if corpus is not None else None
        self._variants: dict[str, list[tuple[str, list[int]]]] = {}

    def build(self, hyps: Sequence[Hypothesis]) -> list[EvidenceContext]:
        pending = [self._documents_and_windows(h) for h in hyps]
        scores = self._score([(p.hyp.query.question, p.texts) for p in pending])
        return [self._finish(p, s) for p, s in zip(pending, scores, strict=True)]

    # ------------------------------------------------------------------ documents
    def _expansion(self, hyp: Hypothesis) -> tuple[list[str], list[tuple[str, list[int]]]]:
        """Expansion terms and their LM token sequences (cached: terms repeat a lot)."""
        if not self.config.clue_expansion:
            return [], []
        terms = [term for term, _ in hyp.query.expansion_terms[: self.config.k_aux]]
        seqs: list[tuple[str, list[int]]] = []
        for term in terms:
            if term not in self._variants:
                self._variants[term] = clue_sequences(self.tokenizer, [term])
            seqs += self._variants[term]
        return terms, seqs

    def _documents_and_windows(self, hyp: Hypothesis) -> _Pending:
        c = self.config
        terms, expansion = self._expansion(hyp)
        generated = [(self.tokenizer.decode(clue), list(clue)) for clue in hyp.clues]
        doc_clues = [seq for _, seq in generated]
        if c.expansion_for_documents:
            doc_clues += [seq for _, seq in expansion]
        sparse = hyp.query.sparse_docs if hyp.query.sparse_docs is not None else []
        documents = select_documents(
            self.index,
            doc_clues,
            sparse,
            hyp.query.sparse_scores,
            k=c.top_docs,
            fusion=c.fusion,
            w1=c.fusion_weight_clues,
            w2=c.fusion_weight_sparse,
            max_corpus_hits=c.max_clue_corpus_hits,
            doc_ids=self.doc_ids,
            titles=self.titles,
        )
        if not documents:
            hyp.set_status("no_documents", "no candidate document (no clue hit, no SPLADE hit)")
        if not any(self.index.count(seq) for _, seq in generated + expansion):
            hyp.set_status("no_clue_hits", "no clue or expansion term scored a document (no hit)")
        if not documents:
            return _Pending(hyp, terms, [], None, [], [], [])
        doc_indices = [d.doc_index for d in documents]
        sub_index = self.index.restrict(doc_indices)
        windows: list[Window] = []
        if self.strategy.windows:
            windows = find_windows(
                sub_index,
                doc_indices,
                generated + expansion,
                radius=c.window_radius,
                max_window=c.max_window,
                max_hits_per_clue=c.max_hits_per_clue,
                max_per_doc=c.max_windows_per_doc,
                max_total=c.max_windows_total,
            )
            if not windows:
                hyp.set_status(
                    "no_windows",
                    "no clue occurs in the candidate documents: evidence is constrained to "
                    "them without the forward-looking bonus",
                )
        tokens = [self.index.extract(w.start, w.end) for w in windows]
        texts = [self.tokenizer.decode(t, skip_special_tokens=True) for t in tokens]
        return _Pending(hyp, terms, documents, sub_index, windows, tokens, texts)

    # -------------------------------------------------------------------- windows
    def _score(self, jobs: list[tuple[str, list[str]]]) -> list[np.ndarray]:
        """Relevance of every window of every hypothesis. A bi-encoder embeds all the
        texts of the batch in one call (cosine of unit vectors, as its score does);
        other scorers are called once per question."""
        if not any(texts for _, texts in jobs):
            return [np.zeros(0, dtype=np.float32) for _ in jobs]
        embed = getattr(self.scorer, "embed", None)
        if embed is None:
            return [
                np.asarray(self.scorer.score(q, t), dtype=np.float32)
                if t
                else np.zeros(0, np.float32)
                for q, t in jobs
            ]
        questions = sorted({q for q, texts in jobs if texts})
        flat = [text for _, texts in jobs for text in texts]
        vectors = embed([*questions, *flat])
        qvec = {q: vectors[i] for i, q in enumerate(questions)}
        out, at = [], len(questions)
        for question, texts in jobs:
            rows = vectors[at : at + len(texts)]
            at += len(texts)
            scores = rows @ qvec[question] if texts else np.zeros(0)
            out.append(np.asarray(scores, dtype=np.float32))
        return out

    def _finish(self, p: _Pending, scores: np.ndarray) -> EvidenceContext:
        ranked = top_windows(p.windows, scores, self.config.top_windows)
        position = {window: i for i, window in enumerate(p.windows)}
        keep = [position[window] for window, _ in ranked]
        traces = window_traces(ranked, [p.texts[i] for i in keep])
        table = None
        if keep:
            table = WindowTable.build([p.window_tokens[i] for i in keep], [s for _, s in ranked])
        if len(p.windows) > len(keep):
            p.hyp.note(f"{len(p.windows)} windows scored, top {len(keep)} kept")
        return EvidenceContext(
            expansion_terms=p.terms,
            documents=p.documents,
            windows=traces,
            index=p.index,
            table=table,
            window_docs=[w.doc_index for w, _ in ranked],
        )
