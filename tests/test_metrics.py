"""Metrics against cases worked out by hand (FlashRAG's definitions, docs/method.md §9)."""

from __future__ import annotations

import pytest

from retrollm.metrics import (
    accuracy,
    aggregate,
    exact_match,
    has_answer,
    recall_at_k,
    score,
    timing,
    token_f1,
)
from schemas.prediction import EvidenceTrace, Prediction


def test_exact_match_ignores_case_articles_punctuation_and_spaces() -> None:
    assert exact_match("The  Eiffel Tower!", ["eiffel tower"]) == 1.0
    assert exact_match("an apple", ["Apple"]) == 1.0
    assert exact_match("Gustave Eiffel, engineer", ["Gustave Eiffel"]) == 0.0


def test_exact_match_any_of_several_gold_answers() -> None:
    assert exact_match("USA", ["United States", "U.S.A."]) == 1.0  # "usa" after punctuation
    assert exact_match("America", ["United States", "USA"]) == 0.0


def test_accuracy_is_gold_substring_of_prediction() -> None:
    assert accuracy("It was Gustave Eiffel.", ["Gustave Eiffel"]) == 1.0
    assert accuracy("Eiffel", ["Gustave Eiffel"]) == 0.0  # prediction inside gold: no
    # FlashRAG's acc is a character substring, so "paris" hits inside "comparison".
    assert accuracy("a comparison", ["Paris"]) == 1.0
    assert accuracy("Berlin", ["Paris", "berlin"]) == 1.0


def test_empty_prediction_scores_zero() -> None:
    assert exact_match("", ["Paris"]) == 0.0
    assert accuracy("", ["Paris"]) == 0.0
    assert token_f1("", ["Paris"]) == 0.0
    assert accuracy("   ...  ", ["Paris"]) == 0.0


def test_gold_that_normalizes_to_nothing_is_ignored() -> None:
    # "" would be a substring of everything; such a gold answer must not give credit.
    assert accuracy("anything", ["The"]) == 0.0
    assert exact_match("", ["The", "..."]) == 0.0
    assert accuracy("paris", ["The", "Paris"]) == 1.0


def test_token_f1_hand_worked() -> None:
    # pred "the city of paris" -> [city, of, paris]; gold "Paris France" -> [paris, france]
    # common 1: P = 1/3, R = 1/2, F1 = 2 * (1/6) / (5/6) = 0.4
    assert token_f1("the city of Paris", ["Paris France"]) == pytest.approx(0.4)
    # max over golds: "paris" alone gives P = 1/3, R = 1 -> 0.5
    assert token_f1("the city of Paris", ["Paris France", "Paris"]) == pytest.approx(0.5)
    # multiplicity: pred [x, x, y], gold [x, y, y]: common x1 + y1 = 2, P = R = 2/3
    assert token_f1("x x y", ["x y y"]) == pytest.approx(2 / 3)
    assert token_f1("Paris", ["paris"]) == 1.0


def test_token_f1_yes_no_need_an_exact_match() -> None:
    assert token_f1("no", ["no way"]) == 0.0
    assert token_f1("yes", ["Yes."]) == 1.0


def test_recall_at_k_counts_first_k_evidences() -> None:
    texts = ["Berlin is big.", "Lyon\nA city.", "Paris\nThe capital of France."]
    assert recall_at_k(texts, ["Paris"], 1) == 0.0
    assert recall_at_k(texts, ["Paris"], 2) == 0.0
    assert recall_at_k(texts, ["Paris"], 5) == 1.0
    assert recall_at_k([], ["Paris"], 5) == 0.0
    assert has_answer("THE capital, of France", ["capital of france"])


def _prediction(answer: str, evidences: list[str], **kw: object) -> Prediction:
    return Prediction(
        id="q",
        question="What is the capital of France?",
        golden_answers=["Paris"],
        method="test",
        answer=answer,
        output_text=answer,
        evidences=[
            EvidenceTrace(doc_index=i, doc_id=str(i), title="t", start=0, end=1, text=t)
            for i, t in enumerate(evidences)
        ],
        well_formed=True,
        **kw,
    )


def test_score_reads_answer_only_never_evidence() -> None:
    scores = score(_prediction("Lyon", ["Paris is the capital."]))
    assert (scores.acc, scores.em, scores.f1) == (0.0, 0.0, 0.0)
    assert (scores.r1, scores.r5) == (1.0, 1.0)


def test_aggregate_means_in_percent() -> None:
    predictions = [
        _prediction("Paris", ["x", "Paris"], tokens_in=100, tokens_out=4, timings={"total": 0.5}),
        _prediction("in Paris", [], tokens_in=50, tokens_out=6, timings={"total": 1.5}),
        _prediction("Lyon", ["Paris"], tokens_in=30, tokens_out=2, timings={"total": 1.0}),
        _prediction("", [], tokens_in=20, tokens_out=0, timings={"total": 1.0}, status="x"),
    ]
    result = aggregate([score(p) for p in predictions])
    assert result.n == 4
    assert result.acc == pytest.approx(50.0)
    assert result.em == pytest.approx(25.0)
    # F1s: 1, 2/3 ("in paris" vs "paris": P 1/2, R 1), 0, 0 -> mean 5/12
    assert result.f1 == pytest.approx(100 * 5 / 12)
    assert result.r1 == pytest.approx(25.0)
    assert result.r5 == pytest.approx(50.0)
    assert result.tokens == pytest.approx((104 + 56 + 32 + 20) / 4)
    assert result.status == {"ok": 3, "x": 1}
    assert result.acc_ci95 == pytest.approx(100 * 1.96 * (0.25 / 4) ** 0.5)
    spent = timing(predictions)
    assert spent.latency_ms == pytest.approx(1000.0)
    assert spent.questions_per_min == pytest.approx(60.0)


def test_aggregate_does_not_depend_on_wall_time() -> None:
    """Aggregates go into the artifact; a slower run of the same questions writes them
    byte for byte the same (wall time goes to the run log, via `timing`)."""
    fast = [_prediction("Paris", ["Paris"], timings={"total": 0.1})]
    slow = [_prediction("Paris", ["Paris"], timings={"total": 9.0})]
    assert aggregate([score(p) for p in fast]) == aggregate([score(p) for p in slow])
    assert timing(fast) != timing(slow)


def test_aggregate_of_nothing_is_zero_not_an_error() -> None:
    assert aggregate([]).n == 0
