"""The window-ranking features of bench/window_choice.py on hand-made windows."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from bench.window_choice import document_prior, lexical_overlap, minmax


def test_minmax_maps_onto_unit_interval_and_flat_scores_to_one() -> None:
    assert minmax(np.asarray([2.0, 4.0, 3.0])).tolist() == [0.0, 1.0, 0.5]
    assert minmax(np.asarray([7.0, 7.0])).tolist() == [1.0, 1.0]


def test_document_prior_falls_with_the_rank_of_the_window_document() -> None:
    windows = [SimpleNamespace(doc_index=d) for d in (30, 10, 30, 20)]
    prior = document_prior({"windows": windows, "doc_rank": {10: 0, 20: 1, 30: 3, 40: 2}})
    assert prior.tolist() == [0.25, 1.0, 0.25, 0.75]


def test_lexical_overlap_counts_content_words_only() -> None:
    overlap = lexical_overlap("Who wrote the play Hamlet?", ["Hamlet is a play", "the who"])
    assert overlap.tolist() == [2 / 3, 0.0]  # content words: wrote, play, hamlet
