"""The generation loop against transformers' own greedy generate, and format checks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from retrollm.decoding.loop import greedy_loop
from retrollm.decoding.trace import well_formed
from retrollm.models import SpecialTokenIds
from tests.decoding_support import one_torch_thread


class Greedy:
    """Plain argmax for n steps, optionally with tokens forced at the start."""

    def __init__(self, rows: int, steps: int, forced: Sequence[int] = ()) -> None:
        self.out: list[list[int]] = [[] for _ in range(rows)]
        self.steps, self.forced, self.passes = steps, list(forced), [0] * rows

    def step(self, rows: Sequence[int], logits: np.ndarray) -> list[int]:
        tokens = []
        for i, row in enumerate(rows):
            at = len(self.out[row])
            token = self.forced[at] if at < len(self.forced) else int(np.argmax(logits[i]))
            self.out[row].append(token)
            tokens.append(token)
        return tokens

    def finished(self, row: int) -> bool:
        return len(self.out[row]) >= self.steps - row  # rows finish at different steps

    def record_forward(self, rows: Sequence[int], seconds: float) -> None:
        for row in rows:
            self.passes[row] += 1


def test_loop_matches_generate_with_left_padding_and_dropped_rows(
    tiny_model_and_tokenizer: tuple[Any, Any],
) -> None:
    model, tokenizer = tiny_model_and_tokenizer
    prompts = [tokenizer.encode(t) for t in ("Paris is", "The Moon orbits the", "Tokyo")]
    with one_torch_thread():
        controller = Greedy(len(prompts), steps=12)
        greedy_loop(model, prompts, tokenizer.pad_token_id, controller, max_steps=50)
        for row, prompt in enumerate(prompts):
            expected = model.generate(
                torch.tensor([prompt]), max_new_tokens=12 - row, do_sample=False,
                attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
            )[0, len(prompt):].tolist()  # fmt: skip
            assert controller.out[row] == expected
            assert controller.passes[row] == 12 - row  # one forward pass per token


def test_forced_tokens_are_fed_as_normal_steps(tiny_model_and_tokenizer: tuple[Any, Any]) -> None:
    model, tokenizer = tiny_model_and_tokenizer
    special = SpecialTokenIds.from_tokenizer(tokenizer)
    prompt = tokenizer.encode("Question: Paris?")
    with one_torch_thread():
        forced = Greedy(1, steps=6, forced=[special.clue, special.sep])
        greedy_loop(model, [prompt], tokenizer.pad_token_id, forced, max_steps=10)
        direct = Greedy(1, steps=4)
        greedy_loop(model, [[*prompt, special.clue, special.sep]], 0, direct, max_steps=10)
    assert forced.out[0][:2] == [special.clue, special.sep]
    assert forced.out[0][2:] == direct.out[0]


def test_well_formed_grammar(tiny_model_and_tokenizer: tuple[Any, Any]) -> None:
    s = SpecialTokenIds.from_tokenizer(tiny_model_and_tokenizer[1])
    prefix = [7, 8]
    good = [s.clue, 1, s.sep, 2, s.clue_end, s.evidence, 3, s.sep, 4, s.evidence_end, 7, 8, 9]
    assert well_formed(good, s, prefix)
    assert not well_formed(good[:-3], s, prefix)  # no answer prefix
    assert not well_formed([s.clue, 1, s.evidence, 3, s.evidence_end, 7, 8], s, prefix)
    assert not well_formed([*good, s.sep], s, prefix)  # a RetroLLM token inside the answer
    empty = [s.clue, s.clue_end, s.evidence, s.evidence_end, 7, 8]
    assert well_formed(empty, s, prefix)
