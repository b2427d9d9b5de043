"""The per-question retrieval step, run once when a hypothesis closes its clue block:
candidate documents (eq. 4-8), the document-level index over them, and the kept future
windows with their relevance (docs/method.md §4-5).

The retrieval itself lives in retrollm.retrieval (candidates, windows, scorer); this module
only wires it to a hypothesis, scores the windows of all hypotheses that leave the clue
phase at the same step together (window_scores.py), and turns each problem (no hit, no
document, no window) into a status and a note instead of an exception.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from retrollm.decoding.config import DecodeConfig
from retrollm.decoding.state import EvidenceContext, Hypothesis, Query, WindowTable
from retrollm.decoding.strategies import Strategy
from retrollm.decoding.window_scores import WindowScores
from retrollm.index import TokenIndex
from retrollm.retrieval.candidates import select_documents
from retrollm.retrieval.sentences import TokenTexts, window_anchors
from retrollm.retrieval.windows import (
    Window,
    clue_sequences,
    find_windows,
    normalize_scores,
    top_windows,
    window_traces,
    with_document_prior,
)
from schemas.prediction import DocumentTrace
from schemas.records import CorpusRecord


class StatusSink(Protocol):
    """Where retrieval reports problems: a Hypothesis, or NoteBook outside decoding."""

    def set_status(self, status: str, note: str | None = None) -> None: ...

    def note(self, text: str) -> None: ...


@dataclass
class NoteBook:
    """A StatusSink for callers without a hypothesis (training targets)."""

    status: str = "ok"
    notes: list[str] = field(default_factory=list)

    def set_status(self, status: str, note: str | None = None) -> None:
        if self.status == "ok":
            self.status = status
        if note:
            self.note(note)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


@dataclass
class _Pending:
    """A question between document selection and window scoring."""

    query: Query
    sink: StatusSink
    terms: list[str]
    documents: list[DocumentTrace]
    index: TokenIndex | None
    windows: list[Window]
    window_tokens: list[np.ndarray]
    texts: list[str]


class RetrievalContexts:
    """Builds EvidenceContexts for hypotheses leaving the clue phase (decoder.ContextSource)."""

    def __init__(
        self,
        index: TokenIndex,
        tokenizer: Any,
        scorer: Any,
        config: DecodeConfig,
        strategy: Strategy,
        corpus: Sequence[CorpusRecord] | None = None,
        cache_windows: int | None = None,
    ) -> None:
        """cache_windows: bi-encoder window vectors kept by text across batches and
        questions (window_scores.py); None: the decode config's window_cache."""
        self.index, self.tokenizer, self.scorer = index, tokenizer, scorer
        cache = config.window_cache if cache_windows is None else cache_windows
        self.scores = WindowScores(scorer, cache)
        self.config, self.strategy = config, strategy
        self.doc_ids = [r.id for r in corpus] if corpus is not None else None
        self.titles = [r.title for r in corpus] if corpus is not None else None
        self._variants: dict[str, list[tuple[str, list[int]]]] = {}
        self._texts: TokenTexts | None = None

    def build(self, hyps: Sequence[Hypothesis]) -> list[EvidenceContext]:
        return self.build_for([(h.query, h.clues, h) for h in hyps])

    def build_for(
        self, jobs: Sequence[tuple[Query, Sequence[Sequence[int]], StatusSink]]
    ) -> list[EvidenceContext]:
        """Contexts for (query, clue token sequences, where to report) triples: the
        decoder's retrieval, callable without decoding (training targets use it)."""
        pending = [self._documents_and_windows(q, clues, sink) for q, clues, sink in jobs]
        scores = self.scores([(p.query.question, p.texts) for p in pending])
        return [self._finish(p, s) for p, s in zip(pending, scores, strict=True)]

    @property
    def token_texts(self) -> TokenTexts:
        if self._texts is None:
            self._texts = TokenTexts(self.tokenizer)
        return self._texts

    # ------------------------------------------------------------------ documents
    def _expansion(self, query: Query) -> tuple[list[str], list[tuple[str, list[int]]]]:
        """Expansion terms and their LM token sequences (cached: terms repeat a lot)."""
        if not self.config.clue_expansion:
            return [], []
        terms = [term for term, _ in query.expansion_terms[: self.config.k_aux]]
        seqs: list[tuple[str, list[int]]] = []
        for term in terms:
            if term not in self._variants:
                self._variants[term] = clue_sequences(self.tokenizer, [term])
            seqs += self._variants[term]
        return terms, seqs

    def _documents_and_windows(
        self, query: Query, clues: Sequence[Sequence[int]], sink: StatusSink
    ) -> _Pending:
        c = self.config
        terms, expansion = self._expansion(query)
        generated = [(self.tokenizer.decode(list(clue)), list(clue)) for clue in clues]
        doc_clues = [seq for _, seq in generated]
        if c.expansion_for_documents:
            doc_clues += [seq for _, seq in expansion]
        sparse = query.sparse_docs if query.sparse_docs is not None else []
        documents = select_documents(
            self.index,
            doc_clues,
            sparse,
            query.sparse_scores,
            k=c.top_docs,
            fusion=c.fusion,
            w1=c.fusion_weight_clues,
            w2=c.fusion_weight_sparse,
            max_corpus_hits=c.max_clue_corpus_hits,
            doc_ids=self.doc_ids,
            titles=self.titles,
        )
        if not documents:
            sink.set_status("no_documents", "no candidate document (no clue hit, no SPLADE hit)")
        if not any(self.index.count(seq) for _, seq in generated + expansion):
            sink.set_status("no_clue_hits", "no clue or expansion term scored a document (no hit)")
        if not documents:
            return _Pending(query, sink, terms, [], None, [], [], [])
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
                sink.set_status(
                    "no_windows",
                    "no clue occurs in the candidate documents: evidence is constrained to "
                    "them without the forward-looking bonus",
                )
        tokens = [self.index.extract(w.start, w.end) for w in windows]
        texts = [self.tokenizer.decode(t, skip_special_tokens=True) for t in tokens]
        return _Pending(query, sink, terms, documents, sub_index, windows, tokens, texts)

    def _finish(self, p: _Pending, scores: np.ndarray) -> EvidenceContext:
        c = self.config
        order = [d.doc_index for d in p.documents]
        ranking = with_document_prior(p.windows, scores, order, c.window_doc_prior)
        ranked = top_windows(
            p.windows, ranking, c.top_windows, c.max_kept_windows_per_doc, c.disjoint_windows
        )
        position = {window: i for i, window in enumerate(p.windows)}
        keep = [position[window] for window, _ in ranked]
        raw = [s for _, s in ranked]  # what ranked them: S of eq. 12 is normalised from it
        ranked = [(window, float(scores[i])) for (window, _), i in zip(ranked, keep, strict=True)]
        weights = normalize_scores(raw, c.window_score_norm, c.window_score_floor)
        traces = window_traces(ranked, [p.texts[i] for i in keep], weights.tolist())
        table = None
        if keep:
            tokens = [p.window_tokens[i] for i in keep]
            anchors = None
            if c.anchored_start:
                anchors = [
                    window_anchors(t, self._token_before(w), self.token_texts, c.anchor_fraction)
                    for t, (w, _) in zip(tokens, ranked, strict=True)
                ]
            table = WindowTable.build(tokens, weights.tolist(), anchors)
        if len(p.windows) > len(keep):
            p.sink.note(f"{len(p.windows)} windows scored, top {len(keep)} kept")
        return EvidenceContext(
            expansion_terms=p.terms,
            documents=p.documents,
            windows=traces,
            index=p.index,
            table=table,
            window_docs=[w.doc_index for w, _ in ranked],
            located=[(w.doc_index, w.start, w.end) for w in p.windows],
        )

    def _token_before(self, window: Window) -> int:
        """The corpus token just before a window (-1 at its document's start)."""
        if window.start <= int(self.index.doc_offsets[window.doc_index]):
            return -1
        return int(self.index.extract(window.start - 1, window.start)[0])
