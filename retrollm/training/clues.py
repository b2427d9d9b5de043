"""Target clues: key spans of the question and of the relevant evidence.

The paper had a 70B LLM name the key entities. Offline we rank candidate spans (runs of
1..max_words words that neither start nor end with a stop word) by the clue weight the
decoder itself uses to score documents, w = log(N / CF) + log(N / DF) (docs/method.md §4, eq. 5):
rare, specific phrases ("Harry Potter", "Eiffel Tower") outrank common words, and a span
that does not occur in the corpus at all, or more than `max_hits` times (the released
code's cut-off: such a clue selects nothing), is never a clue. Nor is a span whose tokens
fall outside the decoder's clue lengths (U: at least 2 tokens before a separator, at
most 7), so single-token words only become clues inside longer spans.

Questions are often lower-cased (NQ), the corpus is not: each question span is tried as
written, in Title Case and in lower case, and the corpus form with the most occurrences
wins. Evidence text is cased, so its spans are taken as written, names only. The chosen
ids are what the corpus holds, so the clue is reachable under the decoder's corpus-level
constraint by construction.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from retrollm.text import normalize_answer

_STOP_WORDS_TEXT = """a about above after again against all also am an and any are as at be
because been before being below between both but by can could did do does doing down during
each few for from further had has have having he her here hers him his how i if in into is it
its itself just many me more most much my no nor not now of off on once only or other our out
over own same she should so some such than that the their them then there these they this
those through to too under until up very was we were what when where which while who whom
whose why will with would you your s t"""
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())
# Lower-case words that occur inside names ("Bank of America", "Leonardo da Vinci").
NAME_JOINERS = frozenset({"of", "the", "de", "da", "di", "del", "du", "la", "le", "von", "van"})
_WORD = re.compile(r"\w+(?:['’.\-]\w+)*")


@dataclass(frozen=True)
class Clue:
    """A chosen clue: corpus token ids, its text, weight and corpus frequency."""

    text: str
    token_ids: tuple[int, ...]
    weight: float
    corpus_count: int
    doc_count: int


def _is_name(word: str) -> bool:
    return word[:1].isupper() or word[:1].isdigit()


def candidate_spans(text: str, max_words: int) -> list[tuple[int, int, str]]:
    """(first word, last word + 1, span text) for every run of up to `max_words` words
    joined by single spaces in `text`, neither starting nor ending with a stop word."""
    words = list(_WORD.finditer(text))
    out: list[tuple[int, int, str]] = []
    for i, first in enumerate(words):
        if first.group().lower() in STOP_WORDS:
            continue
        for j in range(i, min(len(words), i + max_words)):
            if j > i and text[words[j - 1].end() : words[j].start()] != " ":
                break
            if words[j].group().lower() not in STOP_WORDS:
                out.append((i, j + 1, text[first.start() : words[j].end()]))
    return out


def name_spans(text: str, max_words: int) -> list[tuple[int, int, str]]:
    """Complete names in cased text: maximal runs of capitalised words and numbers, joined
    by single spaces or by "of", "da", ... ("Bank of America", "Apollo 11").

    Only whole runs count, so the rarest fragment of a name ("Minor and Europe" out of
    "Asia Minor and Europe") cannot win on weight. A lone capitalised word that opens a
    sentence is no name; a run of numbers alone neither. Runs longer than `max_words`
    are skipped.
    """
    words = list(_WORD.finditer(text))

    def joins(j: int) -> bool:  # joiner(s) followed by a name: "of the United"
        while j < len(words) and words[j].group() in NAME_JOINERS:
            j += 1
        return j < len(words) and _is_name(words[j].group())

    out: list[tuple[int, int, str]] = []
    i = 0
    while i < len(words):
        j = i
        while j < len(words) and (
            _is_name(words[j].group()) or (j > i and words[j].group() in NAME_JOINERS and joins(j))
        ):
            if j > i and text[words[j - 1].end() : words[j].start()] != " ":
                break
            j += 1
        start, i = i, max(j, i + 1)
        while start < j and words[start].group().lower() in STOP_WORDS:  # "The Beatles"
            start += 1
        run = [w.group() for w in words[start:j]]
        before = text[: words[start].start()].rstrip() if run else ""
        opens_sentence = not before or before[-1] in ".!?"
        named = any(w[:1].isupper() for w in run)
        if named and len(run) <= max_words and not (opens_sentence and len(run) == 1):
            out.append((start, j, text[words[start].start() : words[j - 1].end()]))
    return out


def _variants(span: str, recase: bool) -> list[str]:
    """Corpus forms to try, each after a space: a clue is a run of whole words, and a form
    without the space would also match inside longer words ("Cup" in "Cupertino")."""
    forms = [span]
    if recase:
        forms += [" ".join(w[:1].upper() + w[1:] for w in span.split(" ")), span.lower()]
    return [" " + form for form in dict.fromkeys(forms)]


class ClueFinder:
    """Scores candidate spans against the corpus index (cached across questions)."""

    def __init__(
        self,
        index: object,
        tokenizer: object,
        max_words: int = 3,
        min_tokens: int = 2,
        max_tokens: int = 7,
        max_hits: int = 1000,
        forbidden_ids: Iterable[int] = (),
    ) -> None:
        self.index = index
        self.tokenizer = tokenizer
        self.max_words = max_words
        self.min_tokens = min_tokens
        self.max_tokens = max_tokens
        self.max_hits = max_hits
        self.forbidden = frozenset(forbidden_ids)
        self.n_docs = int(index.n_docs)  # type: ignore[attr-defined]
        self._cache: dict[tuple[str, bool], Clue | None] = {}

    def score(self, span: str, recase: bool) -> Clue | None:
        """The best corpus form of `span`, or None if no form is a usable clue."""
        key = (span, recase)
        if key not in self._cache:
            self._cache[key] = self._score(span, recase)
        return self._cache[key]

    def _score(self, span: str, recase: bool) -> Clue | None:
        """The span's most frequent corpus form is the clue, or nothing: when that form
        breaks the clue length rules the span is rejected, not replaced by a rarer casing
        (" elected" is one token, " Elected" two, and is mostly a sentence opening)."""
        best: tuple[int, list[int]] | None = None
        for form in _variants(span, recase):
            ids = self.tokenizer.encode(form, add_special_tokens=False)  # type: ignore[attr-defined]
            if not ids or self.forbidden.intersection(ids):
                continue
            count = int(self.index.count(ids))  # type: ignore[attr-defined]
            if best is None or count > best[0]:
                best = (count, ids)
        if best is None or not 1 <= best[0] <= self.max_hits:
            return None
        if not self.min_tokens <= len(best[1]) <= self.max_tokens:
            return None
        count, ids = best
        positions = self.index.locate(ids)  # type: ignore[attr-defined]
        docs = int(np.unique(self.index.doc_of(positions)).shape[0])  # type: ignore[attr-defined]
        weight = math.log(self.n_docs / count) + math.log(self.n_docs / max(docs, 1))
        text = self.tokenizer.decode(ids)  # type: ignore[attr-defined]
        return Clue(text.strip(), tuple(int(i) for i in ids), weight, count, docs)

    def pick(
        self,
        text: str,
        k: int,
        recase: bool,
        exclude: Sequence[str] = (),
        names_only: bool = False,
    ) -> list[Clue]:
        """Up to k heaviest clues from non-overlapping spans of `text`.

        `exclude`: normalized strings a clue may not contain nor be contained in (clues
        already chosen, gold answers when they are not to be clues).
        """
        if k <= 0:
            return []
        scored = []
        spans = name_spans if names_only else candidate_spans
        for first, last, span in spans(text, self.max_words):
            clue = self.score(span, recase)
            if clue is not None:
                scored.append((-clue.weight, first, last, clue))
        # Heaviest first; on a tie the longer span ("Mona Lisa" over "Mona"), then the earlier.
        scored.sort(key=lambda item: (item[0], item[1] - item[2], item[1]))
        taken: set[int] = set()
        blocked = [e for e in exclude if e]
        chosen: list[Clue] = []
        for _, first, last, clue in scored:
            words = set(range(first, last))
            norm = normalize_answer(clue.text)
            if not norm or taken & words or any(_overlaps(norm, e) for e in blocked):
                continue
            chosen.append(clue)
            taken |= words
            blocked.append(norm)
            if len(chosen) == k:
                break
        return chosen


def _overlaps(a: str, b: str) -> bool:
    """Whole-word containment either way between two normalized strings."""
    a, b = f" {a} ", f" {b} "
    return a in b or b in a
