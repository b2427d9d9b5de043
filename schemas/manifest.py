"""The manifest written beside every stage output: what made it and what it holds."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class InputRef(BaseModel):
    """One input artifact as this output saw it (its manifest's identity)."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="Folder of the input artifact, relative to the repo root.")
    schema_name: str = Field(description="schema_name of the input's manifest.")
    fingerprint: str = Field(description="fingerprint of the input's manifest.")


class Skip(BaseModel):
    """One input record left out under `on_error: skip`, with where and why."""

    model_config = ConfigDict(extra="forbid")

    file: str
    line: int = Field(description="1-based line (or record) number in `file`.")
    reason: str


class Manifest(BaseModel):
    """Contract between stages: every output folder holds one as manifest.json."""

    model_config = ConfigDict(extra="forbid")

    schema_name: str = Field(description="Kind of artifact, e.g. 'corpus', 'tokens', 'index'.")
    schema_version: int = Field(description="Bumped when the artifact's layout changes.")
    stage: str = Field(description="Stage module that wrote it.")
    params: dict[str, Any] = Field(default_factory=dict, description="Params that made it.")
    inputs: dict[str, InputRef] = Field(default_factory=dict)
    counts: dict[str, int] = Field(default_factory=dict, description="Record counts.")
    files: dict[str, str] = Field(
        default_factory=dict, description="File name (relative) -> sha256 of its bytes."
    )
    sizes: dict[str, int] = Field(
        default_factory=dict,
        description="File name (relative) -> bytes; checked before hashing, and alone when "
        "verification is off.",
    )
    fingerprint: str = Field(
        default="", description="sha256 over schema, params, inputs and file hashes."
    )
    skips: list[Skip] = Field(default_factory=list, description="Every skipped record.")
    extra: dict[str, Any] = Field(
        default_factory=dict, description="Artifact-specific facts (e.g. tokenizer fingerprint)."
    )
