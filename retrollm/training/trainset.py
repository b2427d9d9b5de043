"""Build one training example per question (RETROLLM.md section 8).

Per question: SPLADE's top k_aux terms and top documents (from sparse_expand);
sentence-aligned windows of those documents holding a term (retrollm.training.evidence
says why windows rather than bare sentences); the relevance scorer keeps the top k_e
non-overlapping ones; an evidence
is relevant if it contains a gold answer (normalized whole-word match; the paper's
70B-LLM confirmation has no offline equivalent, so a sentence that mentions the answer
in passing also counts); the target keeps the ranked evidences up to and including the
first relevant one. Clues come from the question and the relevant evidence
(retrollm.training.clues). Every target is checked against the decoder's constraints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from retrollm.text import normalize_answer
from retrollm.training.clues import Clue, ClueFinder
from retrollm.training.evidence import (
    Span,
    WindowStore,
    candidate_windows,
    matching_answer,
    top_disjoint,
)
from retrollm.training.masks import weights_from_roles
from retrollm.training.targets import (
    ANSWER_PREFIX,
    Limits,
    Special,
    answer_text,
    assert_reachable,
    build_sequence,
)
from schemas.training import TrainClue, TrainEvidence, TrainExample

NoRelevant = Literal["drop", "all", "empty"]


@dataclass(frozen=True)
class TrainsetConfig:
    """What a target is made of; the build_trainset stage fills it from params.yaml."""

    k_aux: int = 8
    top_docs: int = 20
    k_evidence: int = 5
    max_candidates: int = 12
    evidence_min_tokens: int = 64
    evidence_max_tokens: int = 128
    clues_from_question: int = 2
    clues_from_evidence: int = 1
    clue_max_words: int = 3
    clue_min_tokens: int = 2
    clue_max_tokens: int = 7
    clue_max_hits: int = 1000
    clue_may_contain_answer: bool = False
    no_relevant: NoRelevant = "drop"
    keep_fraction: float = 0.1
    gamma: float = 2.0
    max_tokens: int = 512

    def limits(self) -> Limits:
        """The decoder's rules as this config sets them (defaults mirror `decode:`)."""
        return Limits(
            max_clues=self.clues_from_question + self.clues_from_evidence,
            clue_min_tokens=self.clue_min_tokens,
            clue_max_tokens=self.clue_max_tokens,
            max_evidences=self.k_evidence,
            evidence_min_tokens=self.evidence_min_tokens,
            evidence_max_tokens=self.evidence_max_tokens,
        )


class EmbeddingCache:
    """Bi-encoder sentence vectors cached by span: the same popular documents come back
    for many questions, and embedding is most of the stage's time. Scorers without an
    `embed` method (cross-encoders) are called directly."""

    def __init__(self, scorer: Any) -> None:
        self.scorer = scorer
        self._vectors: dict[tuple[int, int], np.ndarray] = {}

    def score(self, question: str, spans: Sequence[Span]) -> np.ndarray:
        if not spans:
            return np.zeros(0, dtype=np.float32)
        if not hasattr(self.scorer, "embed"):
            return np.asarray(self.scorer.score(question, [s.text for s in spans]), np.float32)
        missing = [s for s in spans if (s.start, s.end) not in self._vectors]
        if missing:
            vectors = self.scorer.embed([s.text for s in missing])
            for span, vector in zip(missing, vectors, strict=True):
                self._vectors[(span.start, span.end)] = vector
        query = self.scorer.embed([question])[0]
        matrix = np.stack([self._vectors[(s.start, s.end)] for s in spans])
        return (matrix @ query).astype(np.float32)


class TrainsetBuilder:
    """Turns (question, SPLADE result) into a TrainExample, or a reason for dropping it."""

    def __init__(
        self,
        config: TrainsetConfig,
        index: Any,
        tokenizer: Any,
        special: Special,
        scorer: Any,
        prompt_ids: Any,
    ) -> None:
        self.config = config
        self.index = index
        self.tokenizer = tokenizer
        self.special = special
        self.scores = EmbeddingCache(scorer)
        self.prompt_ids = prompt_ids
        self.windows = WindowStore(
            index, tokenizer, config.evidence_min_tokens, config.evidence_max_tokens
        )
        self.clues = ClueFinder(
            index,
            tokenizer,
            config.clue_max_words,
            config.clue_min_tokens,
            config.clue_max_tokens,
            config.clue_max_hits,
            forbidden_ids=special.ids,
        )
        self.answer_prefix = tokenizer.encode(ANSWER_PREFIX, add_special_tokens=False)

    def rank(
        self,
        question: str,
        terms: Sequence[str],
        docs: Sequence[int],
        term_weights: Sequence[float] | None = None,
    ) -> tuple[list[Span], list[float]]:
        """The top k_e non-overlapping candidate windows and their scores, best first."""
        c = self.config
        top, k = docs[: c.top_docs], c.k_aux
        weights = list(term_weights)[:k] if term_weights is not None else None
        spans = candidate_windows(self.windows, top, terms[:k], c.max_candidates, weights)
        scores = self.scores.score(question, spans)
        order = top_disjoint(spans, scores, c.k_evidence)
        return [spans[i] for i in order], [float(scores[i]) for i in order]

    def build(
        self,
        example_id: str,
        dataset: str,
        question: str,
        answers: Sequence[str],
        terms: Sequence[str],
        docs: Sequence[int],
        term_weights: Sequence[float] | None = None,
    ) -> tuple[TrainExample | None, str]:
        """(example, "kept") or (None, reason), reason one of no_candidates,
        no_relevant, no_clues, too_long."""
        c = self.config
        ranked, scores = self.rank(question, terms, docs, term_weights)
        if not ranked:
            return None, "no_candidates"
        hits = [matching_answer(span.text, answers) for span in ranked]
        first = next((i for i, hit in enumerate(hits) if hit is not None), None)
        if first is None:
            if c.no_relevant == "drop":
                return None, "no_relevant"
            keep = len(ranked) if c.no_relevant == "all" else 0
            answer = answers[0]
        else:
            keep = first + 1
            answer = hits[first] or answers[0]
        evidences = ranked[:keep]
        clues = self.pick_clues(question, answers, evidences[-1] if first is not None else None)
        if not clues:
            return None, "no_clues"
        evidence_ids = [self.windows.token_ids(span) for span in evidences]
        prompt = self.prompt_ids(question)
        answer_ids = self.tokenizer.encode(answer_text(answer), add_special_tokens=False)
        sequence = build_sequence(
            prompt,
            [list(clue.token_ids) for clue, _ in clues],
            evidence_ids,
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
            [span.doc for span in evidences],
            self.index,
            self.special,
            c.limits(),
        )
        example = TrainExample(
            id=example_id,
            dataset=dataset,
            question=question,
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
                for span, score, hit in zip(evidences, scores, hits, strict=False)
            ],
            input_ids=sequence.input_ids,
            roles=sequence.roles,
            weights=weights_from_roles(sequence.roles, c.gamma),
            prompt_length=len(prompt),
        )
        return example, "kept"

    def pick_clues(
        self, question: str, answers: Sequence[str], relevant: Span | None
    ) -> list[tuple[Clue, str]]:
        """(clue, source) pairs: question clues first (what the model can see), then
        evidence clues repeating neither a question clue nor, unless allowed, an answer."""
        c = self.config
        from_question = self.clues.pick(question, c.clues_from_question, recase=True)
        chosen = [(clue, "question") for clue in from_question]
        if relevant is None or c.clues_from_evidence <= 0:
            return chosen
        exclude = [normalize_answer(clue.text) for clue in from_question]
        if not c.clue_may_contain_answer:
            exclude += [normalize_answer(a) for a in answers]
        from_evidence = self.clues.pick(
            relevant.text, c.clues_from_evidence, recase=False, exclude=exclude, names_only=True
        )
        return chosen + [(clue, "evidence") for clue in from_evidence]
