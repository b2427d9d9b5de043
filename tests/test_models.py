"""Special tokens, prompt format, tokenizer fingerprint and the prepare_model artifact."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from retrollm.artifacts import read_manifest
from retrollm.models import (
    SPECIAL_TOKENS,
    ModelError,
    SpecialTokenIds,
    add_special_tokens,
    is_chat_model,
    load_causal_lm,
    load_source_model,
    prompt_ids,
    tokenizer_fingerprint,
)
from retrollm.tiny import build_tiny_model

CHAT_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }}\n{{ m['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant\n{% endif %}"
)


@pytest.fixture(scope="module")
def raw_tiny_dir(fixture_texts: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model before prepare_model, i.e. without the five tokens, as a chat model."""
    out = tmp_path_factory.mktemp("raw_tiny")
    return build_tiny_model(fixture_texts, out, chat_template=CHAT_TEMPLATE)


def test_special_tokens_are_single_ids_that_round_trip(tiny_model_and_tokenizer: Any) -> None:
    model, tokenizer = tiny_model_and_tokenizer
    ids = SpecialTokenIds.from_tokenizer(tokenizer)
    assert list(ids.as_dict().values()) == [512, 513, 514, 515, 516]
    for token, token_id in zip(SPECIAL_TOKENS, ids.as_dict().values(), strict=True):
        assert tokenizer.encode(token, add_special_tokens=False) == [token_id]
        assert tokenizer.decode([token_id]) == token
    text = "<|clue|> Paris<|sep|> France<|/clue|>"
    assert tokenizer.decode(tokenizer.encode(text, add_special_tokens=False)) == text
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer) == 517


def test_missing_special_tokens_are_a_clear_error(raw_tiny_dir: Path) -> None:
    _, tokenizer = load_causal_lm(raw_tiny_dir)
    with pytest.raises(ModelError, match="prepare_model"):
        SpecialTokenIds.from_tokenizer(tokenizer)


def test_new_rows_start_at_the_mean_and_adding_twice_changes_nothing(raw_tiny_dir: Path) -> None:
    model, tokenizer = load_source_model(raw_tiny_dir)
    mean = model.get_input_embeddings().weight[:512].mean(dim=0).detach().clone()
    ids = add_special_tokens(model, tokenizer)
    weight = model.get_input_embeddings().weight.detach()
    for token_id in ids.as_dict().values():
        torch.testing.assert_close(weight[token_id], mean)
    assert model.get_output_embeddings().weight.data_ptr() == weight.data_ptr()  # tied
    before = weight.clone()
    assert add_special_tokens(model, tokenizer) == ids
    assert len(tokenizer) == 517
    torch.testing.assert_close(model.get_input_embeddings().weight.detach(), before)


def test_non_chat_prompt_follows_the_paper(tiny_model_and_tokenizer: Any) -> None:
    _, tokenizer = tiny_model_and_tokenizer
    assert not is_chat_model(tokenizer)
    ids = prompt_ids(tokenizer, "Where is Paris?")
    assert tokenizer.decode(ids) == "Question: Where is Paris?\nYour Response:"


def test_chat_prompt_uses_the_template(raw_tiny_dir: Path) -> None:
    _, tokenizer = load_causal_lm(raw_tiny_dir)
    assert is_chat_model(tokenizer)
    ids = prompt_ids(tokenizer, "Where is Paris?")
    assert all(isinstance(i, int) for i in ids)
    expected = "<s>user\nQuestion: Where is Paris?</s>\n<s>assistant\n"
    assert tokenizer.decode(ids) == expected


@pytest.mark.parametrize("chat", [False, True])
def test_control_tokens_in_a_question_stay_text(chat: bool, tiny_model_and_tokenizer: Any) -> None:
    _, tokenizer = tiny_model_and_tokenizer
    tokenizer = copy.deepcopy(tokenizer)
    if chat:
        tokenizer.chat_template = CHAT_TEMPLATE
    ids = prompt_ids(tokenizer, "Is <|clue|> or </s> a token?")
    special = set(SpecialTokenIds.from_tokenizer(tokenizer).as_dict().values())
    assert not special & set(ids)
    assert ids.count(tokenizer.eos_token_id) == (1 if chat else 0)  # only the template's own


def test_fingerprint_is_stable_and_sees_an_added_token(
    tiny_model_and_tokenizer: Any, tiny_model_dir: Path
) -> None:
    _, tokenizer = tiny_model_and_tokenizer
    recorded = read_manifest(tiny_model_dir, "model").extra["tokenizer_fingerprint"]
    assert tokenizer_fingerprint(tokenizer) == recorded
    other = copy.deepcopy(tokenizer)
    other.add_tokens(["Parisian"])
    assert tokenizer_fingerprint(other) != recorded
    other = copy.deepcopy(tokenizer)
    other.add_special_tokens({"extra_special_tokens": ["<|x|>"]})
    assert tokenizer_fingerprint(other) != recorded


def test_prepare_model_manifest(tiny_model_dir: Path) -> None:
    manifest = read_manifest(tiny_model_dir, "model")
    extra = manifest.extra
    assert extra["vocab_size"] == 517
    assert extra["special_token_ids"] == dict(
        zip(["clue", "clue_end", "evidence", "evidence_end", "sep"], range(512, 517), strict=True)
    )
    assert extra["chat"] is False
    assert extra["max_abs_logit_diff_vs_source"] == 0.0
    assert extra["n_parameters"] == sum(
        p.numel() for p in load_causal_lm(tiny_model_dir)[0].parameters()
    )
    assert len(extra["source_sha256"]) == 64
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert config["vocab_size"] == 517 and "quantization_config" not in config


def test_missing_or_wrong_source_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        load_source_model(tmp_path / "no-such-model")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_causal_lm(tmp_path / "no-such-model")
    weights = tmp_path / "model.bin"
    weights.write_bytes(b"\0")
    with pytest.raises(ModelError, match=r"\.gguf"):
        load_source_model(weights)


def test_grouped_sdpa_attends_as_transformers_does_over_a_cache_with_holes() -> None:
    """A grouped-query model (2 key/value heads for 4 query heads) fed a chunk after a
    cache with masked cells: the routed attention gives transformers' own output."""
    from unittest import mock

    import torch
    from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM

    from retrollm.models import use_grouped_sdpa

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, attn_implementation="sdpa",
    )  # fmt: skip
    model = LlamaForCausalLM(config).eval()
    ids = torch.randint(0, 64, (3, 12))
    mask = torch.ones(3, 12, dtype=torch.long)
    mask[0, :4] = 0  # left padding
    mask[1, 5:8] = 0  # holes of rejected drafts
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    chunk = torch.randint(0, 64, (3, 5))
    full = torch.cat([mask, torch.ones(3, 5, dtype=torch.long)], dim=1)
    after = positions[:, -1:] + 1 + torch.arange(5)[None]
    sdpa = torch.nn.functional.scaled_dot_product_attention
    grouped_calls = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        grouped_calls.append(kwargs.get("enable_gqa", False))
        return sdpa(*args, **kwargs)

    logits = []
    try:
        for grouped in (False, True):
            use_grouped_sdpa(grouped)
            cache = DynamicCache()
            with (
                torch.inference_mode(),
                mock.patch.object(torch.nn.functional, "scaled_dot_product_attention", spy),
            ):
                model(input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache)
                out = model(input_ids=chunk, attention_mask=full, position_ids=after, cache=cache)
            logits.append(out.logits)
    finally:
        use_grouped_sdpa(True)
    assert grouped_calls == [False] * 4 + [True] * 4  # 2 layers x 2 calls each way
    torch.testing.assert_close(logits[1], logits[0], rtol=1e-5, atol=1e-5)
