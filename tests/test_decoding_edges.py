"""Edge cases end in a well-formed record that says what happened, never in a crash."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from retrollm.decoding.pipeline import RetroLLM
from retrollm.retrieval.windows import term_variants
from tests.decoding_support import (
    FixedSparse,
    Setting,
    fixture_questions,
    one_torch_thread,
)

EIFFEL_TOWER, SHAKESPEARE, PARIS = 15, 5, 0


@pytest.fixture(scope="module")
def setting(tiny_model_and_tokenizer: tuple[Any, Any]) -> Iterator[Setting]:
    with one_torch_thread():
        yield Setting.of(tiny_model_and_tokenizer)


def make(setting: Setting, sparse: Any = None, **overrides: Any) -> RetroLLM:
    return setting.decoder(sparse, **overrides)


def assert_verbatim(setting: Setting, prediction: Any) -> None:
    index = setting.index
    tokenizer = setting.tokenizer
    for evidence in prediction.evidences:
        ids = index.extract(evidence.start, evidence.end).tolist()
        assert tokenizer.decode(ids) == evidence.text
        assert set(index.doc_of([evidence.start, evidence.end - 1]).tolist()) == {
            evidence.doc_index
        }


QUESTION = "Who designed the Eiffel Tower?"


def test_no_clue_hit_and_no_document(setting: Setting) -> None:
    sparse = FixedSparse(["zzqxv"], [])
    pred = make(setting, sparse, clue_generation=False).answer([QUESTION])[0]
    assert pred.status == "no_documents" and pred.well_formed
    assert pred.documents == [] and pred.evidences == [] and pred.clues == []
    assert any("no clue" in note for note in pred.notes)
    assert "<|evidence|><|/evidence|>" in pred.output_text


def test_no_clue_hit_but_sparse_documents(setting: Setting) -> None:
    sparse = FixedSparse(["zzqxv"], [EIFFEL_TOWER])
    pred = make(setting, sparse, clue_generation=False).answer([QUESTION])[0]
    assert pred.status == "no_clue_hits" and pred.well_formed
    assert [d.doc_index for d in pred.documents] == [EIFFEL_TOWER]
    assert pred.windows == [] and pred.evidences
    assert all(e.doc_index == EIFFEL_TOWER for e in pred.evidences)
    assert_verbatim(setting, pred)


@pytest.mark.parametrize("strategy", ["retrollm", "retrollm-hard-windows"])
def test_no_window_in_the_candidate_documents(setting: Setting, strategy: str) -> None:
    # The term hits only Shakespeare's article, but fusion keeps the SPLADE document.
    sparse = FixedSparse(["shakespeare"], [EIFFEL_TOWER])
    decoder = make(setting, sparse, clue_generation=False, top_docs=1, strategy=strategy)
    pred = decoder.answer([QUESTION])[0]
    assert pred.status == "no_windows" and pred.well_formed
    assert pred.windows == [] and len(pred.evidences) == 1  # one per kept window, at least 1
    assert all(e.doc_index == EIFFEL_TOWER for e in pred.evidences)
    assert_verbatim(setting, pred)


def test_window_at_a_document_edge(setting: Setting) -> None:
    sparse = FixedSparse(["paris"], [PARIS])
    pred = make(setting, sparse, clue_generation=False, top_docs=1).answer([QUESTION])[0]
    offsets = setting.index.doc_offsets
    assert pred.status == "ok" and pred.well_formed
    assert any(w.start == offsets[PARIS] for w in pred.windows)  # the title "Paris"
    for w in pred.windows:
        assert offsets[w.doc_index] <= w.start < w.end <= offsets[w.doc_index + 1]
    assert_verbatim(setting, pred)


def test_clue_that_occurs_once_gets_a_window_around_its_hit(setting: Setting) -> None:
    index, tokenizer = setting.index, setting.tokenizer
    once = next(
        (term, ids)
        for term in ("lattice", "wrought", "champ")
        for ids in term_variants(tokenizer, term)
        if index.count(ids) == 1
    )
    position = int(index.locate(once[1])[0])
    doc = int(index.doc_of([position])[0])
    sparse = FixedSparse([once[0]], [doc])
    pred = make(setting, sparse, clue_generation=False, top_docs=1).answer([QUESTION])[0]
    assert any(w.start <= position < w.end for w in pred.windows)
    assert pred.evidences[0].window == 0
    assert_verbatim(setting, pred)


def test_empty_question(setting: Setting) -> None:
    pred = make(setting).answer([""])[0]
    assert pred.status == "empty_question" and pred.well_formed
    assert pred.tokens_in > 0


def test_over_long_question_is_cut_and_noted(setting: Setting) -> None:
    decoder = make(setting, max_question_tokens=16)
    long_question = "Where is the Eiffel Tower? " * 40
    pred = decoder.answer([long_question])[0]
    short = decoder.answer(["Where?"])[0]
    assert pred.status == "question_too_long" and pred.well_formed
    assert any("cut" in note for note in pred.notes)
    assert pred.tokens_in <= short.tokens_in + 16


def test_budget_running_out_inside_an_evidence_forces_its_end(setting: Setting) -> None:
    config = {"budget_tokens": 48, "min_evidence_tokens": 400, "max_evidence_tokens": 400}
    decoder = make(setting, **config)
    hyps = decoder.hypotheses(fixture_questions()[:4])
    preds = [decoder.prediction(h) for h in hyps]
    assert any(p.status == "budget_exhausted" for p in preds)
    for hyp, pred in zip(hyps, preds, strict=True):
        assert pred.well_formed and len(hyp.generated) <= 48
        assert_verbatim(setting, pred)


def test_mixed_batch_of_edge_cases(setting: Setting) -> None:
    questions = ["", "Who designed the Eiffel Tower?", "x " * 300, "???"]
    preds = make(setting, max_question_tokens=32).answer(questions)
    assert [p.well_formed for p in preds] == [True] * 4
    assert preds[0].status == "empty_question" and preds[2].status == "question_too_long"
