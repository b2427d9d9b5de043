"""One training example: the target sequence RetroLLM learns, with its per-token loss mask.

The record keeps both the readable parts (clues, evidences with their corpus positions,
answer) and the exact token ids the loss sees, so a person can audit what the model is
taught (`python -m retrollm.training.show`) and the train stage needs nothing else.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

# One character per token: what the token is, and so what loss weight it carries.
ROLE_CHARS = {
    "p": "prompt (no loss)",
    "s": "structure: special tokens and the forced ' The answer is' (weight 1)",
    "c": "clue token (weight 1)",
    "e": "evidence token at either end of an evidence (weight 1)",
    "m": "evidence token in the masked middle (in the input, no loss)",
    "a": "answer token, final period and end-of-sequence (weight gamma)",
}


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrainClue(_Record):
    """A clue: corpus token ids (they occur in the corpus as they are) and where it came from."""

    text: str
    token_ids: list[int] = Field(min_length=1)
    source: str = Field(description="'question' or 'evidence': which text the span came from.")
    weight: float = Field(description="Clue weight log(N/CF) + log(N/DF) (paper eq. 5).")
    corpus_count: int = Field(ge=1, description="Occurrences of token_ids in the corpus.")


class TrainEvidence(_Record):
    """A ranked evidence: a verbatim token span [start, end) of one corpus document."""

    doc_index: int = Field(ge=0, description="Row of the document in data/corpus.")
    start: int = Field(ge=0, description="Global token offset of the first evidence token.")
    end: int = Field(description="Global token offset after the last evidence token.")
    text: str
    score: float = Field(description="Relevance score of (question, evidence).")
    relevant: bool = Field(description="Contains a gold answer (normalized whole-word match).")


class TrainExample(_Record):
    """A question's full training sequence: prompt + clues + evidences + answer."""

    id: str
    dataset: str
    question: str
    golden_answers: list[str]
    answer: str = Field(description="The gold answer written in the target.")
    clues: list[TrainClue]
    evidences: list[TrainEvidence] = Field(description="Target evidences in ranked order.")
    input_ids: list[int] = Field(min_length=2)
    roles: str = Field(description="One ROLE_CHARS character per input token.")
    weights: list[float] = Field(description="Loss weight of each input token (0: excluded).")
    prompt_length: int = Field(ge=1, description="Tokens of the prompt at the start.")

    @model_validator(mode="after")
    def _aligned(self) -> TrainExample:
        n = len(self.input_ids)
        if len(self.roles) != n or len(self.weights) != n:
            raise ValueError(
                f"input_ids ({n}), roles ({len(self.roles)}) and weights "
                f"({len(self.weights)}) must have one entry per token"
            )
        unknown = set(self.roles) - set(ROLE_CHARS)
        if unknown:
            raise ValueError(f"unknown role characters {sorted(unknown)}")
        if self.roles[: self.prompt_length] != "p" * self.prompt_length:
            raise ValueError("the first prompt_length tokens must have role 'p'")
        return self
