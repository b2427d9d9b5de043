"""Candidate evidences for a training question: sentence-aligned corpus token windows.

Everything is cut on the corpus *token ids* (the ids the index holds), so a candidate is
a verbatim [start, end) span of one document and stays so in the target.

Sentences: a boundary falls after a token whose text ends a sentence ('.', '!', '?',
optionally followed by a closing quote or bracket) when the next token starts with white
space, and around line breaks; lines that do not end like a sentence (titles, headings)
are no sentences.

Evidence windows: the paper's evidences are sentences, but the decoder's length rules
(U, RETROLLM.md 6) only let an evidence end after `min_tokens` (64) tokens, or at the end
of its document, and force it to end by 160. A target the decoder cannot produce teaches
nothing, so a candidate starts at a sentence and takes whole following sentences until
it has at least `min_tokens` tokens (cut at `max_tokens` if a sentence runs on; running
into the document's end is allowed). With `min_tokens = 0` candidates are plain sentences.
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

    def overlaps(self, other: Span) -> bool:
        return self.start < other.end and other.start < self.end


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


def split_sentences(ids: np.ndarray, texts: TokenTexts) -> list[tuple[int, int]]:
    """Sentence spans [lo, hi) (local to `ids`), blank tokens trimmed at both ends."""
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
        if b > a and texts.ends_sentence[ids[b - 1]]:  # else a title or heading line
            spans.append((a, b))
    return spans


def sentence_windows(
    sentences: Sequence[tuple[int, int]], n_tokens: int, min_tokens: int, max_tokens: int
) -> list[tuple[int, int]]:
    """One window per sentence start: whole sentences until >= min_tokens tokens, cut at
    max_tokens; a window that runs out of sentences ends at the document end."""
    windows = []
    for i, (start, end) in enumerate(sentences):
        j = i
        while end - start < min_tokens and j + 1 < len(sentences):
            j += 1
            end = sentences[j][1]
        if end - start < min_tokens:
            end = n_tokens  # the document ends first: the decoder may stop there
        windows.append((start, min(end, start + max_tokens)))
    return windows


class WindowStore:
    """Evidence windows of documents, cut once per document and reused across questions."""

    def __init__(self, index: object, tokenizer: object, min_tokens: int, max_tokens: int) -> None:
        if min_tokens > max_tokens:
            raise ValueError(f"min_tokens {min_tokens} exceeds max_tokens {max_tokens}")
        self.index = index
        self.tokenizer = tokenizer
        self.texts = TokenTexts(tokenizer)
        self.min_tokens = min_tokens
        self.max_tokens = max_tokens
        self._cache: dict[int, list[tuple[Span, frozenset[str]]]] = {}

    def windows(self, doc: int) -> list[tuple[Span, frozenset[str]]]:
        """(span, lower-cased words) of every window of `doc`."""
        if doc not in self._cache:
            offsets = self.index.doc_offsets  # type: ignore[attr-defined]
            start, end = int(offsets[doc]), int(offsets[doc + 1])
            ids = self.index.extract(start, end)  # type: ignore[attr-defined]
            sentences = split_sentences(ids, self.texts)
            out = []
            for lo, hi in sentence_windows(sentences, len(ids), self.min_tokens, self.max_tokens):
                text = self.tokenizer.decode(ids[lo:hi].tolist())  # type: ignore[attr-defined]
                words = frozenset(w.lower() for w in _WORD.findall(text))
                out.append((Span(doc, start + lo, start + hi, text), words))
            self._cache[doc] = out
        return self._cache[doc]

    def token_ids(self, span: Span) -> list[int]:
        return self.index.extract(span.start, span.end).tolist()  # type: ignore[attr-defined]

    def ends_document(self, span: Span) -> bool:
        return span.end == int(self.index.doc_offsets[span.doc + 1])  # type: ignore[attr-defined]


def candidate_windows(
    store: WindowStore,
    docs: Sequence[int],
    terms: Sequence[str],
    limit: int,
    weights: Sequence[float] | None = None,
) -> list[Span]:
    """Up to `limit` windows of `docs` holding at least one expansion term.

    Terms are SPLADE vocabulary words (lower-case whole words, '##' pieces excluded).
    When more windows qualify, those whose terms carry the most SPLADE weight are kept
    (ties: document rank, then position), so the relevance model, by far the costliest
    step on a CPU, scores a bounded number per question. Identical texts count once.
    """
    weight = dict(zip((t.lower() for t in terms), weights or [1.0] * len(terms), strict=True))
    wanted = set(weight)
    seen: set[str] = set()
    found: list[tuple[float, int, Span]] = []
    for doc in docs:
        for span, words in store.windows(int(doc)):
            hits = wanted.intersection(words)
            if not hits or span.text in seen:
                continue
            seen.add(span.text)
            found.append((-sum(weight[t] for t in hits), len(found), span))
    found.sort(key=lambda item: (item[0], item[1]))
    return [span for _, _, span in found[:limit]]


def top_disjoint(spans: Sequence[Span], scores: np.ndarray, k: int) -> list[int]:
    """Indices of the k best-scored spans that do not overlap a better one (windows start
    at every sentence, so neighbours share text; a target repeats no text). Ties go to
    the earlier candidate, i.e. the better-ranked document."""
    chosen: list[int] = []
    for i in sorted(range(len(spans)), key=lambda i: (-float(scores[i]), i)):
        if not any(spans[i].overlaps(spans[j]) for j in chosen):
            chosen.append(i)
            if len(chosen) == k:
                break
    return chosen


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
