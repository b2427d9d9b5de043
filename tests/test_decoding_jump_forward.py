"""Jump-forward decoding: the same tokens as step-by-step greedy, in fewer forward passes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytest

from retrollm.decoding.loop import chunk_width, greedy_loop
from tests.decoding_support import Setting, fixture_questions, one_torch_thread


@pytest.fixture(scope="module")
def setting(tiny_model_and_tokenizer: tuple[Any, Any]) -> Iterator[Setting]:
    with one_torch_thread():
        yield Setting.of(tiny_model_and_tokenizer)


@pytest.mark.parametrize(
    ("strategy", "batch_size"),
    [("retrollm", 4), ("retrollm", 1), ("retrollm-hard-windows", 4), ("naive-constrained", 4)],
)
def test_jump_forward_output_equals_step_by_step(
    setting: Setting, strategy: str, batch_size: int
) -> None:
    questions = fixture_questions()[:6]
    runs = {}
    for jump in (False, True):
        decoder = setting.decoder(strategy=strategy, batch_size=batch_size, jump_forward=jump)
        hypotheses = decoder.hypotheses(questions)
        runs[jump] = (hypotheses, decoder.decoder.loop_stats)
    (plain, plain_stats), (jumped, jump_stats) = runs[False], runs[True]
    for a, b in zip(plain, jumped, strict=True):
        assert b.generated == a.generated
        assert [(e.doc_index, e.start) for e in b.evidences] == [
            (e.doc_index, e.start) for e in a.evidences
        ]
    accepted = sum(s.accepted_tokens for s in jump_stats)
    assert accepted > 0, "no draft was accepted: the jump path was not exercised"
    assert sum(s.drafted_tokens for s in plain_stats) == 0
    assert all(h.forward_passes == len(h.generated) for h in plain)  # one pass per token
    assert sum(h.forward_passes for h in jumped) < sum(h.forward_passes for h in plain)


class Scripted:
    """Chooses `script[row]` token by token (argmax ignored) and drafts `guess[row]`,
    a wrong guess from position 2 on, so the loop must reject and settle the cache."""

    def __init__(self, script: list[list[int]], guess: list[list[int]]) -> None:
        self.script, self.guess = script, guess
        self.out: list[list[int]] = [[] for _ in script]
        self.logits: list[list[np.ndarray]] = [[] for _ in script]

    def step(self, rows: Sequence[int], logits: np.ndarray) -> list[int]:
        chosen = []
        for i, row in enumerate(rows):
            token = self.script[row][len(self.out[row])]
            self.out[row].append(token)
            self.logits[row].append(logits[i].copy())
            chosen.append(token)
        return chosen

    def finished(self, row: int) -> bool:
        return len(self.out[row]) >= len(self.script[row])

    def draft(self, row: int) -> list[int]:
        at = len(self.out[row])
        return self.guess[row][at : at + 5]

    def record_forward(self, rows: Sequence[int], seconds: float) -> None:
        pass


def test_rejected_drafts_leave_no_trace_in_later_logits(
    tiny_model_and_tokenizer: tuple[Any, Any],
) -> None:
    """Logits after a partly rejected chunk equal those of plain one-token steps: the
    masked cache cells and the reused positions change nothing."""
    model, tokenizer = tiny_model_and_tokenizer
    prompts = [tokenizer.encode(t) for t in ("Paris is", "The Moon orbits the Earth")]
    rng = np.random.default_rng(0)
    script = [rng.integers(3, 400, size=n).tolist() for n in (14, 9)]
    guess = [list(s) for s in script]
    for g in guess:
        for k in range(2, len(g), 3):
            g[k] = (g[k] + 1) % 400  # every third token guessed wrong
    with one_torch_thread():
        plain = Scripted(script, guess)
        greedy_loop(model, prompts, tokenizer.pad_token_id, plain, max_steps=40)
        jumped = Scripted(script, guess)
        stats = greedy_loop(model, prompts, tokenizer.pad_token_id, jumped, 40, 5, 100.0)
    assert jumped.out == plain.out == script
    assert stats.accepted_tokens > 0 and stats.drafted_tokens > stats.accepted_tokens
    assert stats.compactions > 0  # the holes outgrew the live cells and were dropped
    for row in range(len(script)):
        for a, b in zip(plain.logits[row], jumped.logits[row], strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_chunk_width_weighs_padding_against_calls() -> None:
    assert chunk_width([33], call_cost=20) == 33  # one row: its whole draft
    assert chunk_width([33] * 16, call_cost=20) == 33  # every row jumps
    assert chunk_width([33] * 2 + [1] * 14, call_cost=20) == 1  # 2 of 16: not worth it
    assert chunk_width([33] * 12 + [1] * 4, call_cost=20) == 33
    assert chunk_width([5, 9, 33, 1], call_cost=0) == 1  # no call cost, no gain
    # brute force over every width agrees
    lengths = [1, 4, 4, 12, 20, 33, 33, 2]
    rates = {w: sum(min(n, w) for n in lengths) / (20 + 8 * w) for w in range(1, 34)}
    assert chunk_width(lengths, 20) == max(rates, key=rates.get)
