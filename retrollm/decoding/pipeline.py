"""RetroLLM end to end: load the artifacts once, answer questions in batches.

    decoder = RetroLLM.from_artifacts(paths, DecodeConfig(), adapter=None)
    predictions = decoder.answer(records_or_strings)

Loading checks what would silently corrupt results: every file read must match its
manifest (size and sha256), and the inputs must form one chain by fingerprint: the index
made from these tokens, made from this corpus by this model's tokenizer, and SPLADE's
rankings made from this corpus (retrollm/chain.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from retrollm.artifacts import verified_ref
from retrollm.chain import asset_ref, check_chain
from retrollm.decoding.config import DecodeConfig
from retrollm.decoding.contexts import RetrievalContexts
from retrollm.decoding.decoder import Decoder
from retrollm.decoding.sparse import SparseQueries, load_stored_queries
from retrollm.decoding.state import Hypothesis, Query
from retrollm.decoding.strategies import Strategy, resolve_strategy
from retrollm.decoding.trace import build_prediction
from retrollm.index import TokenIndex, load_index
from retrollm.models import (
    SpecialTokenIds,
    load_causal_lm,
    prompt_ids,
    resolve_device,
    tokenizer_fingerprint,
)
from schemas.prediction import Prediction
from schemas.records import CorpusRecord, QARecord


class RetroLLM:
    """A loaded decoder: model, tokenizer, corpus index, corpus, SPLADE and window scorer."""

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        index: TokenIndex | None,
        corpus: Sequence[CorpusRecord] | None,
        config: DecodeConfig,
        sparse: SparseQueries | None = None,
        scorer: Any = None,
    ) -> None:
        self.model, self.tokenizer, self.index, self.corpus = model, tokenizer, index, corpus
        self.config = config
        self.strategy: Strategy = resolve_strategy(config)
        self.special = SpecialTokenIds.from_tokenizer(tokenizer)
        self.sparse, self.scorer = sparse, scorer
        contexts = None
        if self.strategy.retrieve and (index is None or scorer is None):
            raise ValueError(f"strategy {self.strategy.name!r} needs the index and a scorer")
        if self.strategy.retrieve:
            contexts = RetrievalContexts(index, tokenizer, scorer, config, self.strategy, corpus)
        self.decoder = Decoder(
            model, tokenizer, self.special, self.strategy, config, index, contexts
        )

    @classmethod
    def from_artifacts(
        cls,
        paths: Any,
        config: DecodeConfig,
        adapter: str | Path | None = None,
        stored_queries: bool = True,
        verify: bool = True,
    ) -> RetroLLM:
        """Load from the pipeline's folders (`paths`: retrollm.settings.Paths or alike).

        stored_queries: read sparse_expand's per-question SPLADE results (seconds for
        tens of thousands of questions; worth it for an evaluation, not for one question,
        which is encoded live in milliseconds with the same numbers).
        verify: re-hash every file read against its manifest (False: sizes only, warned)."""
        from retrollm.corpus import load_corpus

        device = str(resolve_device(config.device))
        strategy = resolve_strategy(config)
        verify_inputs(paths, config, adapter, strategy.retrieve, stored_queries, verify)
        model, tokenizer = load_causal_lm(paths.model, config.dtype, adapter, device)
        check_chain(paths, tokenizer_fingerprint(tokenizer), splade=strategy.retrieve)
        # Every strategy reads the index (unconstrained too: it reports whether its
        # evidence happens to be verbatim); it is memory-mapped, so loading is cheap.
        index = load_index(
            paths.index, expected_tokenizer_fingerprint=tokenizer_fingerprint(tokenizer)
        )
        corpus = load_corpus(paths.corpus)
        sparse = scorer = None
        if strategy.retrieve:
            sparse = load_sparse(paths, config, stored_queries, device)
            from retrollm.retrieval.scorer import load_scorer

            scorer_dir = scorer_folder(paths, config)
            scorer = load_scorer(
                config.scorer,
                scorer_dir,
                config.scorer_max_length,
                device=device,
                activation=config.scorer_activation,
            )
        return cls(model, tokenizer, index, corpus, config, sparse, scorer)

    def with_config(self, config: DecodeConfig) -> RetroLLM:
        """Another decoder over the same loaded model, index and retrieval models (a
        benchmark or an ablation sweep loads them once)."""
        return RetroLLM(
            self.model, self.tokenizer, self.index, self.corpus, config, self.sparse, self.scorer
        )

    # ------------------------------------------------------------------ answering
    def answer(self, questions: Sequence[QARecord | str]) -> list[Prediction]:
        """Predictions in question order, each with its full trace; never raises on a
        question's content (empty, over-long, no hits): the record says what happened."""
        return [self.prediction(h) for h in self.hypotheses(questions)]

    def hypotheses(self, questions: Sequence[QARecord | str]) -> list[Hypothesis]:
        """The decoded hypotheses themselves (token ids, index states), batch by batch."""
        done: list[Hypothesis] = []
        size = self.config.batch_size
        for lo in range(0, len(questions), size):
            queries = [self._query(q, lo + i) for i, q in enumerate(questions[lo : lo + size])]
            if self.strategy.retrieve and self.sparse is not None:
                self.sparse.fill(queries, self._k_aux, self.config.sparse_top_docs)
            done += self.decoder.decode(queries)
        return done

    def prediction(self, hyp: Hypothesis) -> Prediction:
        return build_prediction(
            hyp,
            self.tokenizer,
            self.special,
            self.decoder.answer_prefix,
            self.corpus,
            self.strategy.name,
            self.decoder.stop_ids.tolist(),
        )

    @property
    def _k_aux(self) -> int:
        return self.config.k_aux if self.config.clue_expansion else 0

    def _query(self, question: QARecord | str, number: int) -> Query:
        if isinstance(question, QARecord):
            qid, text, gold = question.id, question.question, list(question.golden_answers)
        else:
            qid, text, gold = f"q{number}", str(question).strip(), []
        query = Query(qid, text, gold, [])
        if not text:
            query.status = "empty_question"
            query.notes.append("empty question: decoded from the bare prompt")
        ids = self.tokenizer(text, add_special_tokens=False, split_special_tokens=True)
        ids = ids["input_ids"]
        if len(ids) > self.config.max_question_tokens:
            text = self.tokenizer.decode(ids[: self.config.max_question_tokens]).strip()
            query.question = text
            query.status = "question_too_long"
            query.notes.append(
                f"question cut from {len(ids)} to {self.config.max_question_tokens} tokens"
            )
        query.prompt_ids = prompt_ids(self.tokenizer, text)
        return query


def scorer_folder(paths: Any, config: DecodeConfig) -> Path:
    return Path(config.scorer_model or Path(paths.assets) / "biencoder")


def splade_folder(paths: Any, config: DecodeConfig) -> Path:
    return Path(config.splade_model or Path(paths.assets) / "splade")


def verify_inputs(
    paths: Any,
    config: DecodeConfig,
    adapter: str | Path | None,
    retrieve: bool,
    stored_queries: bool,
    content: bool = True,
) -> None:
    """Check every file the decoder will read against its manifest before loading it."""
    from retrollm.corpus import CORPUS_SCHEMA, DOCUMENTS_FILE
    from retrollm.sharding import data_files

    verified_ref(paths.model, "model", None, content)
    if adapter is not None:
        verified_ref(Path(adapter), "adapter", None, content)
    verified_ref(paths.index, "index", None, content)
    corpus_files = data_files(paths.corpus, CORPUS_SCHEMA, [DOCUMENTS_FILE])
    verified_ref(paths.corpus, CORPUS_SCHEMA, corpus_files, content)
    if retrieve:
        wanted = ["docs/", "queries/"] if stored_queries else ["docs/"]
        present = [w for w in wanted if w == "docs/" or (Path(paths.splade) / w).is_dir()]
        verified_ref(paths.splade, "splade", present, content)
        for folder in (splade_folder(paths, config), scorer_folder(paths, config)):
            asset_ref(paths.assets, folder, content)


def load_sparse(
    paths: Any, config: DecodeConfig, stored_queries: bool = True, device: str = "cpu"
) -> SparseQueries:
    """SPLADE encoder (for questions never seen) plus sparse_expand's document index and
    per-question results (data/splade: docs/, queries/DATASET/SPLIT.msgpack)."""
    from retrollm.retrieval.shards import load_doc_index
    from retrollm.retrieval.splade import SpladeEncoder

    model_dir = splade_folder(paths, config)
    splade_dir = Path(paths.splade)
    doc_index = load_doc_index(splade_dir / "docs")
    stored = {}
    if stored_queries:
        stored, _ = load_stored_queries(splade_dir, model_dir, config.k_aux, config.sparse_top_docs)
    return SparseQueries(SpladeEncoder(model_dir, device=device), doc_index, stored)
