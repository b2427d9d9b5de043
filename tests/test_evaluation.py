"""Question sampling and the checkpointed evaluation loop (resume after an interrupt)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from retrollm.evaluation import ResumeFile, run_checkpointed, select_questions
from schemas.prediction import Prediction
from schemas.records import QARecord


def _questions(n: int) -> list[QARecord]:
    return [
        QARecord(id=f"q{i}", question=f"question {i}?", golden_answers=["a"], answerable=i % 3 != 0)
        for i in range(n)
    ]


def _answer(calls: list[str], fail_at: str | None = None):  # type: ignore[no-untyped-def]
    def answer(questions: Sequence[QARecord]) -> list[Prediction]:
        if fail_at is not None and any(q.id == fail_at for q in questions):
            raise KeyboardInterrupt
        calls.extend(q.id for q in questions)
        return [
            Prediction(id=q.id, question=q.question, golden_answers=q.golden_answers,
                       method="m", answer="a", output_text="a", well_formed=True)
            for q in questions
        ]  # fmt: skip

    return answer


def test_select_keeps_answerable_then_samples_in_file_order() -> None:
    records = _questions(30)
    chosen = select_questions(records, limit=5, seed=1, answerable_only=True)
    assert len(chosen) == 5 and all(q.answerable for q in chosen)
    positions = [records.index(q) for q in chosen]
    assert positions == sorted(positions)
    assert chosen == select_questions(records, limit=5, seed=1, answerable_only=True)
    assert len(select_questions(records, None, 0, answerable_only=False)) == 30


def test_select_refuses_questions_without_the_flag() -> None:
    records = [QARecord(id="x", question="q?", golden_answers=["a"])]
    with pytest.raises(ValueError, match="rerun prepare_qa"):
        select_questions(records, None, 0, answerable_only=True)


def test_interrupted_run_resumes_after_the_last_chunk(tmp_path: Path) -> None:
    questions = _questions(10)
    calls: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        run_checkpointed(questions, _answer(calls, fail_at="q7"), ResumeFile(tmp_path, "k"), 3, "t")
    assert calls == [f"q{i}" for i in range(6)]  # two chunks saved

    calls.clear()
    predictions, resumed = run_checkpointed(
        questions, _answer(calls), ResumeFile(tmp_path, "k"), 3, "t"
    )
    assert resumed == 6
    assert calls == ["q6", "q7", "q8", "q9"]
    assert [p.id for p in predictions] == [q.id for q in questions]


def test_other_key_or_questions_start_afresh(tmp_path: Path) -> None:
    questions = _questions(4)
    run_checkpointed(questions, _answer([]), ResumeFile(tmp_path, "k"), 2, "t")
    calls: list[str] = []
    _, resumed = run_checkpointed(questions, _answer(calls), ResumeFile(tmp_path, "other"), 2, "t")
    assert resumed == 0 and len(calls) == 4
    calls.clear()
    shuffled = questions[::-1]
    _, resumed = run_checkpointed(shuffled, _answer(calls), ResumeFile(tmp_path, "other"), 2, "t")
    assert resumed == 0 and len(calls) == 4


def test_a_record_cut_short_is_dropped_and_overwritten(tmp_path: Path) -> None:
    questions = _questions(4)
    resume = ResumeFile(tmp_path, "k")
    with pytest.raises(KeyboardInterrupt):
        run_checkpointed(questions, _answer([], fail_at="q2"), resume, 2, "t")
    with open(resume.path, "ab") as handle:  # an interrupt in the middle of a write
        handle.write(b"\x8f\xa2id\xa2q2\xa8question")
    calls: list[str] = []
    _, resumed = run_checkpointed(questions, _answer(calls), ResumeFile(tmp_path, "k"), 2, "t")
    assert resumed == 2 and calls == ["q2", "q3"]
    assert len(resume.load(questions)) == 4  # the file holds four whole records again
