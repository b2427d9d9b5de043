"""Evidence phase: the per-hypothesis rule, state updates, and where each evidence sits.

Modes (strategies.py): "candidates" (P: continuations in the candidate documents plus the
eq. 12 bonus from the kept windows), "hard-windows" (U: evidence i from window i, then its
document), "corpus" (continuations anywhere in the corpus) and "free" (no constraint).
"""

from __future__ import annotations

import numpy as np

from retrollm.decoding.config import DecodeConfig
from retrollm.decoding.constraints import (
    Allowed,
    EvidenceBudget,
    advance_hits,
    drop_ids,
    evidence_rule,
    forward_bonus,
    hard_window_start_hits,
    window_continuations,
)
from retrollm.decoding.state import EvidenceSpan, Hypothesis
from retrollm.decoding.strategies import Strategy
from retrollm.index import CorpusIndex
from retrollm.models import SpecialTokenIds


class EvidenceRules:
    """Evidence-phase behaviour of one strategy (stateless; state lives on Hypothesis)."""

    def __init__(
        self,
        strategy: Strategy,
        config: DecodeConfig,
        special: SpecialTokenIds,
        stop_ids: np.ndarray,
        corpus_index: CorpusIndex | None,
    ) -> None:
        self.strategy, self.config, self.special = strategy, config, special
        self.stop_ids = stop_ids
        self.corpus_index = corpus_index
        s = special
        self.free_banned = np.concatenate([stop_ids, [s.clue, s.clue_end, s.evidence]])

    # ----------------------------------------------------------------------- rule
    def rule(self, hyp: Hypothesis) -> Allowed:
        ctx = hyp.context
        n_windows = None  # strategies without windows: the max_evidences cap alone
        if self.strategy.windows:
            n_windows = len(ctx.table) if ctx.table is not None else 0
        cap = self.config.evidence_cap(n_windows)
        budget = EvidenceBudget.of(
            len(hyp.evidence_tokens), len(hyp.generated), hyp.opened_evidences - 1, cap,
            self.config,
        )  # fmt: skip
        if budget.remaining < self.config.force_end_margin:
            hyp.set_status(
                "budget_exhausted",
                f"generation budget ({self.config.budget_tokens}) nearly spent inside an "
                "evidence: <|/evidence|> forced",
            )
        continuations, bonus = None, None
        if hyp.evidence_mode != "free":
            continuations = self._continuations(hyp)
            steer = self.config.forward_lambda != 0 and hyp.window_hits is not None
            if hyp.evidence_mode == "candidates" and steer:
                bonus = forward_bonus(
                    ctx.table,
                    hyp.window_hits,
                    len(hyp.evidence_tokens),
                    continuations,
                    self.config.forward_lambda,
                )
        s = self.special
        return evidence_rule(
            continuations, budget, self.config, s.sep, s.evidence_end, bonus, self.free_banned
        )

    def _continuations(self, hyp: Hypothesis) -> np.ndarray:
        depth = len(hyp.evidence_tokens)
        if hyp.evidence_mode == "hard-windows" and (depth == 0 or depth < hyp.hard_head):
            inside = window_continuations(hyp.context.table, hyp.window_hits, depth)
            if inside.size or depth == 0:
                return inside
        ids, _ = hyp.evidence_index.continuations(hyp.evidence_state)
        return drop_ids(ids, self.stop_ids)

    def draft(self, hyp: Hypothesis, generated: int) -> list[int]:
        """The document text after the evidence prefix when it occurs at one place only:
        then the index allows that one token at every step (besides the stop tokens), up
        to the document's end, max_evidence_tokens, or the budget's forced end."""
        state = hyp.evidence_state
        if hyp.evidence_mode == "free" or state is None or state.count != 1:
            return []
        depth = len(hyp.evidence_tokens)
        c = self.config
        room = min(c.max_evidence_tokens - depth, c.budget_tokens - c.force_end_margin - generated)
        if room <= 0:
            return []
        index = hyp.evidence_index  # a restriction keeps global positions and offsets
        positions, docs = index.positions_and_docs(state)
        start = int(positions[0]) + depth
        doc_end = int(index.doc_offsets[int(docs[0]) + 1])
        return index.extract(start, min(doc_end, start + room)).tolist()

    # ---------------------------------------------------------------- transitions
    def feed(self, hyp: Hypothesis, token: int) -> None:
        """Apply one token emitted in the evidence phase."""
        if token == self.special.evidence:
            self._open(hyp)
        elif token == self.special.sep:
            self.close(hyp)
            self._open(hyp)
        else:
            depth = len(hyp.evidence_tokens)
            hyp.evidence_tokens.append(token)
            if hyp.evidence_mode == "free":
                return
            hyp.evidence_state = hyp.evidence_index.extend(hyp.evidence_state, [token])[0]
            if hyp.window_hits is not None:
                hyp.window_hits = advance_hits(hyp.context.table, hyp.window_hits, depth, token)

    def _open(self, hyp: Hypothesis) -> None:
        ctx = hyp.context
        hyp.opened_evidences += 1
        hyp.evidence_tokens = []
        hyp.window_hits = None
        hyp.evidence_mode = self._mode(hyp)
        if hyp.evidence_mode == "free":
            return
        if ctx.index is None:
            hyp.set_status("no_documents", "no candidate document: the evidence block is empty")
            hyp.force([self.special.evidence_end])
            hyp.evidence_mode = "free"
            return
        hyp.evidence_index = ctx.index
        if hyp.evidence_mode == "hard-windows":
            window = hyp.opened_evidences - 1
            hyp.current_window = window
            hyp.evidence_index = ctx.index.restrict([ctx.window_docs[window]])
            hyp.window_hits = hard_window_start_hits(
                ctx.table, window, self.config.hard_window_start_fraction
            )
            hyp.hard_head = int(hyp.window_hits.size)
        elif ctx.table is not None and len(ctx.table):
            hyp.window_hits = ctx.table.all_hits()
        hyp.evidence_state = hyp.evidence_index.root()

    def _mode(self, hyp: Hypothesis) -> str:
        mode = self.strategy.evidence
        ctx = hyp.context
        if mode == "hard-windows" and (ctx.table is None or len(ctx.table) == 0):
            hyp.note("hard windows: no window to follow; evidence constrained by the documents")
            return "candidates"
        return mode

    def close(self, hyp: Hypothesis) -> None:
        """Record the finished evidence with its corpus location."""
        if not hyp.evidence_tokens:
            hyp.note("an evidence was closed empty")
            return
        hyp.evidences.append(self._locate(hyp))
        hyp.evidence_tokens = []

    # ------------------------------------------------------------------ location
    def _locate(self, hyp: Hypothesis) -> EvidenceSpan:
        """Where the evidence sits: among the occurrences of the whole evidence in the
        constraining index, the one that starts inside the best kept window (the window
        that steered it), else the first one in the best-ranked candidate document."""
        tokens = list(hyp.evidence_tokens)
        ctx = hyp.context
        if hyp.evidence_mode == "free":
            return self._locate_free(tokens)
        positions, docs = hyp.evidence_index.positions_and_docs(hyp.evidence_state)
        if positions.size == 0:
            return EvidenceSpan(tokens, None, None, hyp.current_window, False)
        order = range(len(ctx.windows))
        if hyp.current_window is not None:  # hard windows: window i steers evidence i
            order = [hyp.current_window]
        for k in sorted(order, key=lambda k: -ctx.windows[k].score):
            window = ctx.windows[k]
            inside = np.flatnonzero((positions >= window.start) & (positions < window.end))
            if inside.size:
                first = int(inside[0])
                return EvidenceSpan(tokens, int(docs[first]), int(positions[first]), k, True)
        rank = {d.doc_index: r for r, d in enumerate(ctx.documents)}
        best = np.lexsort((positions, [rank.get(int(d), len(rank)) for d in docs]))[0]
        return EvidenceSpan(tokens, int(docs[best]), int(positions[best]), hyp.current_window, True)

    def _locate_free(self, tokens: list[int]) -> EvidenceSpan:
        """Unconstrained evidence: verbatim only if it happens to occur in the corpus."""
        if self.corpus_index is not None:
            state = self.corpus_index.state(tokens)
            if state.alive:
                positions, docs = self.corpus_index.positions_and_docs(state)
                return EvidenceSpan(tokens, int(docs[0]), int(positions[0]), None, True)
        return EvidenceSpan(tokens, None, None, None, False)
