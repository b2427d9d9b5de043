"""What every stage shares: typed params from params.yaml (retrollm.settings), the
checked-input helper, timing.

A stage module reads like its list of steps; this file keeps the plumbing out of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

from pydantic import Field

from retrollm.artifacts import verified_ref
from retrollm.settings import (
    PARAMS_FILE,
    ArtifactsParams,
    Paths,
    StageParams,
    load_params,
    load_paths,
    load_yaml,
    missing_keys,
    verify_contents,
)
from schemas.manifest import InputRef

__all__ = [
    "PARAMS_FILE",
    "ArtifactsParams",
    "DenseParams",
    "Paths",
    "StageParams",
    "checked_input",
    "load_params",
    "load_paths",
    "load_yaml",
    "missing_keys",
    "run_stage",
    "verify_contents",
]


class DenseParams(StageParams):
    """`evaluate.dense`: the bi-encoder behind the rag-dense baseline and its index."""

    model: Path = Field(Path("data/assets/biencoder"), description="sentence-transformers folder.")
    index: Path = Field(Path("data/dense"), description="Output folder of this stage.")
    max_length: int = Field(
        256, ge=8, description="Tokens of a document the bi-encoder reads (its default, 256)."
    )
    batch_size: int = Field(64, ge=1, description="Texts embedded together.")
    threads: int = Field(2, ge=1, description="torch CPU threads while embedding.")


def checked_input(
    folder: Path, schema_name: str | None, names: Iterable[str] | None = None
) -> InputRef:
    """An input's ref after verifying the files the stage reads from it (`names`: file
    names or folder prefixes ending in '/'; None: all)."""
    return verified_ref(folder, schema_name, names, content=verify_contents())


def run_stage(name: str, main: Callable[[], dict[str, int] | None]) -> None:
    """Run a stage's main, then print its wall time and counts on one line."""
    start = time.perf_counter()
    counts = main() or {}
    elapsed = time.perf_counter() - start
    summary = " ".join(f"{k}={v}" for k, v in counts.items())
    print(f"[{name}] done in {elapsed:.1f}s {summary}".rstrip(), flush=True)
