"""Per-hypothesis decoding state: what one row of the batch remembers between steps.

A hypothesis keeps its index states (suffix-array ranges) instead of its prefixes' text,
so each step narrows a range by one token rather than searching the prefix again, and it
keeps its window hits (where the evidence prefix sits inside the kept windows) so the
eq. 12 bonus is a lookup, not a scan. Everything the trace needs is recorded as it
happens; nothing is reconstructed from the output text afterwards.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from retrollm.index import IndexState, TokenIndex
from schemas.prediction import DocumentTrace, WindowTrace

PHASE_NAMES = ("clue", "evidence", "answer", "done")


class Phase(IntEnum):
    """Where a hypothesis is in `<|clue|> .. <|/clue|> <|evidence|> .. <|/evidence|> answer`."""

    CLUE = 0
    EVIDENCE = 1
    ANSWER = 2
    DONE = 3

    @property
    def label(self) -> str:
        return PHASE_NAMES[self]


@dataclass
class Query:
    """One question as the decoder sees it (the prompt is already tokenized and cut)."""

    id: str
    question: str
    golden_answers: list[str]
    prompt_ids: list[int]
    expansion_terms: list[tuple[str, float]] = field(default_factory=list)  # SPLADE, k_aux
    sparse_docs: np.ndarray | None = None  # SPLADE document ranking R2 (doc indices)
    sparse_scores: np.ndarray | None = None
    status: str = "ok"
    notes: list[str] = field(default_factory=list)


@dataclass
class WindowTable:
    """The kept windows' tokens, concatenated with a -1 after each, for prefix matching.

    `hits` arrays elsewhere are offsets into `tokens`: the start of each place where the
    current evidence prefix occurs inside a window. A hit at offset i with prefix length d
    predicts next token tokens[i + d] (-1 when the window ends there).
    """

    tokens: np.ndarray  # int64, windows and -1 separators
    window_of: np.ndarray  # int64, window index of every offset (-1 on separators)
    starts: np.ndarray  # int64, offset of each window's first token
    scores: np.ndarray  # float64, S(w) per window
    anchors: list[np.ndarray] | None = None  # table offsets where each window's evidence may start

    @classmethod
    def build(
        cls,
        windows: list[np.ndarray],
        scores: list[float],
        anchors: list[np.ndarray] | None = None,
    ) -> WindowTable:
        """`anchors`: per window, local offsets where an evidence may start (None: any)."""
        pieces: list[np.ndarray] = []
        owners: list[np.ndarray] = []
        starts = np.zeros(len(windows), dtype=np.int64)
        offset = 0
        for k, window in enumerate(windows):
            starts[k] = offset
            pieces += [np.asarray(window, dtype=np.int64), np.full(1, -1, dtype=np.int64)]
            owners += [np.full(len(window), k, dtype=np.int64), np.full(1, -1, dtype=np.int64)]
            offset += len(window) + 1
        empty = np.zeros(0, dtype=np.int64)
        table_anchors = None
        if anchors is not None:
            if len(anchors) != len(windows):
                raise ValueError(f"{len(anchors)} anchor lists for {len(windows)} windows")
            table_anchors = [
                starts[k] + np.asarray(a, dtype=np.int64)[(a >= 0) & (a < len(windows[k]))]
                for k, a in enumerate(anchors)
            ]
        return cls(
            np.concatenate(pieces) if pieces else empty,
            np.concatenate(owners) if owners else empty,
            starts,
            np.asarray(scores, dtype=np.float64),
            table_anchors,
        )

    def __len__(self) -> int:
        return int(self.starts.shape[0])

    def all_hits(self) -> np.ndarray:
        """Hits of the empty prefix: every token offset of every window."""
        return np.flatnonzero(self.tokens >= 0)

    def start_hits(self, windows: Sequence[int], anchored: bool) -> np.ndarray:
        """Where a new evidence may start in the given windows: their anchors, or every
        offset of them (anchored False, or no anchors computed)."""
        if not len(windows):
            return np.zeros(0, dtype=np.int64)
        if anchored and self.anchors is not None:
            return np.sort(np.concatenate([self.anchors[k] for k in windows]))
        return np.flatnonzero(np.isin(self.window_of, np.asarray(list(windows), dtype=np.int64)))


@dataclass
class EvidenceContext:
    """What the clues retrieved for one hypothesis: fixed once its clue phase ends."""

    expansion_terms: list[str]
    documents: list[DocumentTrace]
    windows: list[WindowTrace]
    index: TokenIndex | None  # evidence constraint (candidate docs, or whole corpus)
    table: WindowTable | None  # kept windows for eq. 12 / hard windows
    window_docs: list[int] = field(default_factory=list)  # doc index per kept window
    located: list[tuple[int, int, int]] = field(default_factory=list)  # (doc, start, end), all


@dataclass
class EvidenceSpan:
    """One finished evidence with where it sits in the corpus (None if it sits nowhere)."""

    tokens: list[int]
    doc_index: int | None
    start: int | None
    window: int | None
    verbatim: bool


@dataclass
class Hypothesis:
    """One row of the batch. Mutated in place by the decoder, read by trace.py."""

    query: Query
    phase: Phase = Phase.CLUE
    generated: list[int] = field(default_factory=list)
    forced: deque[int] = field(default_factory=deque)
    # clue phase
    clue_tokens: list[int] = field(default_factory=list)
    clues: list[list[int]] = field(default_factory=list)  # distinct, in order
    clues_closed: int = 0
    clue_state: IndexState | None = None
    # evidence phase
    context: EvidenceContext | None = None
    evidence_index: TokenIndex | None = None
    evidence_state: IndexState | None = None
    evidence_tokens: list[int] = field(default_factory=list)
    evidences: list[EvidenceSpan] = field(default_factory=list)
    window_hits: np.ndarray | None = None
    evidence_mode: str = ""  # resolved per hypothesis (hard windows fall back without windows)
    opened_evidences: int = 0
    current_window: int | None = None  # hard windows: the window evidence i must use
    hard_head: int = 0  # hard windows: length of the window part evidence i must start in
    used_windows: set[int] = field(default_factory=set)  # kept windows earlier evidences used
    used_spans: list[tuple[int, int]] = field(default_factory=list)  # their corpus spans
    steering_window: int | None = None  # best kept window the current evidence lies in
    # answer phase
    answer_start: int | None = None
    # bookkeeping
    forward_passes: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    forced_count: int = 0

    @property
    def done(self) -> bool:
        return self.phase is Phase.DONE

    @property
    def status(self) -> str:
        return self.query.status

    def set_status(self, status: str, note: str | None = None) -> None:
        """Keep the first problem as the status (it explains the rest); note every one."""
        if self.query.status == "ok":
            self.query.status = status
        if note:
            self.note(note)

    def note(self, text: str) -> None:
        if text not in self.query.notes:
            self.query.notes.append(text)

    def add_time(self, key: str, seconds: float) -> None:
        self.timings[key] = self.timings.get(key, 0.0) + seconds

    def force(self, tokens: list[int]) -> None:
        """Queue tokens to emit next regardless of the logits (still one step each)."""
        self.forced.extend(tokens)
