"""Where an evidence may start and end inside a future window, in corpus token ids.

One definition serves the decoder (which tokens start an evidence, when a stop token
gets the window's bonus) and the training targets (which span of a kept window the target
writes), so a target is always a span the decoder can be steered to.

- A sentence ends after a token whose text ends in '.', '!' or '?' (optionally followed
  by a closing quote or bracket) or holds a line break.
- The anchors of a window, where an evidence may start: the sentence starts in its first
  `fraction` (a token right after a sentence end); with none there, the window's first
  token. Windows are cut around clue hits, so they usually begin mid-sentence.
- A target evidence ends at the first sentence end once it has `min_tokens` tokens, or
  at `max_tokens`, or at its document's end, whichever comes first.
"""

from __future__ import annotations

import re

import numpy as np

_SENTENCE_END = re.compile(r"[.!?][\"'”’)\]]*\s*$")


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
        # A sentence or line is over after this token (the stop rule and anchors read it).
        self.closes_sentence = self.ends_sentence | self.has_newline

    def closes(self, token: int) -> bool:
        return 0 <= token < self.closes_sentence.size and bool(self.closes_sentence[token])


def window_anchors(
    window_tokens: np.ndarray, before: int, texts: TokenTexts, fraction: float
) -> np.ndarray:
    """Local offsets where an evidence may start in a window (ascending).

    `before` is the corpus token just before the window (-1 at a document start, which
    is a sentence start). Offsets are sentence starts in the window's first `fraction`,
    never a blank token; with none, the window's first token alone."""
    tokens = np.asarray(window_tokens, dtype=np.int64)
    n = int(tokens.size)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    head = max(1, int(np.ceil(n * fraction)))
    previous = np.concatenate([[before], tokens[: head - 1]])
    after_end = np.array([p < 0 or texts.closes(int(p)) for p in previous.tolist()], dtype=bool)
    ok = after_end & ~texts.blank[tokens[:head]]
    found = np.flatnonzero(ok)
    return found.astype(np.int64) if found.size else np.zeros(1, dtype=np.int64)


def evidence_end(
    doc_tokens: np.ndarray, start: int, texts: TokenTexts, min_tokens: int, max_tokens: int
) -> int:
    """Local end (exclusive) of a target evidence starting at `start` of a document's
    tokens: the first sentence end at or past `min_tokens` tokens, capped at
    `max_tokens` and at the document's end."""
    limit = min(int(doc_tokens.size), start + max_tokens)
    for end in range(start + max(1, min_tokens), limit + 1):
        if texts.closes(int(doc_tokens[end - 1])):
            return end
    return limit
