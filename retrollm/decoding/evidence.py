"""Evidence phase: the per-hypothesis rule, state updates, and where each evidence sits.

Modes (strategies.py): "candidates" (P: continuations in the candidate documents plus the
eq. 12 bonus from the kept windows), "hard-windows" (U: evidence i from window i, then its
document), "corpus" (continuations anywhere in the corpus) and "free" (no constraint).

In "candidates" mode, with the decode knobs of docs/evidence.md: each new evidence is
steered to the kept windows no earlier evidence used (distinct_windows), starts at one of
their anchors (anchored_start), never runs into an earlier evidence's corpus span, may end
at a sentence end with the window's bonus (stop_at_sentence_end), and min_evidences are
written while unused windows remain.
"""

from __future__ import annotations

import numpy as np

from retrollm.decoding.config import DecodeConfig
from retrollm.decoding.constraints import (
    Allowed,
    EvidenceBudget,
    advance_hits,
    clear_continuations,
    drop_ids,
    evidence_rule,
    forward_bonus,
    hard_window_start_hits,
    steering_window,
    window_continuations,
)
from retrollm.decoding.state import EvidenceSpan, Hypothesis
from retrollm.decoding.strategies import Strategy
from retrollm.index import TokenIndex
from retrollm.models import SpecialTokenIds

# Up to this many occurrences of an evidence prefix, its continuations are read from the
# occurrences themselves, so ones running into an earlier evidence can be left out; a prefix
# that common is a word or two long and narrows within a few tokens.
EXACT_MAX_OCCURRENCES = 64


class EvidenceRules:
    """Evidence-phase behaviour of one strategy (stateless; state lives on Hypothesis)."""

    def __init__(
        self,
        strategy: Strategy,
        config: DecodeConfig,
        special: SpecialTokenIds,
        stop_ids: np.ndarray,
        corpus_index: TokenIndex | None,
        closes_sentence: np.ndarray | None = None,
    ) -> None:
        """closes_sentence[id]: the token ends a sentence or line (TokenTexts); needed by
        stop_at_sentence_end, else None."""
        self.strategy, self.config, self.special = strategy, config, special
        self.stop_ids = stop_ids
        self.corpus_index = corpus_index
        self.closes_sentence = closes_sentence
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
            self.config, self._windows_left(hyp),
        )  # fmt: skip
        if budget.remaining < self.config.force_end_margin:
            hyp.set_status(
                "budget_exhausted",
                f"generation budget ({self.config.budget_tokens}) nearly spent inside an "
                "evidence: <|/evidence|> forced",
            )
        continuations, bonus, stop_bonus = None, None, 0.0
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
            stop_bonus = self._stop_bonus(hyp, bonus)
        s = self.special
        return evidence_rule(
            continuations, budget, self.config, s.sep, s.evidence_end, bonus, self.free_banned,
            stop_bonus,
        )  # fmt: skip

    def _distinct(self, hyp: Hypothesis) -> bool:
        table = hyp.context.table if hyp.context is not None else None
        return (
            self.config.distinct_windows
            and hyp.evidence_mode == "candidates"
            and table is not None
            and len(table) > 0
        )

    def _windows_left(self, hyp: Hypothesis) -> int | None:
        """Kept windows neither used nor steering the current evidence (None: evidences
        are not steered to distinct windows)."""
        if not self._distinct(hyp):
            return None
        taken = set(hyp.used_windows)
        if hyp.steering_window is not None:
            taken.add(hyp.steering_window)
        return len(hyp.context.table) - len(taken)

    def _continuations(self, hyp: Hypothesis) -> np.ndarray:
        depth = len(hyp.evidence_tokens)
        table, hits = hyp.context.table, hyp.window_hits
        if hyp.evidence_mode == "hard-windows" and (depth == 0 or depth < hyp.hard_head):
            inside = window_continuations(table, hits, depth)
            if inside.size or depth == 0:
                return inside
        if (
            hyp.evidence_mode == "candidates"
            and depth == 0
            and self.config.anchored_start
            and hits is not None
            and hits.size
        ):
            starts = drop_ids(window_continuations(table, hits, 0), self.stop_ids)
            if starts.size:
                return starts
        state = hyp.evidence_state
        if self._distinct(hyp) and hyp.used_spans and state.count <= EXACT_MAX_OCCURRENCES:
            positions, following = hyp.evidence_index.positions_with_next(state)
            ids = clear_continuations(positions, following, depth, hyp.used_spans)
            return drop_ids(ids, self.stop_ids)
        ids, _ = hyp.evidence_index.continuations(state)
        return drop_ids(ids, self.stop_ids)

    def _stop_bonus(self, hyp: Hypothesis, bonus: np.ndarray | None) -> float:
        """At a sentence end past min_evidence_tokens the stop tokens get the best bonus
        on offer (staying in the window no longer outbids stopping), at least lambda * S of
        the window the evidence came from (once past it, stopping wins over running on)."""
        c = self.config
        tokens = hyp.evidence_tokens
        if (
            not c.stop_at_sentence_end
            or self.closes_sentence is None
            or hyp.evidence_mode != "candidates"
            or len(tokens) < max(1, c.min_evidence_tokens)
            or not bool(self.closes_sentence[tokens[-1]])
        ):
            return 0.0
        best = float(bonus.max()) if bonus is not None and bonus.size else 0.0
        own = 0.0
        if hyp.steering_window is not None and hyp.context.table is not None:
            own = c.forward_lambda * float(hyp.context.table.scores[hyp.steering_window])
        return max(best, own)

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
        end = min(int(index.doc_offsets[int(docs[0]) + 1]), start + room)
        for used_start, used_end in hyp.used_spans:  # an evidence stops before an earlier one
            if used_start <= start < used_end:
                return []
            if start < used_start < end:
                end = used_start
        return index.extract(start, end).tolist()

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
                table = hyp.context.table
                hyp.window_hits = advance_hits(table, hyp.window_hits, depth, token)
                inside = steering_window(table, hyp.window_hits)
                if inside is not None or depth == 0:
                    hyp.steering_window = inside

    def _open(self, hyp: Hypothesis) -> None:
        ctx = hyp.context
        hyp.opened_evidences += 1
        hyp.evidence_tokens = []
        hyp.window_hits = None
        hyp.steering_window = None
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
            free = list(range(len(ctx.table)))
            if self._distinct(hyp):
                free = [k for k in free if k not in hyp.used_windows]
            if free:
                hyp.window_hits = ctx.table.start_hits(free, self.config.anchored_start)
            else:
                hyp.note("every kept window is used: an evidence without the window bonus")
        hyp.evidence_state = hyp.evidence_index.root()

    def _mode(self, hyp: Hypothesis) -> str:
        mode = self.strategy.evidence
        ctx = hyp.context
        if mode == "hard-windows" and (ctx.table is None or len(ctx.table) == 0):
            hyp.note("hard windows: no window to follow; evidence constrained by the documents")
            return "candidates"
        return mode

    def close(self, hyp: Hypothesis) -> None:
        """Record the finished evidence with its corpus location, and mark the windows it
        used (the one that steered it and every one it overlaps)."""
        if not hyp.evidence_tokens:
            hyp.note("an evidence was closed empty")
            return
        span = self._locate(hyp)
        hyp.evidences.append(span)
        if hyp.steering_window is not None:
            hyp.used_windows.add(hyp.steering_window)
        if span.start is not None and span.doc_index is not None and span.verbatim:
            end = span.start + len(span.tokens)
            hyp.used_spans.append((span.start, end))
            for k, window in enumerate(hyp.context.windows if hyp.context else []):
                if window.start < end and span.start < window.end:
                    hyp.used_windows.add(k)
        hyp.evidence_tokens = []

    # ------------------------------------------------------------------ location
    def _locate(self, hyp: Hypothesis) -> EvidenceSpan:
        """Where the evidence sits: among the occurrences of the whole evidence in the
        constraining index that overlap no earlier evidence, the one that starts inside
        the window that steered it, else inside the best unused kept window, else the
        first one in the best-ranked candidate document."""
        tokens = list(hyp.evidence_tokens)
        ctx = hyp.context
        if hyp.evidence_mode == "free":
            return self._locate_free(tokens)
        positions, docs = hyp.evidence_index.positions_and_docs(hyp.evidence_state)
        if positions.size == 0:
            return EvidenceSpan(tokens, None, None, hyp.current_window, False)
        if hyp.used_spans:
            clear = np.ones(positions.size, dtype=bool)
            for start, end in hyp.used_spans:
                clear &= ~((positions < end) & (start < positions + len(tokens)))
            if clear.any():
                positions, docs = positions[clear], docs[clear]
        if hyp.current_window is not None:  # hard windows: window i steers evidence i
            order = [hyp.current_window]
        else:
            unused = [k for k in range(len(ctx.windows)) if k not in hyp.used_windows]
            order = sorted(unused, key=lambda k: -ctx.windows[k].weight)
            if hyp.steering_window is not None:
                order = [hyp.steering_window] + [k for k in order if k != hyp.steering_window]
        for k in order:
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
