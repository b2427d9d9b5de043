"""Answer normalization and the corpus-wide "does a gold answer occur" test.

`normalize_answer` is FlashRAG's (itself SQuAD's): the metrics reuse it, so "answerable"
here means exactly "an exact-match hit is possible from this corpus".
"""

from __future__ import annotations

import re
import string
from collections import defaultdict
from collections.abc import Iterable

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(s: str) -> str:
    """Lowercase, drop ASCII punctuation, drop the articles a/an/the, collapse white space."""
    text = s.lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


class AnswerMatcher:
    """Whole-word substring search of normalized answers in a normalized corpus.

    Scanning every document for every alias would take minutes (17k questions x 50
    aliases x 10k documents), so an inverted index narrows each answer to the documents
    holding its rarest word and only those are substring-checked.
    """

    def __init__(self, texts: Iterable[str]) -> None:
        self._documents: list[str] = []
        postings: defaultdict[str, list[int]] = defaultdict(list)
        for number, text in enumerate(texts):
            normalized = normalize_answer(text)
            # Padding with spaces turns "whole-word substring" into a plain substring test.
            self._documents.append(f" {normalized} ")
            for word in set(normalized.split()):
                postings[word].append(number)
        self._postings: dict[str, list[int]] = dict(postings)
        self._cache: dict[str, bool] = {}

    def __len__(self) -> int:
        return len(self._documents)

    def occurs(self, answer: str) -> bool:
        """Whether the normalized answer occurs in some document as whole words."""
        normalized = normalize_answer(answer)
        if not normalized:  # e.g. "The" or "...": would match everything, so it matches nothing
            return False
        if normalized not in self._cache:
            self._cache[normalized] = self._search(normalized)
        return self._cache[normalized]

    def any_occurs(self, answers: Iterable[str]) -> bool:
        return any(self.occurs(answer) for answer in answers)

    def _search(self, normalized: str) -> bool:
        words = normalized.split()
        if len(words) == 1:
            return words[0] in self._postings
        candidates = min((self._postings.get(word, []) for word in words), key=len)
        needle = f" {normalized} "
        return any(needle in self._documents[number] for number in candidates)
