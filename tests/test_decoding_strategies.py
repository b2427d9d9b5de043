"""Strategy registry, ablation switches and the two non-RetroLLM strategies."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from retrollm.decoding import DecodeConfig, get_strategy, strategy_names
from retrollm.decoding.pipeline import RetroLLM
from retrollm.decoding.strategies import resolve_strategy
from tests.decoding_support import (
    Setting,
    fixture_questions,
    one_torch_thread,
)


@pytest.fixture(scope="module")
def setting(tiny_model_and_tokenizer: tuple[Any, Any]) -> Iterator[Setting]:
    with one_torch_thread():
        yield Setting.of(tiny_model_and_tokenizer)


def make(setting: Setting, **overrides: Any) -> RetroLLM:
    return setting.decoder(**overrides)


def test_registry_names_and_unknown_names() -> None:
    assert strategy_names() == [
        "naive-constrained", "retrollm", "retrollm-hard-windows", "unconstrained",
    ]  # fmt: skip
    with pytest.raises(KeyError, match="known: naive-constrained"):
        get_strategy("beam")
    with pytest.raises(ValidationError):
        DecodeConfig(strategy="beam")
    with pytest.raises(ValidationError):
        DecodeConfig(max_clue=3)  # a typo is an error, not a silently ignored knob


def test_ablation_switches_reshape_the_strategy() -> None:
    assert not resolve_strategy(DecodeConfig(clue_generation=False)).generate_clues
    no_windows = resolve_strategy(DecodeConfig(future_windows=False))
    assert no_windows.evidence == "candidates" and not no_windows.windows
    hard = resolve_strategy(DecodeConfig(strategy="retrollm-hard-windows", future_windows=False))
    assert hard.evidence == "candidates"


def test_naive_constrained_evidence_comes_from_anywhere_in_the_corpus(setting: Setting) -> None:
    index = setting.index
    for hyp in make(setting, strategy="naive-constrained").hypotheses(fixture_questions()[:4]):
        pred_clues = hyp.clues
        assert pred_clues == [] and hyp.context.documents == []
        assert hyp.evidences
        for span in hyp.evidences:
            assert index.extract(span.start, span.start + len(span.tokens)).tolist() == span.tokens


def test_unconstrained_keeps_the_format_only(setting: Setting) -> None:
    preds = make(setting, strategy="unconstrained").answer(fixture_questions()[:4])
    for pred in preds:
        assert pred.well_formed and pred.documents == [] and pred.windows == []
        assert all(e.verbatim == (e.doc_index >= 0) for e in pred.evidences)


def test_ablations_run_end_to_end(setting: Setting) -> None:
    questions = fixture_questions()[:2]
    no_expansion = make(setting, clue_expansion=False).answer(questions)
    assert all(p.expansion_terms == [] and p.well_formed for p in no_expansion)
    no_windows = make(setting, future_windows=False).answer(questions)
    assert all(p.windows == [] and p.evidences and p.status == "ok" for p in no_windows)
    no_clues = make(setting, clue_generation=False).answer(questions)
    assert all(p.clues == [] and p.output_text.startswith("<|clue|><|/clue|>") for p in no_clues)


def test_params_yaml_decode_section_is_valid() -> None:
    from pathlib import Path

    from stages.common import load_params

    config = load_params("decode", DecodeConfig, Path(__file__).parents[1] / "params.yaml")
    assert config.strategy in strategy_names()
