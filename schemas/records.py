"""Record types that flow between the data stages."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.text import check_id, check_text


class CorpusRecord(BaseModel):
    """One document. `contents` is the text that is tokenized and indexed."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, description="Unique document id.")
    title: str = Field(description="Document title (may repeat across FlashRAG passages).")
    contents: str = Field(description="Document text (FlashRAG: 'title\\ntext').")

    @field_validator("id")
    @classmethod
    def _exact_id(cls, value: str) -> str:
        return check_id(value)

    @field_validator("title", "contents")
    @classmethod
    def _clean(cls, value: str) -> str:
        return check_text(value)

    @field_validator("contents")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("empty document contents")
        return value


class QARecord(BaseModel):
    """One question with its gold answers."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    question: str = Field(description="The question text, stripped.")
    golden_answers: list[str] = Field(min_length=1, description="Accepted answer strings.")
    answerable: bool | None = Field(
        default=None,
        description="Whether a gold answer occurs in the corpus (normalized match); "
        "None until prepare_qa has checked.",
    )

    @field_validator("id")
    @classmethod
    def _exact_id(cls, value: str) -> str:
        return check_id(value)

    @field_validator("question")
    @classmethod
    def _clean(cls, value: str) -> str:
        value = check_text(value).strip()
        if not value:
            raise ValueError("empty text")
        return value

    @field_validator("golden_answers")
    @classmethod
    def _clean_answers(cls, values: list[str]) -> list[str]:
        cleaned = [check_text(v).strip() for v in values]
        cleaned = [v for v in cleaned if v]
        if not cleaned:
            raise ValueError("no non-empty gold answer")
        return cleaned
