"""The step controller: per hypothesis, pick the next token under its phase's rule and
advance its state. `greedy_loop` runs the model; this decides everything else.

Per step and hypothesis the work is one continuation query on the hypothesis's index
state, a numpy bonus over its window hits, and a gather of a few logits. Clue states of
all hypotheses share the corpus index, so they advance in one batched kernel call; the
per-question retrieval (documents, windows) runs once, when a hypothesis closes its clue
block, batched over the hypotheses that close at the same step.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch

from retrollm.decoding.config import DecodeConfig
from retrollm.decoding.constraints import (
    Allowed,
    answer_rule,
    clue_rule,
    drop_ids,
    token_classes,
)
from retrollm.decoding.evidence import EvidenceRules
from retrollm.decoding.forward import ModelForward
from retrollm.decoding.loop import LoopStats, greedy_loop
from retrollm.decoding.scores import StepScores
from retrollm.decoding.state import EvidenceContext, Hypothesis, Phase, Query
from retrollm.decoding.strategies import Strategy
from retrollm.index import TokenIndex
from retrollm.models import SpecialTokenIds

PHASE_KEYS = ("prefill", "clue", "retrieval", "evidence", "answer")


class ContextSource(Protocol):
    """Builds the evidence context (documents, windows, sub-index) when clues end."""

    def build(self, hypotheses: Sequence[Hypothesis]) -> list[EvidenceContext]: ...


class Decoder:
    """Decodes one batch of queries; implements loop.Controller."""

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer,
        special: SpecialTokenIds,
        strategy: Strategy,
        config: DecodeConfig,
        index: TokenIndex | None,
        contexts: ContextSource | None,
    ) -> None:
        if (strategy.constrain_clues or strategy.evidence == "corpus") and index is None:
            raise ValueError(f"strategy {strategy.name!r} needs the corpus index")
        if strategy.retrieve and contexts is None:
            raise ValueError(f"strategy {strategy.name!r} needs a context source (retrieval)")
        self.model, self.tokenizer, self.special = model, tokenizer, special
        self.strategy, self.config, self.index, self.contexts = strategy, config, index, contexts
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.stop_ids = _stop_ids(model, tokenizer)
        self.answer_prefix = tokenizer.encode(config.answer_prefix, add_special_tokens=False)
        specials = np.asarray(list(special.as_dict().values()), dtype=np.int64)
        s = special
        self.clue_banned = np.concatenate([self.stop_ids, [s.clue, s.evidence, s.evidence_end]])
        self.answer_banned = specials
        self.period_ids = np.asarray(
            tokenizer.encode(".", add_special_tokens=False)[-1:], dtype=np.int64
        )
        self.answer_canon = None
        if config.answer_from_evidence and config.answer_match == "classes":
            self.answer_canon = token_classes(
                tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
            )
        closes = None
        if config.stop_at_sentence_end and strategy.evidence == "candidates":
            closes = _closes_sentence(contexts, tokenizer)
        self.evidence = EvidenceRules(strategy, config, special, self.stop_ids, index, closes)
        self._forward: ModelForward | None = None
        self.hyps: list[Hypothesis] = []
        self._leaving: list[Hypothesis] = []
        self.loop_stats: list[LoopStats] = []  # one per decoded batch, for benchmarks

    @property
    def forward(self) -> ModelForward:
        """How the loop runs `self.model` (rebuilt if the model is swapped)."""
        if self._forward is None or self._forward.model is not self.model:
            self._forward = ModelForward(self.model, self.config.split_head)
        return self._forward

    # ------------------------------------------------------------------ driving
    def decode(self, queries: Sequence[Query]) -> list[Hypothesis]:
        """Decode a batch to completion; hypotheses come back in query order."""
        self.hyps = [Hypothesis(query) for query in queries]
        for hyp in self.hyps:
            opening = [self.special.clue]
            if not self.strategy.generate_clues:
                opening.append(self.special.clue_end)
                hyp.note("clue generation off: an empty clue block was forced")
            hyp.force(opening)
        c = self.config
        max_steps = c.budget_tokens + len(self.answer_prefix) + c.max_answer_tokens + 4
        prompts = [h.query.prompt_ids for h in self.hyps]
        jump = c.jump_max_tokens if c.jump_forward else 0
        stats = greedy_loop(
            self.model, prompts, self.pad_id, self, max_steps, jump, c.jump_call_cost,
            self.forward,
        )  # fmt: skip
        self.loop_stats.append(stats)
        for hyp in self.hyps:
            hyp.timings["total"] = sum(hyp.timings.get(k, 0.0) for k in PHASE_KEYS)
        return self.hyps

    def finished(self, row: int) -> bool:
        return self.hyps[row].done

    def draft(self, row: int) -> list[int]:
        """Jump-forward guess: forced text still to come, or the rest of an evidence whose
        prefix occurs once in its constraining index (the loop keeps only what `step`
        then chooses, so a guess never changes the output)."""
        hyp = self.hyps[row]
        if hyp.forced:
            return list(hyp.forced)
        if hyp.phase is Phase.EVIDENCE:
            return self.evidence.draft(hyp, len(hyp.generated))
        return []

    def record_forward(self, rows: Sequence[int], seconds: float, passes: int = 1) -> None:
        """Forward time, shared by the rows it served (passes 0: LM head time of a step,
        part of the forward pass though it runs when the step reads the scores)."""
        share = seconds / max(1, len(rows))
        for row in rows:
            hyp = self.hyps[row]
            hyp.forward_passes += passes
            hyp.add_time("prefill" if not hyp.generated else hyp.phase.label, share)
            hyp.add_time("forward", share)

    def step(self, rows: Sequence[int], logits: StepScores | np.ndarray) -> list[int]:
        """Every row's rule first, one batched pick under them (on the model's device),
        then the state updates; rows never read each other's state within a step."""
        scores = logits if isinstance(logits, StepScores) else StepScores.of_array(logits)
        tokens = [-1] * len(rows)
        spent = [0.0] * len(rows)
        requests: list[tuple[int, Allowed]] = []
        for i, row in enumerate(rows):
            started = time.perf_counter()
            hyp = self.hyps[row]
            if hyp.forced:
                tokens[i] = hyp.forced.popleft()
                hyp.forced_count += 1
            else:
                requests.append((i, self._rule(hyp)))
            spent[i] = time.perf_counter() - started
        if requests:
            head = scores.out.head
            started, head_before = time.perf_counter(), head.seconds if head else 0.0
            chosen = scores.pick(requests)
            head_seconds = head.seconds - head_before if head else 0.0
            share = (time.perf_counter() - started - head_seconds) / len(requests)
            for (i, _), token in zip(requests, chosen, strict=True):
                tokens[i] = token
                spent[i] += share
            if head_seconds:
                self.record_forward([rows[i] for i, _ in requests], head_seconds, passes=0)
        clue_rows: list[Hypothesis] = []
        for i, row in enumerate(rows):
            started = time.perf_counter()
            hyp = self.hyps[row]
            phase = hyp.phase
            if self._apply(hyp, tokens[i]):
                clue_rows.append(hyp)
            hyp.add_time(phase.label, spent[i] + time.perf_counter() - started)
        if clue_rows:
            self._extend_clues(clue_rows)
        if self._leaving:
            self._retrieve(self._leaving)
            self._leaving = []
        return tokens

    # -------------------------------------------------------------------- rules
    def _rule(self, hyp: Hypothesis) -> Allowed:
        if hyp.phase is Phase.CLUE:
            continuations = None
            if self.strategy.constrain_clues:
                ids, _ = self.index.continuations(hyp.clue_state)
                continuations = drop_ids(ids, self.stop_ids)
            return clue_rule(
                continuations,
                len(hyp.clue_tokens),
                hyp.clues_closed,
                self.config,
                self.special.sep,
                self.special.clue_end,
                self.clue_banned,
            )
        if hyp.phase is Phase.EVIDENCE:
            return self.evidence.rule(hyp)
        if self.config.answer_from_evidence and hyp.answer_start is not None:
            evidences = [span.tokens for span in hyp.evidences]
            if not any(evidences):
                hyp.note("answer_from_evidence: no evidence written, the answer is free")
            answer = hyp.generated[hyp.answer_start :]
            return answer_rule(
                evidences, answer, self.stop_ids, self.period_ids, self.answer_banned,
                self.answer_canon,
            )  # fmt: skip
        return Allowed(None, banned=self.answer_banned)

    # -------------------------------------------------------------- transitions
    def _apply(self, hyp: Hypothesis, token: int) -> bool:
        """Record the token and move the state machine; True if a clue state must be
        extended by it (done in one batched call for all rows afterwards)."""
        hyp.generated.append(token)
        s = self.special
        if hyp.phase is Phase.CLUE:
            if token == s.clue:
                self._open_clue(hyp)
            elif token in (s.sep, s.clue_end):
                self._close_clue(hyp)
                if token == s.clue_end:
                    self._leaving.append(hyp)
                else:
                    self._open_clue(hyp)
            else:
                hyp.clue_tokens.append(token)
                return self.strategy.constrain_clues
            return False
        if hyp.phase is Phase.EVIDENCE:
            if token == s.evidence_end:
                self.evidence.close(hyp)
                hyp.phase = Phase.ANSWER
                hyp.force(self.answer_prefix)
                hyp.answer_start = len(hyp.generated) + len(self.answer_prefix)
            else:
                self.evidence.feed(hyp, token)
            return False
        if hyp.phase is Phase.ANSWER:
            self._after_answer_token(hyp, token)
        return False

    def _open_clue(self, hyp: Hypothesis) -> None:
        hyp.clue_tokens = []
        hyp.clue_state = self.index.root() if self.strategy.constrain_clues else None

    def _close_clue(self, hyp: Hypothesis) -> None:
        hyp.clues_closed += 1  # repeats count too, so max_clues bounds the clue block
        if hyp.clue_tokens:
            if hyp.clue_tokens not in hyp.clues:
                hyp.clues.append(list(hyp.clue_tokens))
        elif self.strategy.generate_clues:
            hyp.note("an empty clue was closed (no corpus continuation)")
        hyp.clue_tokens = []

    def _extend_clues(self, hyps: list[Hypothesis]) -> None:
        started = time.perf_counter()
        # A list, not a batch object: each index kind batches its own states.
        states = [h.clue_state for h in hyps]
        extended = self.index.extend(states, [h.clue_tokens[-1] for h in hyps])
        for k, hyp in enumerate(hyps):
            hyp.clue_state = extended[k]
        share = (time.perf_counter() - started) / len(hyps)
        for hyp in hyps:
            hyp.add_time("clue", share)

    def _retrieve(self, hyps: list[Hypothesis]) -> None:
        """Per-question work, once per hypothesis, batched over those leaving now."""
        started = time.perf_counter()
        if self.strategy.retrieve:
            contexts = self.contexts.build(hyps)
        else:
            index = self.index if self.strategy.evidence == "corpus" else None
            contexts = [EvidenceContext([], [], [], index, None) for _ in hyps]
        share = (time.perf_counter() - started) / len(hyps)
        for hyp, context in zip(hyps, contexts, strict=True):
            hyp.add_time("retrieval", share)
            hyp.context = context
            hyp.phase = Phase.EVIDENCE
            hyp.force([self.special.evidence])

    def _after_answer_token(self, hyp: Hypothesis, token: int) -> None:
        if hyp.answer_start is None or len(hyp.generated) <= hyp.answer_start:
            return  # still emitting the forced answer prefix
        if token in self.stop_ids:
            hyp.phase = Phase.DONE
        elif len(hyp.generated) - hyp.answer_start >= self.config.max_answer_tokens:
            hyp.phase = Phase.DONE
            hyp.note(f"answer cut at max_answer_tokens={self.config.max_answer_tokens}")
        elif len(hyp.generated) >= self.config.budget_tokens:
            hyp.phase = Phase.DONE
            hyp.note("answer cut by the generation budget")


def _closes_sentence(contexts: ContextSource | None, tokenizer) -> np.ndarray:
    """Which ids end a sentence or line, shared with the retrieval's window anchors."""
    texts = getattr(contexts, "token_texts", None)
    if texts is None:
        from retrollm.retrieval.sentences import TokenTexts

        texts = TokenTexts(tokenizer)
    return texts.closes_sentence


def _stop_ids(model: torch.nn.Module, tokenizer) -> np.ndarray:
    """EOS ids of the tokenizer and the model's generation config (chat models have two)."""
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    config = getattr(model, "generation_config", None)
    eos = getattr(config, "eos_token_id", None) if config is not None else None
    if isinstance(eos, int):
        ids.add(eos)
    elif eos:
        ids.update(int(i) for i in eos)
    return np.asarray(sorted(ids), dtype=np.int64)
