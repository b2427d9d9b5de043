"""The retrieval funnel on hand-made predictions."""

from __future__ import annotations

import pytest

from retrollm.funnel import funnel, markdown, no_corpus
from schemas.prediction import DocumentTrace, EvidenceTrace, Prediction, WindowTrace

DOCS = ["Paris is the capital of France.", "Lyon is a city.", "Nice is warm."]
SPANS = {(0, 5): "Paris is the capital", (10, 14): "Lyon is"}


def _prediction(answer: str, docs: list[int], located: list[tuple[int, int, int]],
                kept: list[str], evidences: list[str]) -> Prediction:  # fmt: skip
    return Prediction(
        id="q", question="capital of France?", golden_answers=["Paris"], method="m",
        answer=answer, output_text="", well_formed=True, tokens_in=10, tokens_out=20,
        documents=[DocumentTrace(doc_index=d, doc_id=str(d), title="", score=1.0) for d in docs],
        located_windows=located,
        windows=[WindowTrace(doc_index=0, start=0, end=5, clue="c", score=1.0, text=t)
                 for t in kept],
        evidences=[EvidenceTrace(doc_index=0, doc_id="0", title="", start=0, end=1, text=t)
                   for t in evidences],
    )  # fmt: skip


def test_each_step_counts_where_the_gold_answer_still_is() -> None:
    predictions = [
        _prediction("Paris", [0], [(0, 0, 5)], ["Paris is"], ["x", "Paris"]),  # lost nowhere
        _prediction("Lyon", [1, 0], [(1, 10, 14)], ["Lyon is"], ["Lyon"]),  # lost at windows
        _prediction("Nice", [2], [], [], []),  # lost at documents
        _prediction("no", [0], [(0, 0, 5)], ["Paris is"], ["nothing"]),  # lost at evidence
    ]
    row = funnel("m", predictions, DOCS.__getitem__, lambda s, e: SPANS[(s, e)])
    assert (row.n, row.documents, row.located, row.kept) == (4, 75.0, 50.0, 50.0)
    assert (row.evidence, row.first_evidence, row.answer) == (25.0, 0.0, 25.0)
    assert row.evidences_per_question == 1.0 and row.tokens == 30.0
    assert "| nq | m | 4 | 75.0 | 50.0 | 50.0 | 25.0 | 0.0 | 25.0 |" in markdown([("nq", row)])[2]


def test_rag_rows_have_one_step_and_never_read_the_corpus() -> None:
    rag = [_prediction("Paris", [], [], [], ["Lyon", "Paris"]), _prediction("x", [], [], [], [])]
    row = funnel("rag", rag, no_corpus, no_corpus)
    assert row.located is None and row.kept is None
    assert (row.documents, row.evidence, row.first_evidence, row.answer) == (50, 50, 0, 50)
    with pytest.raises(ValueError, match="no predictions"):
        funnel("rag", [], no_corpus, no_corpus)
