"""A prediction with the full trace of how it was made: the contract between the
decoders/baselines (which write it) and evaluation and reporting (which read it)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DocumentTrace(_Record):
    """A candidate document and why it was picked."""

    doc_index: int = Field(description="Row of the document in data/corpus.")
    doc_id: str
    title: str
    score: float = Field(description="Final (fused) score that ranked it.")
    clue_score: float = Field(0.0, description="S_gen of paper eq. 4-6.")
    clue_rank: int | None = Field(None, description="1-based rank in the clue ranking R1.")
    sparse_rank: int | None = Field(None, description="1-based rank in the SPLADE ranking R2.")


class WindowTrace(_Record):
    """A future window: text around a clue occurrence, scored for relevance."""

    doc_index: int
    start: int = Field(description="Global token offset where the window starts.")
    end: int = Field(description="Global token offset where it ends (exclusive).")
    clue: str = Field(description="Clue (generated or expanded) whose hit made it.")
    score: float = Field(description="Relevance of (question, window text), as the scorer gave it.")
    weight: float = Field(0.0, description="S(w) as eq. 12 used it (after normalisation).")
    text: str = ""


class EvidenceTrace(_Record):
    """One evidence (RetroLLM) or one retrieved passage (RAG baselines)."""

    doc_index: int
    doc_id: str
    title: str
    start: int = Field(description="Global token offset of the first evidence token.")
    end: int = Field(description="Global token offset after the last evidence token.")
    text: str
    window: int | None = Field(None, description="Index into `windows` it was steered by.")
    verbatim: bool = Field(
        True,
        description="It is a span of the corpus at [start, end) (False only for evidence "
        "written without a constraint that occurs nowhere; then doc_index is -1).",
    )


class Prediction(_Record):
    """Everything a method produced for one question."""

    id: str
    question: str
    golden_answers: list[str]
    method: str = Field(description="Strategy or baseline name, e.g. 'retrollm', 'rag-bm25'.")
    answer: str = Field(description="The answer text only (what metrics score).")
    output_text: str = Field(description="Everything the model generated, special tokens kept.")
    clues: list[str] = Field(default_factory=list)
    expansion_terms: list[str] = Field(default_factory=list)
    documents: list[DocumentTrace] = Field(default_factory=list)
    windows: list[WindowTrace] = Field(default_factory=list, description="Kept windows.")
    located_windows: list[tuple[int, int, int]] = Field(
        default_factory=list,
        description="Every window located before the top-k cut: (doc_index, start, end).",
    )
    evidences: list[EvidenceTrace] = Field(default_factory=list)
    tokens_in: int = Field(0, description="Prompt tokens read by the model (incl. passages).")
    tokens_out: int = Field(0, description="Tokens generated (incl. forced ones).")
    forward_passes: int = Field(0, description="Model forward calls spent on this question.")
    timings: dict[str, float] = Field(
        default_factory=dict,
        description="Seconds per phase, plus 'total'. Empty in data/eval: the evaluate stage "
        "moves them to the cell's run log (METHOD.run.json), so the cell's bytes repeat.",
    )
    well_formed: bool = Field(description="Output follows the clue/evidence/answer format.")
    status: str = Field(
        "ok",
        description="ok, or what cut it short: no_clue_hits, no_documents, no_windows, "
        "budget_exhausted, question_too_long, ...",
    )
    notes: list[str] = Field(default_factory=list, description="Human-readable decisions.")
