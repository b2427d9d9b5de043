"""Direct and RAG baselines on the tiny random model and the fixture corpus."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from retrollm.answers import extract_answer
from retrollm.baselines import (
    BaselineConfig,
    PassageFormatter,
    build_prompt,
    run_baseline,
)
from retrollm.metrics import score
from schemas.records import CorpusRecord, QARecord

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def corpus() -> list[CorpusRecord]:
    lines = (FIXTURES / "corpus.jsonl").read_text().splitlines()
    return [CorpusRecord.model_validate(json.loads(line)) for line in lines]


@pytest.fixture(scope="module")
def questions() -> list[QARecord]:
    lines = (FIXTURES / "qa_test.jsonl").read_text().splitlines()
    return [QARecord.model_validate(json.loads(line)) for line in lines][:5]


@pytest.fixture(scope="module")
def lm(tiny_model_and_tokenizer):  # type: ignore[no-untyped-def]
    return tiny_model_and_tokenizer


def _offsets(corpus: list[CorpusRecord]) -> np.ndarray:
    return np.cumsum([0] + [len(r.contents) for r in corpus]).astype(np.int64)


def _search_for(corpus: list[CorpusRecord]):  # type: ignore[no-untyped-def]
    """A deterministic stand-in retriever: documents sharing most words with the query."""

    def search(query: str, k: int) -> tuple[list[int], list[float]]:
        words = set(query.lower().split())
        scores = [len(words & set(r.contents.lower().split())) for r in corpus]
        order = sorted(range(len(corpus)), key=lambda i: (-scores[i], i))[:k]
        return order, [float(scores[i]) for i in order]

    return search


def test_extract_answer_takes_first_line_without_lead_in() -> None:
    assert extract_answer("  Answer: Paris\nMore text") == "Paris"
    assert extract_answer("\n\nThe answer is Gustave Eiffel.") == "Gustave Eiffel."
    assert extract_answer("   ") == ""
    # RetroLLM's text after its forced " The answer is", through the same rule.
    assert extract_answer(" Paris.\nQuestion: who else?") == "Paris."
    assert extract_answer("answer:   Lyon ") == "Lyon"
    assert extract_answer("The answer is: 1889\n") == "1889"
    assert extract_answer(" \u200fParis") == "\u200fParis"  # marks are the metric's business


def test_direct_records_are_well_formed(lm, questions) -> None:  # type: ignore[no-untyped-def]
    model, tokenizer = lm
    config = BaselineConfig(max_new_tokens=6, batch_size=4)
    predictions = run_baseline("direct", "direct", questions, model, tokenizer, config)
    assert [p.id for p in predictions] == [q.id for q in questions]
    for prediction, question in zip(predictions, questions, strict=True):
        assert prediction.method == "direct"
        assert prediction.evidences == []
        assert prediction.tokens_in == len(build_prompt(tokenizer, question.question, None))
        assert 1 <= prediction.tokens_out <= 6
        assert prediction.status in {"ok", "empty_answer", "max_new_tokens"}
        assert prediction.well_formed == (prediction.status == "ok" and bool(prediction.answer))
        assert prediction.timings["total"] >= prediction.timings["generation"] > 0


def test_batching_does_not_change_greedy_answers(lm, questions) -> None:  # type: ignore[no-untyped-def]
    model, tokenizer = lm
    config = BaselineConfig(max_new_tokens=6)
    together = run_baseline("direct", "direct", questions, model, tokenizer, config)
    alone = [run_baseline("direct", "direct", [q], model, tokenizer, config)[0] for q in questions]
    assert [p.output_text for p in together] == [p.output_text for p in alone]


def test_rag_prompt_holds_passages_and_recall_reads_them(lm, corpus, questions) -> None:  # type: ignore[no-untyped-def]
    model, tokenizer = lm
    config = BaselineConfig(top_k=5, max_new_tokens=4)
    offsets = _offsets(corpus)
    formatter = PassageFormatter(tokenizer, corpus, offsets, config.max_passage_tokens)
    search = _search_for(corpus)
    rag = run_baseline("rag", "rag", questions, model, tokenizer, config, search, formatter)
    direct = run_baseline("direct", "direct", questions, model, tokenizer, config)
    for prediction, plain, question in zip(rag, direct, questions, strict=True):
        rows, _ = search(question.question, 5)
        assert [e.doc_index for e in prediction.evidences] == list(rows)
        for evidence in prediction.evidences:
            record = corpus[evidence.doc_index]
            assert (evidence.doc_id, evidence.title) == (record.id, record.title)
            assert (evidence.start, evidence.end) == tuple(
                offsets[evidence.doc_index : evidence.doc_index + 2]
            )
        body_tokens = sum(
            len(tokenizer(e.text, add_special_tokens=False)["input_ids"])
            for e in prediction.evidences
        )
        assert prediction.tokens_in > plain.tokens_in + body_tokens // 2  # passages counted
        # R@5 from the passages exactly as the metric defines it.
        texts = [e.text for e in prediction.evidences]
        expected = any(g.lower() in t.lower() for t in texts for g in question.golden_answers)
        assert score(prediction).r5 == float(expected)
    # Eiffel question: the Eiffel Tower article ranks first and holds the answer.
    assert score(rag[0]).r1 == 1.0


def test_passages_can_be_cut_to_a_token_budget(lm, corpus) -> None:  # type: ignore[no-untyped-def]
    _, tokenizer = lm
    formatter = PassageFormatter(tokenizer, corpus, _offsets(corpus), max_passage_tokens=10)
    reference, evidences, notes = formatter.format([0, 1])
    assert reference.startswith(f"Doc 1(Title: {corpus[0].title}) ")
    assert "Doc 2(Title: " in reference
    assert len(notes) == 2 and "cut to 10 tokens" in notes[0]
    body = evidences[0].text.split("\n", 1)[1]
    assert len(tokenizer(body, add_special_tokens=False)["input_ids"]) <= 12


def test_mismatched_offsets_are_refused(lm, corpus) -> None:  # type: ignore[no-untyped-def]
    _, tokenizer = lm
    with pytest.raises(ValueError, match="n_docs \\+ 1"):
        PassageFormatter(tokenizer, corpus, np.zeros(3, dtype=np.int64), None)


def test_too_long_prompt_is_a_counted_status_not_a_crash(lm, questions) -> None:  # type: ignore[no-untyped-def]
    model, tokenizer = lm
    long_question = questions[0].model_copy(update={"question": "word " * 3000})
    config = BaselineConfig(max_new_tokens=4)
    batch = [long_question, questions[1]]
    predictions = run_baseline("direct", "direct", batch, model, tokenizer, config)
    assert predictions[0].status == "question_too_long"
    assert not predictions[0].well_formed and predictions[0].answer == ""
    assert predictions[1].status in {"ok", "empty_answer", "max_new_tokens"}
