"""Pydantic contracts between stages: one model per artifact and record type."""

from schemas.manifest import InputRef, Manifest, Skip
from schemas.prediction import DocumentTrace, EvidenceTrace, Prediction, WindowTrace
from schemas.records import CorpusRecord, QARecord

__all__ = [
    "CorpusRecord",
    "DocumentTrace",
    "EvidenceTrace",
    "InputRef",
    "Manifest",
    "Prediction",
    "QARecord",
    "Skip",
    "WindowTrace",
]
