"""Records written by sparse_expand: SPLADE's view of each question."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class SparseQuery(BaseModel):
    """A question's SPLADE expansion terms and document ranking (docs/method.md §3-4)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, description="QARecord id.")
    question: str = Field(description="The bare question SPLADE encoded (no prompt around it).")
    terms: list[str] = Field(description="Top vocabulary terms, heaviest first (no ## pieces).")
    term_weights: list[float] = Field(description="SPLADE weight of each term.")
    doc_ranking: list[int] = Field(description="Document indices, best first (the ranking R2).")
    doc_scores: list[float] = Field(description="Sparse dot product of each ranked document.")

    @model_validator(mode="after")
    def _aligned(self) -> SparseQuery:
        if len(self.terms) != len(self.term_weights):
            raise ValueError("terms and term_weights differ in length")
        if len(self.doc_ranking) != len(self.doc_scores):
            raise ValueError("doc_ranking and doc_scores differ in length")
        return self
