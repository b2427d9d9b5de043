"""The retrieval funnel: at which step of a method the gold answer was lost.

For each question, whether a gold answer (normalized substring, as Acc counts it) occurs
in what the method had at each step:

    documents -> located windows -> kept windows -> any evidence -> first evidence -> answer

RetroLLM rows read the prediction trace (candidate documents, every located window, the
kept windows, the written evidences). RAG rows have one retrieval step, their passages,
reported under "documents" and "any evidence" alike (passages are their evidence); they
have no windows. Shares are percent of the method's questions, so a drop from one column
to the next is the share of questions lost at that step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pydantic import BaseModel, Field

from retrollm.metrics import accuracy, has_answer
from schemas.prediction import Prediction

STEPS = ("documents", "located", "kept", "evidence", "first_evidence", "answer")


class FunnelRow(BaseModel):
    """One method's funnel over its questions (percent) plus what it read."""

    method: str
    n: int
    documents: float = Field(description="Gold in a candidate document (RAG: a passage).")
    located: float | None = Field(None, description="Gold in a located window (None: RAG).")
    kept: float | None = Field(None, description="Gold in a kept window (None: RAG).")
    evidence: float = Field(description="Gold in some evidence (RAG: a passage).")
    first_evidence: float = Field(description="Gold in the first evidence (RAG: passage 1).")
    answer: float = Field(description="Acc: gold in the answer.")
    evidences_per_question: float
    tokens: float = Field(description="Prompt plus generated tokens per question.")


def funnel(
    method: str,
    predictions: Sequence[Prediction],
    document_text: Callable[[int], str],
    span_text: Callable[[int, int], str],
) -> FunnelRow:
    """The funnel of one method's predictions. `document_text(doc_index)` and
    `span_text(start, end)` read the corpus (only RetroLLM rows need them)."""
    if not predictions:
        raise ValueError(f"{method}: no predictions to build a funnel from")
    windowed = any(p.documents or p.windows for p in predictions)
    hits = {step: 0 for step in STEPS}
    for p in predictions:
        gold = p.golden_answers
        evidence = [has_answer(e.text, gold) for e in p.evidences]
        if windowed:
            docs = any(has_answer(document_text(d.doc_index), gold) for d in p.documents)
            located = any(has_answer(span_text(s, e), gold) for _, s, e in p.located_windows)
            kept = any(has_answer(w.text, gold) for w in p.windows)
        else:
            docs = located = kept = any(evidence)
        flags = (docs, located, kept, any(evidence), bool(evidence[:1] and evidence[0]),
                 bool(accuracy(p.answer, gold)))  # fmt: skip
        for step, flag in zip(STEPS, flags, strict=True):
            hits[step] += int(flag)
    n = len(predictions)
    share = {step: round(100 * hits[step] / n, 1) for step in STEPS}
    if not windowed:
        share["located"] = share["kept"] = None  # type: ignore[assignment]
    return FunnelRow(
        method=method,
        n=n,
        **share,
        evidences_per_question=round(sum(len(p.evidences) for p in predictions) / n, 2),
        tokens=round(sum(p.tokens_in + p.tokens_out for p in predictions) / n, 1),
    )


class CorpusText:
    """document_text and span_text over the pipeline's corpus (cached). `extract(start,
    end)` gives the token ids of a global span (CorpusIndex.extract, or a slice of
    data/tokens/tokens.npy)."""

    def __init__(
        self,
        contents: Sequence[str],
        extract: Callable[[int, int], Sequence[int]],
        tokenizer: object,
    ) -> None:
        self.contents, self.extract, self.tokenizer = contents, extract, tokenizer
        self._spans: dict[tuple[int, int], str] = {}

    def document(self, doc_index: int) -> str:
        return self.contents[doc_index]

    def span(self, start: int, end: int) -> str:
        key = (start, end)
        if key not in self._spans:
            ids = [int(t) for t in self.extract(start, end)]
            self._spans[key] = self.tokenizer.decode(ids, skip_special_tokens=True)  # type: ignore[attr-defined]
        return self._spans[key]


def no_corpus(*_: int) -> str:
    """Stands in for document_text/span_text where a method has no windows (RAG)."""
    raise AssertionError("a method without windows never reads the corpus here")


def markdown(rows: Sequence[tuple[str, FunnelRow]]) -> list[str]:
    """(dataset, row) pairs as a markdown table."""

    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    lines = [
        "| Dataset | Method | n | in documents | in located windows | in kept windows | "
        "in any evidence | in first evidence | in answer (Acc) | evidences/q | Tok |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for dataset, r in rows:
        lines.append(
            f"| {dataset} | {r.method} | {r.n} | {cell(r.documents)} | {cell(r.located)} | "
            f"{cell(r.kept)} | {cell(r.evidence)} | {cell(r.first_evidence)} | "
            f"{cell(r.answer)} | {r.evidences_per_question:.2f} | {r.tokens:.0f} |"
        )
    return lines
