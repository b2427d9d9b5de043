"""Relevance of a text (a future window) to a question: the S(w) of paper eq. 12.

The paper scores windows with BGE-reranker-base, a cross-encoder; no cross-encoder ships
offline here, so the default is the all-MiniLM bi-encoder behind the same interface
(docs/design.md §4). Both truncate inputs to 128 tokens (docs/method.md §5), so a scorer
swap changes the model, not the amount of text it sees.

Scales differ: the bi-encoder returns a cosine in [-1, 1]; the cross-encoder returns the
raw logit by default (as the released code does) or a sigmoid of it. The decoder's lambda
multiplies whichever is picked.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np


class RelevanceScorer(ABC):
    """score(question, texts) -> one float per text, higher is more relevant."""

    max_length: int

    @abstractmethod
    def score(self, question: str, texts: Sequence[str]) -> np.ndarray:
        """float32 array of len(texts); an empty list gives an empty array."""


def _check_folder(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: relevance model folder not found")
    return path


class BiEncoderScorer(RelevanceScorer):
    """Cosine similarity of normalized sentence-transformers embeddings."""

    def __init__(
        self,
        path: str | Path,
        device: str = "cpu",
        max_length: int = 128,
        batch_size: int = 64,
    ):
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(
            str(_check_folder(path)), device=device, local_files_only=True
        )
        self.model.max_seq_length = max_length
        self.max_length = max_length
        self.batch_size = batch_size

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) unit-length float32 rows; shared with the dense retriever."""
        if not texts:
            dim = self.model.get_sentence_embedding_dimension() or 0
            return np.zeros((0, dim), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def score(self, question: str, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0, dtype=np.float32)
        vectors = self.embed([question, *texts])
        return (vectors[1:] @ vectors[0]).astype(np.float32)


class CrossEncoderScorer(RelevanceScorer):
    """A sequence-classification model over (question, text) pairs, one logit each."""

    def __init__(
        self,
        path: str | Path,
        device: str = "cpu",
        max_length: int = 128,
        batch_size: int = 32,
        activation: str = "identity",
    ):
        import torch
        from sentence_transformers import CrossEncoder

        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        # CrossEncoder defaults to a sigmoid for one label; say explicitly which is wanted.
        self.model = CrossEncoder(
            str(_check_folder(path)),
            device=device,
            max_length=max_length,
            local_files_only=True,
            activation_fn=getattr(torch.nn, ACTIVATIONS[activation])(),
        )
        self.max_length = max_length
        self.batch_size = batch_size

    def score(self, question: str, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0, dtype=np.float32)
        pairs = [(question, text) for text in texts]
        scores = self.model.predict(
            pairs, batch_size=self.batch_size, show_progress_bar=False, convert_to_numpy=True
        )
        return np.asarray(scores, dtype=np.float32).reshape(len(texts))


ACTIVATIONS = {"identity": "Identity", "sigmoid": "Sigmoid"}  # torch.nn module names
SCORERS: dict[str, type[RelevanceScorer]] = {
    "biencoder": BiEncoderScorer,
    "cross-encoder": CrossEncoderScorer,
}


def load_scorer(
    kind: str,
    path: str | Path,
    max_length: int = 128,
    device: str = "cpu",
    activation: str = "identity",
) -> RelevanceScorer:
    """Scorer by name ("biencoder" or "cross-encoder"), as params.yaml names it.
    `activation` (identity | sigmoid) applies to the cross-encoder's logit; a bi-encoder
    has no logit to squash, so it must stay "identity" there."""
    if kind not in SCORERS:
        raise ValueError(f"unknown relevance scorer {kind!r}; choose one of {sorted(SCORERS)}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    if kind == "cross-encoder":
        return CrossEncoderScorer(path, device=device, max_length=max_length, activation=activation)
    if activation != "identity":
        raise ValueError(f"activation {activation!r} applies to a cross-encoder, not a {kind}")
    return SCORERS[kind](path, device=device, max_length=max_length)  # type: ignore[call-arg]
