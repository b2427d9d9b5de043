"""The pipeline's settings: params.yaml read into typed models, strictly.

Nothing here knows of DVC; it is plain pydantic over a yaml file, so both the stages and
the engine's own command line (`python -m retrollm ask`) read settings the same way.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

ParamsT = TypeVar("ParamsT", bound=BaseModel)
PARAMS_FILE = Path(os.environ.get("RETROLLM_PARAMS", "params.yaml"))


class StageParams(BaseModel):
    """Base for a stage's params section: unknown keys are typos, so they are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Paths(StageParams):
    """Where each artifact lives; dvc.yaml reads the same section, so they never drift."""

    assets: Path = Field(Path("data/assets"), description="fetch_assets output.")
    corpus: Path = Field(Path("data/corpus"), description="prepare_corpus output.")
    qa: Path = Field(Path("data/qa"), description="prepare_qa outputs, one folder per dataset.")
    model: Path = Field(Path("data/models/base"), description="prepare_model output.")
    tokens: Path = Field(Path("data/tokens"), description="tokenize_corpus output.")
    index: Path = Field(Path("data/index"), description="build_index output.")
    splade: Path = Field(Path("data/splade"), description="sparse_expand output.")
    trainset: Path = Field(Path("data/train"), description="build_trainset output.")
    adapter: Path = Field(Path("data/models/adapter"), description="train output.")
    rag_trainset: Path = Field(Path("data/train_rag"), description="build_rag_trainset output.")
    rag_adapter: Path = Field(
        Path("data/models/adapter_rag"), description="train_rag output (the rag-lora adapter)."
    )
    eval: Path = Field(Path("data/eval"), description="evaluate outputs.")
    report: Path = Field(Path("data/report"), description="report output.")


class ArtifactsParams(StageParams):
    """The `artifacts:` section: how far a stage trusts the files it reads."""

    verify: bool = Field(
        True,
        description="Re-hash every input file a stage reads against its manifest before use "
        "(false: sizes only, with a warning; for corpora too large to re-hash on each run).",
    )


def load_yaml(path: Path = PARAMS_FILE) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: params file not found (run from the repo root)")
    return yaml.safe_load(path.read_text()) or {}


def missing_keys(model: type[BaseModel], raw: dict[str, Any], prefix: str = "") -> list[str]:
    """Fields of `model` (and of its nested models) that `raw` does not set."""
    missing = []
    for name, field in model.model_fields.items():
        if name not in raw:
            missing.append(prefix + name)
            continue
        nested = field.annotation
        is_model = isinstance(nested, type) and issubclass(nested, BaseModel)
        if is_model and isinstance(raw[name], dict):
            missing += missing_keys(nested, raw[name], f"{prefix}{name}.")
    return missing


def load_params(section: str, model: type[ParamsT], path: Path = PARAMS_FILE) -> ParamsT:
    """Validate one section of params.yaml (`a.b`: a nested one) against the stage's typed
    params. params.yaml must set every field: a default in code never stands in for the
    pipeline's value, so the two cannot disagree."""
    raw: Any = load_yaml(path)
    for part in section.split("."):
        raw = (raw or {}).get(part) if isinstance(raw, dict) else None
    raw = raw or {}
    if missing := missing_keys(model, raw):
        raise SystemExit(
            f"{path}: section '{section}' does not set {', '.join(missing)} "
            f"({model.__name__} documents each)"
        )
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        raise SystemExit(f"{path}: section '{section}' is invalid:\n{error}") from error


def load_paths(path: Path = PARAMS_FILE) -> Paths:
    return load_params("paths", Paths, path)


def verify_contents(path: Path = PARAMS_FILE) -> bool:
    """Whether stages re-hash their inputs (`artifacts.verify`); not a DVC param, since it
    changes no output. Without a params file (a stage called from code), they do."""
    if not path.is_file():
        return True
    return load_params("artifacts", ArtifactsParams, path).verify
