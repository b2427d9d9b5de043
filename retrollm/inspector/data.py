"""What the inspector page shows, as one JSON-ready model built from predictions.

Every question of every evaluated cell, with each method's answer and scores, RetroLLM's
trace (clues, candidate documents, kept windows, evidences) and the funnel step where the
gold answer was lost (`retrollm.funnel`, one prediction at a time). Evidences, windows and
passages point into a shared table of documents by character span, so a document shown
for many questions and methods is stored once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from retrollm.artifacts import ArtifactError
from retrollm.funnel import STEPS, funnel
from retrollm.inspector.spans import Span, gold_spans, locate
from retrollm.metrics import has_answer, score
from schemas.prediction import Prediction
from schemas.records import CorpusRecord


class DocumentView(BaseModel):
    title: str
    id: str
    text: str | None = Field(None, description="Embedded only where the page shows it.")


class CandidateView(BaseModel):
    doc: int
    fused: float
    clue_score: float
    clue_rank: int | None
    sparse_rank: int | None
    gold: bool = Field(description="A gold answer occurs in the document.")


class PassageView(BaseModel):
    """A kept window, an evidence or a RAG passage: a span of a document when found
    there (`at`), else its own text with its own gold spans."""

    doc: int
    at: Span | None = None
    text: str | None = None
    text_gold: list[Span] = Field(default_factory=list)
    gold: bool = Field(description="A gold answer occurs in it.")
    score: float | None = Field(None, description="Window relevance S(w) as scored.")
    weight: float | None = Field(None, description="Window weight after normalisation.")
    clue: str | None = None
    window: int | None = Field(None, description="Evidence: the kept window it followed.")
    verbatim: bool = True


class MethodView(BaseModel):
    """None scores and steps: a question without gold answers (`ask`)."""

    answer: str
    answer_gold: list[Span]
    acc: float | None
    em: float | None
    f1: float | None
    tokens: int
    status: str
    well_formed: bool
    windowed: bool = Field(description="RetroLLM's steps (documents, windows) or passages.")
    steps: dict[str, bool | None] = Field(description="Gold still there after each step.")
    lost: str | None = Field(description="First funnel step without a gold answer.")
    clues: list[str] = Field(default_factory=list)
    expansion: list[str] = Field(default_factory=list)
    candidates: list[CandidateView] = Field(default_factory=list)
    windows: list[PassageView] = Field(default_factory=list)
    evidences: list[PassageView] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class QuestionView(BaseModel):
    key: str = Field(description="DATASET/ID, unique on the page.")
    dataset: str
    id: str
    question: str
    golds: list[str]
    methods: dict[str, MethodView]
    gold: dict[int, list[Span]] = Field(description="Gold spans of each document shown.")


class PageData(BaseModel):
    title: str
    datasets: list[str]
    methods: list[str]
    full_method: str | None
    rag_methods: list[str]
    steps: list[str] = Field(default_factory=lambda: list(STEPS))
    documents: dict[int, DocumentView]
    questions: list[QuestionView]


@dataclass(frozen=True)
class Cell:
    """One evaluated (dataset, method) and its predictions, in question order."""

    dataset: str
    method: str
    predictions: Sequence[Prediction]


@dataclass
class CorpusView:
    """The corpus as the page needs it: records in index order, and the decoded text of a
    global token span (located windows are token offsets only); None leaves the funnel's
    located-window step unknown."""

    records: Sequence[CorpusRecord]
    span_text: Callable[[int, int], str] | None = None

    def text(self, doc: int) -> str:
        return self.records[doc].contents


def _check_documents(cell: Cell, p: Prediction, n_docs: int) -> None:
    """Traces must name documents of this corpus (evidence written outside it: -1)."""
    named = [d.doc_index for d in p.documents] + [w.doc_index for w in p.windows]
    named += [e.doc_index for e in p.evidences if e.verbatim or e.doc_index != -1]
    named += [d for d, _, _ in p.located_windows]
    bad = [d for d in named if not 0 <= d < n_docs]
    if bad:
        raise ArtifactError(
            f"{cell.dataset}/{cell.method}, question {p.id}: document {bad[0]} is not in the "
            f"corpus of {n_docs} documents; were these predictions made on another corpus?"
        )


def _steps(
    p: Prediction, windowed: bool, retrieves: bool, corpus: CorpusView
) -> dict[str, bool | None]:
    span_text = corpus.span_text or (lambda start, end: "")
    row = funnel(p.method, [p], corpus.text, span_text)
    steps = {step: None if getattr(row, step) is None else bool(getattr(row, step))
             for step in STEPS}  # fmt: skip
    if not retrieves:  # a method without retrieval (direct) has no step before its answer
        return {step: steps[step] if step == "answer" else None for step in STEPS}
    if windowed and steps["located"] is None:
        # A RetroLLM question that found no documents has no windows either.
        steps["located"] = steps["kept"] = False
    if corpus.span_text is None and windowed:
        steps["located"] = None
    return steps


def _passage(
    corpus: CorpusView, shown: set[int], doc: int, text: str, golds: list[str], **extra: Any
) -> PassageView:
    at = locate(corpus.text(doc), text) if doc >= 0 else None
    if at is not None:
        shown.add(doc)
        return PassageView(doc=doc, at=at, gold=has_answer(text, golds), **extra)
    spans = gold_spans(text, golds)
    return PassageView(doc=doc, text=text, text_gold=spans, gold=bool(spans), **extra)


def method_view(
    p: Prediction, windowed: bool, retrieves: bool, corpus: CorpusView, shown: set[int]
) -> MethodView:
    """One method's answer and trace for one question; `shown` collects the documents
    whose text the page must embed."""
    golds = p.golden_answers
    s = score(p)
    candidates: list[CandidateView] = []
    for d in p.documents:
        gold = has_answer(corpus.text(d.doc_index), golds)
        if gold:  # the page shows gold-bearing candidates: why did they lose?
            shown.add(d.doc_index)
        candidates.append(CandidateView(doc=d.doc_index, fused=d.score, clue_score=d.clue_score,
                                        clue_rank=d.clue_rank, sparse_rank=d.sparse_rank,
                                        gold=gold))  # fmt: skip
    windows = [_passage(corpus, shown, w.doc_index, w.text, golds, score=w.score,
                        weight=w.weight, clue=w.clue) for w in p.windows]  # fmt: skip
    evidences = [_passage(corpus, shown, e.doc_index, e.text, golds, window=e.window,
                          verbatim=e.verbatim) for e in p.evidences]  # fmt: skip
    steps = _steps(p, windowed, retrieves, corpus)
    scores: dict[str, float | None] = {"acc": s.acc, "em": s.em, "f1": s.f1}
    if not golds:  # nothing to score against: no outcome, no funnel
        scores = dict.fromkeys(scores)
        steps = dict.fromkeys(STEPS)
    return MethodView(
        answer=p.answer, answer_gold=gold_spans(p.answer, golds), **scores,
        tokens=p.tokens_in + p.tokens_out, status=p.status, well_formed=p.well_formed,
        windowed=windowed, steps=steps, lost=next((k for k in STEPS if steps[k] is False), None),
        clues=p.clues, expansion=p.expansion_terms, candidates=candidates, windows=windows,
        evidences=evidences, notes=p.notes,
    )  # fmt: skip


def page_data(
    cells: Sequence[Cell],
    corpus: CorpusView,
    full_method: str | None,
    rag_methods: Sequence[str],
    title: str = "RetroLLM evidence inspector",
) -> PageData:
    """Questions in first-seen order (datasets, then the order of the first cell that
    has them); every method that answered a question is shown for it."""
    questions: dict[str, QuestionView] = {}
    shown: set[int] = set()
    for cell in cells:
        # The funnel's own test for a method with RetroLLM's steps, over the whole cell.
        windowed = any(p.documents or p.windows for p in cell.predictions)
        retrieves = windowed or any(p.evidences for p in cell.predictions)
        for p in cell.predictions:
            _check_documents(cell, p, len(corpus.records))
            key = f"{cell.dataset}/{p.id}"
            question = questions.setdefault(key, QuestionView(
                key=key, dataset=cell.dataset, id=p.id, question=p.question,
                golds=p.golden_answers, methods={}, gold={},
            ))  # fmt: skip
            question.methods[cell.method] = method_view(p, windowed, retrieves, corpus, shown)
    for question in questions.values():
        docs = {v.doc for m in question.methods.values() for v in (*m.windows, *m.evidences)}
        docs |= {c.doc for m in question.methods.values() for c in m.candidates if c.gold}
        question.gold = {d: gold_spans(corpus.text(d), question.golds)
                         for d in sorted(docs & shown)}  # fmt: skip
    documents: dict[int, DocumentView] = {}
    for m in (m for q in questions.values() for m in q.methods.values()):
        for d in [c.doc for c in m.candidates] + [v.doc for v in (*m.windows, *m.evidences)]:
            if d >= 0 and d not in documents:
                record = corpus.records[d]
                text = record.contents if d in shown else None
                documents[d] = DocumentView(title=record.title, id=record.id, text=text)
    methods = list(dict.fromkeys(cell.method for cell in cells))
    return PageData(
        title=title,
        datasets=list(dict.fromkeys(cell.dataset for cell in cells)),
        methods=methods,
        full_method=full_method if full_method in methods else None,
        rag_methods=[m for m in rag_methods if m in methods],
        documents=dict(sorted(documents.items())),
        questions=list(questions.values()),
    )
