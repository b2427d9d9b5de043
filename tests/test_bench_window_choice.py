"""The lexical ranking feature of bench/window_choice.py on hand-made windows."""

from __future__ import annotations

from bench.window_choice import lexical_overlap


def test_lexical_overlap_counts_content_words_only() -> None:
    overlap = lexical_overlap("Who wrote the play Hamlet?", ["Hamlet is a play", "the who"])
    assert overlap.tolist() == [2 / 3, 0.0]  # content words: wrote, play, hamlet
