"""Scores read where the decoder reads them: the split-off LM head and the batched
device pick choose what full-vocabulary logits and constraints.pick chose."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

from retrollm.decoding.constraints import Allowed, pick
from retrollm.decoding.forward import ModelForward
from retrollm.decoding.scores import pick_on_device
from tests.decoding_support import Setting, fixture_questions, one_torch_thread


@pytest.fixture(scope="module")
def setting(tiny_model_and_tokenizer: tuple[Any, Any]) -> Iterator[Setting]:
    with one_torch_thread():
        yield Setting.of(tiny_model_and_tokenizer)


def _rules(rng: np.random.Generator, vocab: int) -> list[Allowed]:
    """Every kind of rule the decoder makes: few ids with and without bonus (some tied),
    ids out of order (stop tokens appended), none (banned ids only)."""
    few = np.sort(rng.choice(vocab, size=5, replace=False))
    return [
        Allowed(few),
        Allowed(few, bonus=rng.choice([0.0, 10.0, 20.0], size=5)),
        Allowed(np.concatenate([few, [vocab - 1, 3]]), bonus=np.full(7, 5.0)),
        Allowed.only(int(few[2])),
        Allowed(None, banned=np.array([0, 1, 2], dtype=np.int64)),
        Allowed(None),
    ]


def _logits(rng: np.random.Generator, rows: int, vocab: int) -> np.ndarray:
    logits = rng.normal(size=(rows, vocab)).astype(np.float32)
    logits[:, ::7] = logits[:, :1]  # exact ties: the earliest allowed id must win
    return logits


def _check_device_pick(device: str) -> None:
    rng = np.random.default_rng(0)
    vocab = 300
    for _ in range(20):
        rules = _rules(rng, vocab)
        logits = _logits(rng, len(rules), vocab)
        expected = [pick(logits[k], rule) for k, rule in enumerate(rules)]
        tensor = torch.from_numpy(logits).to(device)
        assert pick_on_device(tensor, rules) == expected


def test_device_pick_equals_host_pick_on_cpu_tensors() -> None:
    _check_device_pick("cpu")


def test_device_pick_refuses_an_empty_rule() -> None:
    with pytest.raises(ValueError, match="no token"):
        pick_on_device(torch.zeros(1, 10), [Allowed(np.zeros(0, dtype=np.int64))])


@pytest.mark.parametrize("strategy", ["retrollm", "naive-constrained", "unconstrained"])
def test_split_head_decodes_what_full_logits_decode(setting: Setting, strategy: str) -> None:
    """The path before the head was split off (split_head False) and the split path give
    the same tokens, with and without jump-forward."""
    questions = fixture_questions()[:6]
    for jump in (False, True):
        runs = {}
        for split in (False, True):
            decoder = setting.decoder(strategy=strategy, jump_forward=jump, split_head=split)
            assert decoder.decoder.forward.split is split
            runs[split] = [h.generated for h in decoder.hypotheses(questions)]
        assert runs[True] == runs[False]


def test_split_head_counts_head_time_as_forward_time(setting: Setting) -> None:
    decoder = setting.decoder(split_head=True)
    hyps = decoder.hypotheses(fixture_questions()[:2])
    assert decoder.decoder.forward.head.seconds > 0
    for hyp in hyps:
        phases = sum(hyp.timings.get(k, 0.0) for k in ("prefill", "clue", "evidence", "answer"))
        assert 0 < hyp.timings["forward"] <= phases + hyp.timings.get("retrieval", 0.0)


class _Scaled(torch.nn.Module):
    """A causal LM whose logits are more than head(body(x)), like soft-capped models."""

    def __init__(self, inner: Any) -> None:
        super().__init__()
        self.inner, self.base_model = inner, inner.base_model

    def get_output_embeddings(self) -> torch.nn.Module:
        return self.inner.get_output_embeddings()

    def forward(self, **kwargs: Any) -> Any:
        out = self.inner(**kwargs)
        out.logits = 30.0 * torch.tanh(out.logits / 30.0) + 1.0
        return out


def test_a_head_that_is_not_linear_is_not_split(tiny_model_and_tokenizer: tuple[Any, Any]) -> None:
    model, _ = tiny_model_and_tokenizer
    assert ModelForward(model).split
    assert not ModelForward(_Scaled(model)).split


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@CUDA
def test_device_pick_on_cuda() -> None:
    _check_device_pick("cuda")


@CUDA
def test_decoder_on_cuda_decodes_what_the_cpu_decodes(tiny_model_dir: Any) -> None:
    """The whole decoder on the GPU: the model, cache and masks there, the rules on the
    host; in fp32 the tiny model's tokens equal the CPU run's."""
    from retrollm.models import load_causal_lm

    questions = fixture_questions()[:6]
    runs = {}
    for device in ("cpu", "cuda"):
        model, tokenizer = load_causal_lm(tiny_model_dir, "float32", device=device)
        setting = Setting.of((model, tokenizer))
        decoder = setting.decoder(device=device)
        assert decoder.decoder.forward.device.type == device
        runs[device] = [h.generated for h in decoder.hypotheses(questions)]
    assert runs["cuda"] == runs["cpu"]
