"""Future windows: placement, clipping, merging, caps, scoring, and term variants."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from retrollm.index import CorpusIndex
from retrollm.retrieval.windows import (
    Window,
    clue_sequences,
    find_windows,
    score_windows,
    term_variants,
    top_windows,
    window_traces,
    with_document_prior,
)

FILLER = 1000  # filler ids are FILLER + global position: unique, never a clue


def build(lengths: Sequence[int], plants: dict[tuple[int, int], Sequence[int]]) -> CorpusIndex:
    """Documents of filler tokens with clue ids planted at (doc, local position)."""
    offsets = np.cumsum([0, *lengths])
    tokens = FILLER + np.arange(offsets[-1])
    for (doc, local), seq in plants.items():
        start = offsets[doc] + local
        tokens[start : start + len(seq)] = seq
    return CorpusIndex.build(tokens, offsets)


def spans(windows: list[Window]) -> list[tuple[int, int, int, str]]:
    return [(w.doc_index, w.start, w.end, w.clue) for w in windows]


def test_a_clue_that_occurs_once_gets_a_window_centred_on_it() -> None:
    # The released code put this window around the wrong suffix-array entry.
    index = build([200, 200], {(1, 100): [1, 2]})
    sub = index.restrict([1])
    found = find_windows(sub, [1], [("A", [1, 2])])
    assert spans(found) == [(1, 200 + 100 - 32, 200 + 102 + 32, "A")]
    assert index.extract(found[0].start + 32, found[0].start + 34).tolist() == [1, 2]


def test_windows_are_clipped_to_their_document() -> None:
    plants = {(0, 5): [3], (0, 195): [3], (1, 2): [3]}
    index = build([200, 200], plants)
    found = find_windows(index.restrict([0, 1]), [0, 1], [("B", [3])])
    assert spans(found) == [
        (0, 0, 5 + 1 + 32, "B"),
        (0, 195 - 32, 200, "B"),
        (1, 200, 200 + 2 + 1 + 32, "B"),  # never reaches back into document 0
    ]


def test_no_window_for_a_clue_that_spans_two_documents() -> None:
    index = build([100, 100], {(0, 99): [9], (1, 0): [10]})
    assert find_windows(index.restrict([0, 1]), [0, 1], [("C", [9, 10])]) == []
    assert len(find_windows(index.restrict([0, 1]), [0, 1], [("C", [9])])) == 1


@pytest.mark.parametrize(
    ("gap", "expected"),
    [
        (60, [(0, 68, 193)]),  # 125 tokens merged
        (63, [(0, 68, 196)]),  # exactly max_window = 128
        (64, [(0, 68, 133), (0, 132, 197)]),  # 129 > 128: both kept, still overlapping
        (66, [(0, 68, 133), (0, 134, 199)]),  # no overlap at all
    ],
)
def test_overlapping_windows_merge_up_to_max_window(gap: int, expected: list) -> None:
    index = build([400], {(0, 100): [7], (0, 100 + gap): [7]})
    found = find_windows(index, [0], [("D", [7])])
    assert [(w.doc_index, w.start, w.end) for w in found] == expected
    assert all(w.length <= 128 for w in found)


def test_merged_windows_name_every_clue_once() -> None:
    index = build([300], {(0, 100): [7], (0, 120): [8], (0, 140): [7]})
    found = find_windows(index, [0], [("x", [7]), ("y", [8]), ("x", [7])])
    assert spans(found) == [(0, 68, 173, "x | y")]


def test_caps_per_clue_per_document_and_in_total() -> None:
    hits = {(doc, 50 + 100 * i): [11] for doc in (0, 1) for i in range(10)}
    index = build([1100, 1100], hits)
    clue = [("E", [11])]
    assert len(find_windows(index, [0, 1], clue)) == 20
    capped = find_windows(index, [0, 1], clue, max_hits_per_clue=3)
    assert [w.start for w in capped[:3]] == [18, 118, 218]  # the first hits by position
    assert len(capped) == 6
    per_doc = find_windows(index, [0, 1], clue, max_per_doc=2)
    assert [w.doc_index for w in per_doc] == [0, 0, 1, 1]
    # Documents come in the given (rank) order, so the total cap keeps the best ranked.
    total = find_windows(index, [1, 0], clue, max_total=12)
    assert [w.doc_index for w in total] == [1] * 10 + [0] * 2
    # Hits in documents that are not candidates are ignored, even on the full index.
    assert {w.doc_index for w in find_windows(index, [1], clue)} == {1}


def test_score_and_keep_the_best_windows() -> None:
    windows = [Window(0, 0, 10, "a"), Window(0, 20, 25, "b"), Window(1, 30, 40, "c")]

    class LengthScorer:
        max_length = 128

        def score(self, question: str, texts: Sequence[str]) -> np.ndarray:
            assert question == "q"
            return np.array([len(t) for t in texts], dtype=np.float32)

    scores = score_windows(LengthScorer(), "q", windows, lambda s, e: "x" * (e - s))  # type: ignore[arg-type]
    assert scores.tolist() == [10, 5, 10]
    best = top_windows(windows, scores, k=2)
    assert [(w.clue, s) for w, s in best] == [("a", 10.0), ("c", 10.0)]  # tie: found first
    traces = window_traces(best, ["t0", "t1"])
    assert traces[1].doc_index == 1 and traces[1].text == "t1" and traces[1].score == 10.0
    assert score_windows(LengthScorer(), "q", [], lambda s, e: "").shape == (0,)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        top_windows(windows, scores[:2])


def test_term_variants_find_the_term_in_an_lm_token_index(fixture_texts: list[str]) -> None:
    from retrollm.tiny import train_tokenizer

    tokenizer = train_tokenizer(fixture_texts, vocab_size=400)
    variants = term_variants(tokenizer, "paris")
    texts = [tokenizer.decode(v) for v in variants]
    assert len({tuple(v) for v in variants}) == len(variants)  # deduplicated
    assert set(texts) <= {" paris", " Paris", " PARIS", "paris", "Paris", "PARIS"}
    assert {" Paris", "Paris"} <= set(texts)
    assert any(t == " NASA" for t in map(tokenizer.decode, term_variants(tokenizer, "nasa")))
    assert all(
        t != " PHOTOSYNTHESIS"
        for t in map(tokenizer.decode, term_variants(tokenizer, "photosynthesis"))
    )
    assert term_variants(tokenizer, "  ") == []

    ids = [tokenizer.encode(t, add_special_tokens=False) for t in fixture_texts]
    offsets = np.cumsum([0] + [len(i) for i in ids])
    index = CorpusIndex.build(np.concatenate(ids), offsets)
    found = find_windows(index, [0], clue_sequences(tokenizer, ["paris"]))
    assert found and {w.clue for w in found} == {"paris"}
    # The title line ("Paris\n...") is only reachable through the no-space variant.
    assert found[0].start == 0


def test_kept_windows_are_diverse_before_the_cut() -> None:
    from retrollm.retrieval.windows import Window, top_windows

    windows = [
        Window(0, 0, 60, "a"), Window(0, 40, 100, "b"), Window(0, 200, 260, "c"),
        Window(0, 300, 360, "d"), Window(1, 500, 560, "e"),
    ]  # fmt: skip
    scores = [0.9, 0.8, 0.7, 0.6, 0.1]
    assert [w.clue for w, _ in top_windows(windows, scores, 3)] == ["a", "b", "c"]
    disjoint = top_windows(windows, scores, 3, disjoint=True)
    assert [w.clue for w, _ in disjoint] == ["a", "c", "d"]  # b overlaps a
    capped = top_windows(windows, scores, 3, max_per_doc=2, disjoint=True)
    assert [w.clue for w, _ in capped] == ["a", "c", "e"]  # two per document, then doc 1


def test_minmax_puts_scores_on_floor_to_one() -> None:
    from retrollm.retrieval.windows import normalize_scores

    raw = [3.0, -1.0, 1.0]  # a cross-encoder's logits: any scale, negative too
    np.testing.assert_allclose(normalize_scores(raw, "minmax", 0.5), [1.0, 0.5, 0.75])
    np.testing.assert_allclose(normalize_scores([0.2, 0.2], "minmax", 0.5), [1.0, 1.0])
    np.testing.assert_allclose(normalize_scores(raw, "none"), raw)
    assert normalize_scores([], "minmax").size == 0
    with pytest.raises(ValueError, match="normalisation"):
        normalize_scores(raw, "softmax")


def test_anchors_are_sentence_starts_in_the_window_head(
    tiny_model_and_tokenizer: tuple[Any, Any],
) -> None:
    from retrollm.retrieval.sentences import TokenTexts, evidence_end, window_anchors

    tiny_tokenizer = tiny_model_and_tokenizer[1]
    texts = TokenTexts(tiny_tokenizer)
    ids = tiny_tokenizer.encode(
        "runs far. The tower stands tall. It is old and grey and very tall indeed.",
        add_special_tokens=False,
    )
    window = np.asarray(ids, dtype=np.int64)
    anchors = window_anchors(window, before=5, texts=texts, fraction=0.5).tolist()
    decoded = [tiny_tokenizer.decode(ids[a:]) for a in anchors]
    assert decoded and decoded[0].startswith(" The tower")
    assert all(texts.closes(ids[a - 1]) for a in anchors)
    # A window that opens its document starts a sentence there.
    assert window_anchors(window, before=-1, texts=texts, fraction=0.5).tolist()[0] == 0
    # No sentence start in the head: the window's first token is the only anchor.
    assert window_anchors(window, before=5, texts=texts, fraction=0.01).tolist() == [0]
    end = evidence_end(window, anchors[0], texts, min_tokens=2, max_tokens=100)
    assert tiny_tokenizer.decode(ids[anchors[0] : end]).strip() == "The tower stands tall."
    assert evidence_end(window, 0, texts, min_tokens=2, max_tokens=3) == 3


def test_document_prior_reorders_windows_toward_better_ranked_documents() -> None:
    windows = [Window(3, 0, 10, "a"), Window(1, 20, 30, "b"), Window(2, 40, 50, "c")]
    scores = [0.9, 0.8, 0.1]  # window a is the scorer's best, in the worst document
    assert with_document_prior(windows, scores, [1, 2, 3], 0.0).tolist() == scores
    ranking = with_document_prior(windows, scores, [1, 2, 3], 1.0)
    # min-max scores 1, 0.875, 0; priors 1/3, 1, 2/3.
    assert np.allclose(ranking, [1 + 1 / 3, 0.875 + 1, 2 / 3])
    assert [w.clue for w, _ in top_windows(windows, ranking, k=2)] == ["b", "a"]
