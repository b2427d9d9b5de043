"""Build one training example per question (docs/method.md §8), through the
decoder's own retrieval, so that every target evidence is one the decoder can be steered
to at test time.

Per question:
1. clues: corpus spans of the question (retrollm.training.clues);
2. retrieval exactly as decoding does it (retrollm.decoding.contexts): the clues and the
   SPLADE expansion terms score documents, fused with the SPLADE ranking; windows around
   clue hits in the top documents; the same relevance scorer, diversity rules and top-k
   cut as the `decode:` section sets;
3. evidences: the kept windows in rank order, each written from its first anchor (a
   sentence start in the window's head) to the first sentence end past the decoder's
   minimum evidence length (retrollm.retrieval.sentences), skipping windows an earlier
   evidence overlaps, as the decoder marks them used; `k_evidence` of them, the
   answer-bearing one at whatever rank it has;
4. relevance: an evidence is relevant if it contains a gold answer (normalized whole-word
   match; the paper's 70B-LLM confirmation has no offline equivalent); a question with no
   relevant evidence is dropped or kept (`no_relevant`);
5. one more clue from the first relevant evidence (a name in it, never the answer);
6. the sequence with its loss mask, checked against the decoder's constraints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from retrollm.decoding.config import DecodeConfig
from retrollm.decoding.contexts import NoteBook, RetrievalContexts
from retrollm.decoding.state import EvidenceContext, Query
from retrollm.retrieval.sentences import evidence_end
from retrollm.text import normalize_answer
from retrollm.training.clues import Clue, ClueFinder
from retrollm.training.evidence import Span, matching_answer
from retrollm.training.masks import weights_from_roles
from retrollm.training.targets import (
    Limits,
    Special,
    answer_text,
    assert_reachable,
    build_sequence,
)
from schemas.retrieval import SparseQuery
from schemas.training import TrainClue, TrainEvidence, TrainExample

NoRelevant = Literal["drop", "keep"]

# The `decode:` keys a target depends on (retrieval, window cut, evidence and clue rules):
# build_trainset records them and dvc.yaml tracks them, so that a decoding-only knob
# (lambda, normalisation, batch size) does not rebuild the trainset and retrain.
DECODE_KEYS = (
    "strategy", "clue_expansion", "future_windows", "k_aux", "expansion_for_documents",
    "max_clue_corpus_hits", "top_docs", "sparse_top_docs", "fusion", "fusion_weight_clues",
    "fusion_weight_sparse", "window_radius", "max_window", "max_hits_per_clue",
    "max_windows_per_doc", "max_windows_total", "top_windows", "scorer_max_length", "scorer",
    "scorer_model", "scorer_activation", "max_kept_windows_per_doc", "disjoint_windows",
    "anchored_start", "anchor_fraction", "min_evidence_tokens", "max_evidence_tokens",
    "max_evidences", "max_clues", "max_clue_tokens", "min_clue_tokens_before_sep",
    "answer_prefix",
)  # fmt: skip


class TrainsetConfig(BaseModel):
    """What a target is made of beyond the decoder's rules: the one definition, with the
    library defaults; the build_trainset stage's params inherit these fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    k_evidence: int = Field(
        3,
        ge=1,
        description="Evidences per target, from the decoder's kept windows in rank order "
        "(the answer-bearing one at whatever rank it has); the decoder writes as many "
        "(decode.min_evidences, decode.max_evidences).",
    )
    clues_from_question: int = Field(2, ge=0, description="Clues taken from the question.")
    clues_from_evidence: int = Field(1, ge=0, description="Clues from the relevant evidence.")
    clue_max_words: int = Field(3, ge=1, description="Words per clue span, at most.")
    clue_max_hits: int = Field(
        1000, ge=1, description="Spans occurring more often select nothing: never clues."
    )
    clue_may_contain_answer: bool = Field(
        False, description="Allow evidence clues that contain a gold answer."
    )
    no_relevant: NoRelevant = Field(
        "drop",
        description="No gold answer in any of the k_evidence evidences: drop the question, "
        "or keep it (the model then learns to answer past evidence that lacks the answer).",
    )
    keep_fraction: float = Field(
        0.1, ge=0.0, le=0.5, description="Share of each evidence's tokens in the loss, per end."
    )
    gamma: float = Field(2.0, ge=0.0, description="Loss weight of answer tokens.")
    max_tokens: int = Field(512, ge=16, description="Longer sequences are dropped (counted).")

    def trainset(self) -> TrainsetConfig:
        """These settings alone (a subclass's other fields dropped)."""
        return TrainsetConfig.model_validate(
            self.model_dump(include=set(TrainsetConfig.model_fields))
        )


def limits(config: TrainsetConfig, decode: DecodeConfig) -> Limits:
    """The decoder's length rules a target must obey, read from the `decode:` section."""
    return Limits(
        max_clues=decode.max_clues,
        clue_min_tokens=decode.min_clue_tokens_before_sep,
        clue_max_tokens=decode.max_clue_tokens,
        max_evidences=decode.evidence_cap(decode.top_windows),
        evidence_min_tokens=decode.min_evidence_tokens,
        evidence_max_tokens=decode.max_evidence_tokens,
    )


def sparse_query(record_id: str, question: str, answers: Sequence[str], sparse: SparseQuery,
                 decode: DecodeConfig) -> Query:  # fmt: skip
    """The decoder's Query for a training question, SPLADE filled from sparse_expand."""
    k_aux = decode.k_aux if decode.clue_expansion else 0
    terms = list(zip(sparse.terms, sparse.term_weights, strict=True))[:k_aux]
    top = decode.sparse_top_docs
    return Query(
        record_id, question, list(answers), [], terms,
        np.asarray(sparse.doc_ranking[:top], dtype=np.int64),
        np.asarray(sparse.doc_scores[:top], dtype=np.float32),
    )  # fmt: skip


@dataclass
class Retrieved:
    """A question after its clues were picked and the decoder's retrieval ran on them."""

    query: Query
    clues: list[tuple[Clue, str]]  # (clue, source), in target order
    context: EvidenceContext | None
    evidences: list[tuple[Span, float]]


class TrainsetBuilder:
    """Turns (question, SPLADE result) into a TrainExample, or a reason for dropping it."""

    def __init__(
        self,
        config: TrainsetConfig,
        decode: DecodeConfig,
        retrieval: RetrievalContexts,
        special: Special,
        prompt_ids: Any,
    ) -> None:
        self.config, self.decode, self.retrieval = config, decode, retrieval
        self.index, self.tokenizer = retrieval.index, retrieval.tokenizer
        self.special = special
        self.prompt_ids = prompt_ids
        self.limits = limits(config, decode)
        self.clues = ClueFinder(
            self.index,
            self.tokenizer,
            config.clue_max_words,
            decode.min_clue_tokens_before_sep,
            decode.max_clue_tokens,
            config.clue_max_hits,
            forbidden_ids=special.ids,
        )
        self.answer_prefix = self.tokenizer.encode(decode.answer_prefix, add_special_tokens=False)

    # ------------------------------------------------------------------ retrieval
    def retrieve(self, queries: Sequence[Query]) -> list[Retrieved]:
        """Clues and the decoder's retrieval for a batch (the scorer embeds every window
        of the batch in one call). Pass 1 retrieves with the question clues; where an
        evidence holds the answer, a clue from it joins and pass 2 retrieves again with
        all clues, as the decoder will once the model writes them. Pass 2 is kept if it
        still finds a relevant evidence, else the question clues alone."""
        picked = [self.clues.pick(q.question, self.config.clues_from_question, recase=True)
                  for q in queries]  # fmt: skip
        out = [Retrieved(q, [(c, "question") for c in clues], None, [])
               for q, clues in zip(queries, picked, strict=True)]  # fmt: skip
        self._run(out)  # no question clue: the expansion terms and SPLADE still retrieve
        extended = []
        for r in out:
            relevant = self._first_relevant(r)
            extra = self.evidence_clues(r.query.golden_answers, r.clues, relevant)
            if extra:
                extended.append(Retrieved(r.query, [*r.clues, *extra], None, []))
        self._run(extended)
        better = {id(r.query): r for r in extended if self._first_relevant(r) is not None}
        return [better.get(id(r.query), r) for r in out]

    def _run(self, pending: Sequence[Retrieved]) -> None:
        jobs = [(r.query, [list(c.token_ids) for c, _ in r.clues], NoteBook()) for r in pending]
        for r, context in zip(pending, self.retrieval.build_for(jobs), strict=True):
            r.context = context
            r.evidences = self.evidence_spans(context)

    def _first_relevant(self, r: Retrieved) -> Span | None:
        answers = r.query.golden_answers
        return next((s for s, _ in r.evidences if matching_answer(s.text, answers)), None)

    def evidence_spans(self, context: EvidenceContext) -> list[tuple[Span, float]]:
        """(span, window score) of the target's evidences, from the kept windows in rank
        order: the first anchor to the first sentence end past the minimum length, never
        into an earlier evidence; a window an earlier evidence overlaps is skipped."""
        table, texts = context.table, self.retrieval.token_texts
        if table is None:
            return []
        spans: list[tuple[Span, float]] = []
        for k, window in enumerate(context.windows):
            if len(spans) == self.config.k_evidence:
                break
            if any(window.start < s.end and s.start < window.end for s, _ in spans):
                continue
            anchor = 0
            if table.anchors is not None and table.anchors[k].size:
                anchor = int(table.anchors[k][0] - table.starts[k])
            start = window.start + anchor
            stop = int(self.index.doc_offsets[window.doc_index + 1])
            for s, _ in spans:  # the decoder stops an evidence where an earlier one starts
                if start < s.start < stop:
                    stop = s.start
            tokens = self.index.extract(start, stop)
            end = start + evidence_end(
                tokens, 0, texts, self.decode.min_evidence_tokens, self.decode.max_evidence_tokens
            )
            text = self.tokenizer.decode(self.index.extract(start, end).tolist())
            spans.append((Span(window.doc_index, start, end, text), window.score))
        return spans

    # --------------------------------------------------------------------- target
    def build(self, dataset: str, retrieved: Retrieved) -> tuple[TrainExample | None, str]:
        """(example, "kept") or (None, reason), reason one of no_clues, no_windows,
        no_relevant, too_long."""
        c, query = self.config, retrieved.query
        if not retrieved.clues:
            return None, "no_clues"
        ranked = retrieved.evidences
        if not ranked:
            return None, "no_windows"
        answers = query.golden_answers
        hits = [matching_answer(span.text, answers) for span, _ in ranked]
        first = next((i for i, hit in enumerate(hits) if hit is not None), None)
        if first is None and c.no_relevant == "drop":
            return None, "no_relevant"
        answer = (hits[first] or answers[0]) if first is not None else answers[0]
        clues = retrieved.clues
        prompt = self.prompt_ids(query.question)
        answer_ids = self.tokenizer.encode(answer_text(answer), add_special_tokens=False)
        sequence = build_sequence(
            prompt,
            [list(clue.token_ids) for clue, _ in clues],
            [self.index.extract(s.start, s.end).tolist() for s, _ in ranked],
            self.answer_prefix,
            answer_ids,
            self.special,
            c.keep_fraction,
        )
        if len(sequence.input_ids) > c.max_tokens:
            return None, "too_long"
        assert_reachable(
            sequence.input_ids,
            len(prompt),
            [span.doc for span, _ in ranked],
            self.index,
            self.special,
            self.limits,
            short_ok=[_stops_at_earlier(span, ranked[:i]) for i, (span, _) in enumerate(ranked)],
        )
        example = TrainExample(
            id=query.id,
            dataset=dataset,
            question=query.question,
            golden_answers=list(answers),
            answer=answer,
            clues=[
                TrainClue(
                    text=clue.text,
                    token_ids=list(clue.token_ids),
                    source=source,
                    weight=clue.weight,
                    corpus_count=clue.corpus_count,
                )
                for clue, source in clues
            ],
            evidences=[
                TrainEvidence(
                    doc_index=span.doc,
                    start=span.start,
                    end=span.end,
                    text=span.text,
                    score=score,
                    relevant=hit is not None,
                )
                for (span, score), hit in zip(ranked, hits, strict=True)
            ],
            input_ids=sequence.input_ids,
            roles=sequence.roles,
            weights=weights_from_roles(sequence.roles, c.gamma),
            prompt_length=len(prompt),
        )
        return example, "kept"

    def evidence_clues(
        self,
        answers: Sequence[str],
        chosen: Sequence[tuple[Clue, str]],
        relevant: Span | None,
    ) -> list[tuple[Clue, str]]:
        """Clues from the relevant evidence repeating neither a question clue nor, unless
        allowed, an answer; within the decoder's clue cap."""
        c = self.config
        room = min(c.clues_from_evidence, self.decode.max_clues - len(chosen))
        if relevant is None or room <= 0:
            return []
        exclude = [normalize_answer(clue.text) for clue, _ in chosen]
        if not c.clue_may_contain_answer:
            exclude += [normalize_answer(a) for a in answers]
        found = self.clues.pick(relevant.text, room, recase=False, exclude=exclude, names_only=True)
        return [(clue, "evidence") for clue in found]


def _stops_at_earlier(span: Span, earlier: Sequence[tuple[Span, float]]) -> bool:
    """The evidence ends where an earlier one starts (the decoder lets it stop there)."""
    return any(span.end == e.start and span.doc == e.doc for e, _ in earlier)
