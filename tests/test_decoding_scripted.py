"""The decoder driven by a scripted stand-in LM whose preferences are fixed, so that
behaviour the random model only shows by chance can be asserted exactly."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from retrollm.models import SpecialTokenIds
from tests.decoding_support import Setting, fixture_questions, one_torch_thread


class ScriptedLM(torch.nn.Module):
    """Same logits at every step: `preferences` maps token id -> logit, the rest -inf-ish."""

    def __init__(self, vocab: int, preferences: dict[int, float], eos: int) -> None:
        super().__init__()
        self.row = torch.full((vocab,), -50.0)
        for token, logit in preferences.items():
            self.row[token] = logit
        self.generation_config = SimpleNamespace(eos_token_id=eos)

    def forward(
        self, input_ids: torch.Tensor, logits_to_keep: int = 1, **_: Any
    ) -> SimpleNamespace:
        rows = input_ids.shape[0]
        return SimpleNamespace(logits=self.row.expand(rows, logits_to_keep, -1).clone())


@pytest.fixture(scope="module")
def setting(tiny_model_and_tokenizer: tuple[Any, Any]) -> Iterator[Setting]:
    with one_torch_thread():
        yield Setting.of(tiny_model_and_tokenizer)


def scripted(setting: Setting, preferences: dict[int, float], **overrides: Any) -> Any:
    tokenizer = setting.tokenizer
    model = ScriptedLM(len(tokenizer), preferences, tokenizer.eos_token_id)
    decoder = setting.decoder(**overrides)
    decoder.model = decoder.decoder.model = model
    return decoder


def test_a_repeated_clue_still_counts_toward_max_clues(setting: Setting) -> None:
    s = SpecialTokenIds.from_tokenizer(setting.tokenizer)
    the = setting.tokenizer.encode(" the", add_special_tokens=False)[0]
    # Always " the ..." then <|sep|> as soon as allowed: the same clue over and over.
    decoder = scripted(setting, {s.sep: 10.0, s.clue_end: 9.0, the: 5.0})
    hyp = decoder.hypotheses(fixture_questions()[:1])[0]
    block = hyp.generated[: hyp.generated.index(s.clue_end) + 1]
    assert block.count(s.sep) == decoder.config.max_clues - 1
    assert len(hyp.clues) == 1 and hyp.clues_closed == decoder.config.max_clues


def test_evidence_stops_as_soon_as_allowed_and_eos_ends_the_answer(setting: Setting) -> None:
    s = SpecialTokenIds.from_tokenizer(setting.tokenizer)
    eos = setting.tokenizer.eos_token_id
    prefs = {s.evidence_end: 10.0, s.clue_end: 9.0, eos: 8.0}
    questions = fixture_questions()[:2]
    plain = scripted(setting, prefs, min_evidence_tokens=3, forward_lambda=0.0)
    for p in plain.answer(questions):
        assert p.well_formed and p.answer == ""
        assert [e.end - e.start for e in p.evidences] == [3]  # stops right at the minimum
        assert p.output_text.endswith(setting.tokenizer.eos_token)
    # Eq. 12: lambda * S(w) on in-window continuations outweighs the wish to stop, so the
    # evidence runs on while a kept window still continues it. The script prefers stopping
    # by 60 logits, so lambda must exceed 120 here (minmax S >= 0.5); no sentence-end stop.
    steered = scripted(
        setting, prefs, min_evidence_tokens=3, forward_lambda=150.0, stop_at_sentence_end=False
    )
    assert all(p.evidences[0].end - p.evidences[0].start > 3 for p in steered.answer(questions))
