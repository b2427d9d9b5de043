"""Character spans for the inspector's highlights: where a gold answer occurs in a text
(as Acc and the funnel match it) and where an evidence or window sits in its document.

Acc compares *normalized* text (lowercase, no ASCII punctuation, no articles, collapsed
white space), so a gold answer's occurrence is found in the normalized text and mapped
back to the original characters; a marked span is then exactly what `has_answer` saw.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

from retrollm.text import normalize_answer

Span = tuple[int, int]
_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")  # the pattern normalize_answer removes


def _normalized_with_offsets(text: str) -> tuple[str, list[int]]:
    """normalize_answer(text), plus for each of its characters the index in `text` it
    came from (a space left by a removed article points at the article)."""
    lowered = text.lower()
    if len(lowered) == len(text):
        pairs = list(zip(lowered, range(len(text)), strict=True))
    else:  # a character whose lowercase is longer (e.g. "İ"): keep per-character origins
        pairs = [(low, i) for i, char in enumerate(text) for low in char.lower()]
    pairs = [(char, i) for char, i in pairs if char not in _PUNCTUATION]
    stripped = "".join(char for char, _ in pairs)
    kept: list[tuple[str, int]] = []
    cursor = 0
    for match in _ARTICLES.finditer(stripped):
        kept += pairs[cursor : match.start()]
        kept.append((" ", pairs[match.start()][1]))
        cursor = match.end()
    kept += pairs[cursor:]
    chars: list[str] = []
    origins: list[int] = []
    for char, origin in kept:
        if char.isspace():
            if chars and chars[-1] != " ":
                chars.append(" ")
                origins.append(origin)
            continue
        chars.append(char)
        origins.append(origin)
    if chars and chars[-1] == " ":
        chars.pop()
        origins.pop()
    return "".join(chars), origins


def gold_spans(text: str, golden_answers: Sequence[str]) -> list[Span]:
    """Sorted, merged [start, end) character spans of `text` where a normalized gold answer
    occurs; empty exactly when `retrollm.metrics.has_answer(text, golden_answers)` is False."""
    golds = [g for g in dict.fromkeys(normalize_answer(a) for a in golden_answers) if g]
    if not golds or not text:
        return []
    normalized, origins = _normalized_with_offsets(text)
    found: list[Span] = []
    for gold in golds:
        at = normalized.find(gold)
        while at != -1:
            found.append((origins[at], origins[at + len(gold) - 1] + 1))
            at = normalized.find(gold, at + 1)
    merged: list[Span] = []
    for start, end in sorted(found):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def locate(document: str, text: str) -> Span | None:
    """Where `text` (an evidence or a window, decoded from corpus tokens) sits in its
    document's text: the first exact occurrence, else of the text without surrounding
    white space (a decoded span may start inside a space); None when it is not there."""
    for needle in (text, text.strip()):
        if needle:
            at = document.find(needle)
            if at != -1:
                return at, at + len(needle)
    return None
