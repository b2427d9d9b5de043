"""Candidate evidences for a training question: corpus sentences as token spans.

Sentences are cut on the corpus *token ids* (the same ids the index holds), so every
candidate is a verbatim [start, end) span of one document and stays so in the target.
A boundary falls after a token whose text ends a sentence ('.', '!', '?', optionally
followed by a closing quote or bracket) when the next token starts with white space, and
around line breaks (which separate a document's title from its text). Sentences longer
than `max_tokens` are cut into consecutive pieces, so no target evidence exceeds it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from retrollm.text import normalize_answer

_SENTENCE_END = re.compile(r"[.!?][\"'”’)\]]*\s*$")
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Span:
    """A candidate evidence: global token positions [start, end) inside document `doc`."""

    doc: int
    start: int
    end: int
    text: str


class TokenTexts:
    """The decoded text of every vocabulary id, computed once (sentence cutting looks at
    each corpus token's text, and decoding ids one by one per document would be slow)."""

    def __init__(self, tokenizer: object) -> None:
        size = len(tokenizer)  # type: ignore[arg-type]
        self.texts: list[str] = tokenizer.batch_decode(  # type: ignore[attr-defined]
            [[i] for i in range(size)], skip_special_tokens=False
        )
        self.ends_sentence = np.array([bool(_SENTENCE_END.search(t)) for t in self.texts])
        self.starts_with_space = np.array([t[:1].isspace() for t in self.texts])
        self.has_newline = np.array(["\n" in t for t in self.texts])
        self.blank = np.array([not t.strip() for t in self.texts])


def split_sentences(
    ids: np.ndarray, texts: TokenTexts, max_tokens: int, min_tokens: int
) -> list[tuple[int, int]]:
    """Sentence spans [lo, hi) (local to `ids`) with leading/trailing blank tokens trimmed.

    Lines that do not end like a sentence (titles, headings) and spans shorter than
    `min_tokens` (stray fragments) are dropped; a sentence longer than `max_tokens` is cut
    into pieces that are all kept.
    """
    n = int(ids.shape[0])
    if n == 0:
        return []
    ids = ids.astype(np.int64, copy=False)
    newline = texts.has_newline[ids]
    cut_after = np.zeros(n, dtype=bool)
    cut_after[:-1] = texts.ends_sentence[ids[:-1]] & texts.starts_with_space[ids[1:]]
    cut_after[:-1] |= newline[:-1] | newline[1:]
    cut_after[-1] = True
    spans: list[tuple[int, int]] = []
    lo = 0
    for hi in (np.flatnonzero(cut_after) + 1).tolist():
        a, b = lo, hi
        lo = hi
        while a < b and texts.blank[ids[a]]:
            a += 1
        while b > a and texts.blank[ids[b - 1]]:
            b -= 1
        if b - a <= max_tokens and not texts.ends_sentence[ids[b - 1]]:
            continue  # a title or heading line, not a sentence
        for piece in range(a, b, max_tokens):
            end = min(b, piece + max_tokens)
            if end - piece >= min_tokens:
                spans.append((piece, end))
    return spans


class SentenceStore:
    """Sentences of documents, cut once per document and reused across questions."""

    def __init__(self, index: object, tokenizer: object, max_tokens: int, min_tokens: int) -> None:
        self.index = index
        self.tokenizer = tokenizer
        self.texts = TokenTexts(tokenizer)
        self.max_tokens = max_tokens
        self.min_tokens = min_tokens
        self._cache: dict[int, list[tuple[Span, frozenset[str]]]] = {}

    def sentences(self, doc: int) -> list[tuple[Span, frozenset[str]]]:
        """(span, lower-cased words) of every sentence of `doc`."""
        if doc not in self._cache:
            offsets = self.index.doc_offsets  # type: ignore[attr-defined]
            start, end = int(offsets[doc]), int(offsets[doc + 1])
            ids = self.index.extract(start, end)  # type: ignore[attr-defined]
            out = []
            for lo, hi in split_sentences(ids, self.texts, self.max_tokens, self.min_tokens):
                text = self.tokenizer.decode(ids[lo:hi].tolist())  # type: ignore[attr-defined]
                words = frozenset(w.lower() for w in _WORD.findall(text))
                out.append((Span(doc, start + lo, start + hi, text), words))
            self._cache[doc] = out
        return self._cache[doc]

    def token_ids(self, span: Span) -> list[int]:
        return self.index.extract(span.start, span.end).tolist()  # type: ignore[attr-defined]


def candidate_sentences(
    store: SentenceStore, docs: Sequence[int], terms: Sequence[str], limit: int
) -> list[Span]:
    """Sentences of `docs` (in ranking order) holding at least one expansion term.

    Terms are SPLADE vocabulary words (lower-case whole words, '##' pieces already
    excluded). Identical sentence texts count once (the higher-ranked document wins).
    """
    wanted = {t.lower() for t in terms}
    seen: set[str] = set()
    out: list[Span] = []
    for doc in docs:
        for span, words in store.sentences(int(doc)):
            if wanted.isdisjoint(words) or span.text in seen:
                continue
            seen.add(span.text)
            out.append(span)
            if len(out) >= limit:
                return out
    return out


def matching_answer(text: str, answers: Sequence[str]) -> str | None:
    """The first gold answer that occurs in `text` as whole words after normalization.

    Whole words (padding with spaces) so that "1" does not match "1987"; this is the
    relevance test of RETROLLM.md section 8 without the paper's 70B-LLM confirmation.
    """
    haystack = f" {normalize_answer(text)} "
    for answer in answers:
        needle = normalize_answer(answer)
        if needle and f" {needle} " in haystack:
            return answer
    return None
