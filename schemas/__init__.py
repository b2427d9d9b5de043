"""Pydantic contracts between stages: one model per artifact and record type."""

from schemas.manifest import InputRef, Manifest, Skip
from schemas.records import CorpusRecord, QARecord

__all__ = ["CorpusRecord", "InputRef", "Manifest", "QARecord", "Skip"]
