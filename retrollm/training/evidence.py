"""Target evidences: verbatim token spans of one document, and the relevance test.

Spans are cut on the corpus *token ids* (the ids the index holds), so an evidence is a
verbatim [start, end) span of one document and stays so in the target. Where a span
starts and ends is retrollm.retrieval.sentences' job, shared with the decoder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from retrollm.text import normalize_answer


@dataclass(frozen=True)
class Span:
    """A candidate evidence: global token positions [start, end) inside document `doc`."""

    doc: int
    start: int
    end: int
    text: str

    def overlaps(self, other: Span) -> bool:
        return self.start < other.end and other.start < self.end


def matching_answer(text: str, answers: Sequence[str]) -> str | None:
    """The first gold answer that occurs in `text` as whole words after normalization.

    Whole words (padding with spaces) so that "1" does not match "1987"; this is the
    relevance test of docs/method.md §8 without the paper's 70B-LLM confirmation.
    """
    haystack = f" {normalize_answer(text)} "
    for answer in answers:
        needle = normalize_answer(answer)
        if needle and f" {needle} " in haystack:
            return answer
    return None
