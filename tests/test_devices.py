"""The `device` knob: names resolve (or fail naming the knob) on any machine; where CUDA
exists, every model RetroLLM and the baselines load runs there and agrees with the CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from retrollm.decoding import DecodeConfig
from retrollm.models import ModelError, resolve_device, resolve_dtype

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_device_names_resolve() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    with pytest.raises(ModelError, match="cpu, cuda, cuda:N or auto"):
        resolve_device("gpu")
    with pytest.raises(ValueError):
        DecodeConfig(device="cuda0")
    assert DecodeConfig(device="cuda:1").device == "cuda:1"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_a_cuda_device_without_cuda_fails_naming_the_knob() -> None:
    with pytest.raises(ModelError, match="no CUDA device"):
        resolve_device("cuda")


def test_auto_dtype_follows_the_device() -> None:
    assert resolve_dtype("auto", torch.device("cpu")) == "float32"
    assert resolve_dtype("auto", torch.device("cuda")) == "bfloat16"
    assert resolve_dtype("float16", torch.device("cpu")) == "float16"


@CUDA
def test_lm_loads_on_cuda_in_bfloat16_by_default(tiny_model_dir: Path) -> None:
    from retrollm.models import load_causal_lm

    model, _ = load_causal_lm(tiny_model_dir, "auto", device="cuda")
    weight = next(model.parameters())
    assert weight.device.type == "cuda" and weight.dtype == torch.bfloat16


@CUDA
def test_scorer_and_splade_on_cuda_agree_with_the_cpu(
    fixture_texts: list[str], tmp_path: Path
) -> None:
    from retrollm.retrieval.scorer import BiEncoderScorer
    from retrollm.retrieval.splade import SpladeEncoder
    from tests.retrieval_tiny import tiny_biencoder, tiny_splade

    texts = fixture_texts[:4]
    bi = tiny_biencoder(tmp_path / "bi", fixture_texts)
    scores = [BiEncoderScorer(bi, device=d).score("Who?", texts) for d in ("cpu", "cuda")]
    np.testing.assert_allclose(scores[0], scores[1], atol=1e-4)
    splade = tiny_splade(tmp_path / "splade", fixture_texts)
    dense = [SpladeEncoder(splade, device=d).encode_dense(texts) for d in ("cpu", "cuda")]
    assert torch.allclose(dense[0], dense[1], atol=1e-4)


@CUDA
def test_baseline_generates_on_cuda_what_it_generates_on_the_cpu(tiny_model_dir: Path) -> None:
    from retrollm.baselines import generate_batch
    from retrollm.models import load_causal_lm

    outputs: dict[str, Any] = {}
    for device in ("cpu", "cuda"):
        model, tokenizer = load_causal_lm(tiny_model_dir, "float32", device=device)
        prompts = [tokenizer.encode(t) for t in ("Paris is", "The Moon orbits the Earth")]
        outputs[device] = generate_batch(model, tokenizer, prompts, 8)
    assert outputs["cuda"] == outputs["cpu"]
