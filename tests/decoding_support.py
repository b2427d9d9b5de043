"""Shared pieces of the decoding tests: the fixture corpus indexed with the tiny model's
tokenizer, and deterministic stand-ins for SPLADE and the window scorer (word overlap),
so a test's outcome depends on the decoder, not on random retrieval weights."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retrollm.decoding.state import Query
from retrollm.index import CorpusIndex
from schemas.records import CorpusRecord, QARecord

FIXTURES = Path(__file__).parent / "fixtures"
_WORD = re.compile(r"[a-z0-9]+")
_STOP = {"what", "which", "who", "whom", "when", "where", "does", "did", "the", "was", "is"}


def words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if len(w) > 2 and w not in _STOP]


def fixture_corpus() -> list[CorpusRecord]:
    with open(FIXTURES / "corpus.jsonl", encoding="utf-8") as handle:
        return [CorpusRecord.model_validate(json.loads(line)) for line in handle if line.strip()]


def fixture_questions(split: str = "test") -> list[QARecord]:
    with open(FIXTURES / f"qa_{split}.jsonl", encoding="utf-8") as handle:
        return [QARecord.model_validate(json.loads(line)) for line in handle if line.strip()]


def corpus_tokens(tokenizer: Any, corpus: Sequence[CorpusRecord]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated token ids of the documents and their offsets, as tokenize_corpus does."""
    ids = tokenizer(
        [r.contents for r in corpus], add_special_tokens=False, split_special_tokens=True
    )["input_ids"]
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum([len(i) for i in ids], out=offsets[1:])
    return np.concatenate([np.asarray(i) for i in ids]), offsets


def build_index(
    tokenizer: Any, corpus: Sequence[CorpusRecord], fingerprint: str = ""
) -> CorpusIndex:
    tokens, offsets = corpus_tokens(tokenizer, corpus)
    return CorpusIndex.build(tokens, offsets, tokenizer_fingerprint=fingerprint)


def tokens_and_index(paths: Any) -> None:
    """Run tokenize_corpus and build_index on `paths` (retrollm.settings.Paths): their
    manifests then form the chain corpus -> tokens -> index that loaders check."""
    from stages.build_index import BuildIndexParams
    from stages.build_index import main as build_index_stage
    from stages.tokenize_corpus import TokenizeCorpusParams
    from stages.tokenize_corpus import main as tokenize_stage

    tokenize_stage(TokenizeCorpusParams(batch_size=8), paths)
    build_index_stage(BuildIndexParams(), paths)


class OverlapSparse:
    """SPLADE stand-in: question words as expansion terms, documents by shared words."""

    def __init__(self, corpus: Sequence[CorpusRecord]) -> None:
        self.doc_words = [set(words(r.contents)) for r in corpus]

    def fill(self, queries: Sequence[Query], k_aux: int, top_docs: int) -> None:
        for query in queries:
            terms = list(dict.fromkeys(words(query.question)))
            query.expansion_terms = [(t, 1.0) for t in terms[:k_aux]]
            overlap = np.array([len(set(terms) & d) for d in self.doc_words], dtype=np.float32)
            order = np.lexsort((np.arange(overlap.size), -overlap))
            order = order[overlap[order] > 0][:top_docs]
            query.sparse_docs, query.sparse_scores = order.astype(np.int64), overlap[order]


class OverlapScorer:
    """Window scorer stand-in: share of the question's words found in the text."""

    max_length = 128

    def score(self, question: str, texts: Sequence[str]) -> np.ndarray:
        wanted = set(words(question)) or {""}
        return np.array(
            [len(wanted & set(words(t))) / len(wanted) for t in texts], dtype=np.float32
        )


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """A tiny model's step is a few microseconds of math; a second OpenMP thread only adds
    synchronisation, which on a busy 2-core machine costs 10-20x. Restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class FixedSparse:
    """SPLADE stand-in that returns the same terms and document ranking for every question."""

    def __init__(self, terms: Sequence[str], docs: Sequence[int]) -> None:
        self.terms, self.docs = list(terms), np.asarray(docs, dtype=np.int64)

    def fill(self, queries: Sequence[Query], k_aux: int, top_docs: int) -> None:
        for query in queries:
            query.expansion_terms = [(t, 1.0) for t in self.terms[:k_aux]]
            query.sparse_docs = self.docs[:top_docs]
            query.sparse_scores = np.ones(len(query.sparse_docs), dtype=np.float32)


@dataclasses.dataclass
class Setting:
    """The tiny model with the fixture corpus indexed by its tokenizer."""

    model: Any
    tokenizer: Any
    corpus: list[CorpusRecord]
    index: CorpusIndex

    @classmethod
    def of(cls, model_and_tokenizer: tuple[Any, Any]) -> Setting:
        model, tokenizer = model_and_tokenizer
        corpus = fixture_corpus()
        return cls(model, tokenizer, corpus, build_index(tokenizer, corpus))

    def decoder(self, sparse: Any = None, **overrides: Any) -> Any:
        """A RetroLLM over this setting with deterministic retrieval stand-ins."""
        from retrollm.decoding import DecodeConfig
        from retrollm.decoding.pipeline import RetroLLM

        config = DecodeConfig(**({"batch_size": 4} | overrides))
        sparse = sparse or OverlapSparse(self.corpus)
        return RetroLLM(
            self.model, self.tokenizer, self.index, self.corpus, config, sparse, OverlapScorer()
        )
