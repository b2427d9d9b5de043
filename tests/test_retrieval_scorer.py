"""Window relevance scorers: the cross-encoder and bi-encoder paths behind one interface."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from retrollm.retrieval.scorer import BiEncoderScorer, CrossEncoderScorer, load_scorer
from tests.retrieval_tiny import tiny_biencoder, tiny_cross_encoder

QUESTION = "Who designed the Eiffel Tower?"


@pytest.fixture(scope="module")
def models(fixture_texts: list[str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import torch

    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("scorers")
    return {
        "cross-encoder": tiny_cross_encoder(root / "ce", fixture_texts),
        "biencoder": tiny_biencoder(root / "bi", fixture_texts),
    }


def test_cross_encoder_returns_the_models_logit_on_truncated_pairs(
    models: dict[str, Path], fixture_texts: list[str]
) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    texts = [fixture_texts[15], fixture_texts[0] * 3, "tower"]  # the second needs truncation
    scorer = load_scorer("cross-encoder", models["cross-encoder"], max_length=128)
    assert isinstance(scorer, CrossEncoderScorer)
    got = scorer.score(QUESTION, texts)

    tokenizer = AutoTokenizer.from_pretrained(models["cross-encoder"])
    model = AutoModelForSequenceClassification.from_pretrained(models["cross-encoder"]).eval()
    batch = tokenizer(
        [QUESTION] * 3, texts, padding=True, truncation=True, max_length=128, return_tensors="pt"
    )
    assert batch["attention_mask"].sum(1).max() == 128
    with torch.no_grad():
        logits = model(**batch).logits.reshape(-1).numpy()
    assert got.dtype == np.float32 and got.shape == (3,)
    np.testing.assert_allclose(got, logits, atol=1e-5)

    sigmoid = load_scorer("cross-encoder", models["cross-encoder"], activation="sigmoid")
    np.testing.assert_allclose(sigmoid.score(QUESTION, texts), 1 / (1 + np.exp(-logits)), atol=1e-5)
    with pytest.raises(ValueError, match="applies to a cross-encoder"):
        load_scorer("biencoder", models["biencoder"], activation="sigmoid")
    with pytest.raises(ValueError, match="activation must be one of"):
        load_scorer("cross-encoder", models["cross-encoder"], activation="tanh")


def test_bi_encoder_returns_cosine_of_normalised_embeddings(
    models: dict[str, Path], fixture_texts: list[str]
) -> None:
    from sentence_transformers import SentenceTransformer

    texts = [fixture_texts[15], fixture_texts[2], QUESTION]
    scorer = load_scorer("biencoder", models["biencoder"], max_length=128)
    assert isinstance(scorer, BiEncoderScorer)
    got = scorer.score(QUESTION, texts)

    model = SentenceTransformer(str(models["biencoder"]), device="cpu")
    model.max_seq_length = 128
    vectors = model.encode([QUESTION, *texts])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    np.testing.assert_allclose(got, vectors[1:] @ vectors[0], atol=1e-5)
    assert got[2] == pytest.approx(1.0, abs=1e-5)  # the question itself


def test_empty_inputs_and_unknown_names(models: dict[str, Path], tmp_path: Path) -> None:
    for kind, path in models.items():
        assert load_scorer(kind, path).score(QUESTION, []).shape == (0,)
    with pytest.raises(ValueError, match="unknown relevance scorer"):
        load_scorer("colbert", models["biencoder"])
    with pytest.raises(FileNotFoundError, match="not found"):
        load_scorer("biencoder", tmp_path / "missing")
    with pytest.raises(ValueError, match="activation"):
        CrossEncoderScorer(models["cross-encoder"], activation="softmax")
