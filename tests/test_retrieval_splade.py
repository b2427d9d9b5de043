"""SPLADE encoder math, expansion-term filtering and the inverted document index."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest

from retrollm.retrieval.splade import SparseDocIndex, SparseRows, SparseVector, SpladeEncoder
from tests.retrieval_tiny import tiny_splade


@pytest.fixture(scope="module")
def encoder(fixture_texts: list[str], tmp_path_factory: pytest.TempPathFactory) -> SpladeEncoder:
    import torch

    torch.set_num_threads(2)
    folder = tiny_splade(tmp_path_factory.mktemp("splade") / "model", fixture_texts)
    return SpladeEncoder(folder, max_length=64)


def test_weights_equal_a_direct_splade_computation(
    encoder: SpladeEncoder, fixture_texts: list[str]
) -> None:
    import torch

    texts = [fixture_texts[0], "Who discovered gravitation?", fixture_texts[5][:80]]
    batch = encoder.tokenizer(
        texts, padding=True, truncation=True, max_length=64, return_tensors="pt"
    )
    with torch.no_grad():
        logits = encoder.model(**batch).logits
    # SPLADE as its authors write it: log(1 + relu(logits)) masked, then max over positions.
    direct = (torch.log1p(torch.relu(logits)) * batch["attention_mask"].unsqueeze(-1)).amax(1)
    ours = encoder.encode_dense(texts)
    assert torch.allclose(ours, direct, atol=1e-5)
    assert (direct > 0).sum() > 10  # the check is not vacuous

    rows = encoder.encode(texts, batch_size=2)  # length-sorted batches, original order back
    assert rows.indices.dtype == np.int32 and rows.values.dtype == np.float32
    assert np.all(rows.values > 0)
    for i in range(len(texts)):
        dense = np.zeros(encoder.vocab_size, dtype=np.float32)
        dense[rows.row(i).indices] = rows.row(i).values
        np.testing.assert_allclose(dense, direct[i].numpy(), atol=1e-5)


def test_top_terms_skip_word_pieces_special_and_reserved_tokens(encoder: SpladeEncoder) -> None:
    vocab = encoder.tokenizer.get_vocab()
    heavy = ["##s", "[CLS]", "[unused0]", "?", "[PAD]"]
    words = ["paris", "tower", "moon"]
    ids = np.array([vocab[t] for t in heavy + words], dtype=np.int32)
    values = np.array([9, 8, 7, 6, 5, 1.0, 2.0, 2.0], dtype=np.float32)
    order = np.argsort(ids)
    terms = encoder.top_terms_of(SparseVector(ids[order], values[order]), k=8)
    # Equal weights: lower vocabulary id first, so the order is reproducible.
    tied = sorted(["tower", "moon"], key=vocab.__getitem__)
    assert [t for t, _ in terms] == [*tied, "paris"]
    assert terms[0][1] == pytest.approx(2.0)

    question_terms = encoder.top_terms("Who discovered the laws of gravitation?", k=8)
    assert 0 < len(question_terms) <= 8
    assert all(not t.startswith("##") and not t.startswith("[") for t, _ in question_terms)
    weights = [w for _, w in question_terms]
    assert weights == sorted(weights, reverse=True)


def test_loads_offline_without_touching_the_network(
    encoder: SpladeEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    again = SpladeEncoder(encoder.model_dir, max_length=64)
    assert again.vocab_size == encoder.vocab_size


def test_missing_model_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a Hugging Face model folder"):
        SpladeEncoder(tmp_path / "nowhere")


def _random_rows(rng: np.random.Generator, n: int, cols: int, density: float) -> np.ndarray:
    dense = rng.random((n, cols)).astype(np.float32)
    dense[rng.random((n, cols)) > density] = 0
    dense[3] = 0  # an empty document
    dense[5] = dense[6]  # two identical documents: a tie
    return dense


def test_sparse_search_equals_dense_brute_force(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    dense = _random_rows(rng, 300, 50, 0.1)
    index = SparseDocIndex.build(SparseRows.from_dense(dense))
    assert index.nnz == np.count_nonzero(dense)
    index.save(tmp_path / "docs")
    loaded = SparseDocIndex.load(tmp_path / "docs")
    for trial in range(20):
        query = rng.random(50).astype(np.float32) * (rng.random(50) < 0.2)
        if trial == 0:
            query = dense[5].copy()
        scores = dense @ query
        expected = sorted(np.flatnonzero(scores > 0), key=lambda d: (-scores[d], d))[:10]
        vector = SparseRows.from_dense(query[None, :]).row(0)
        for idx in (index, loaded):
            docs, got = idx.search(vector, 10)
            assert docs.tolist() == [int(d) for d in expected]
            np.testing.assert_allclose(got, scores[expected], rtol=1e-5)
    docs, _ = index.search(SparseRows.from_dense(dense[5][None, :]).row(0), 2)
    assert docs.tolist() == [5, 6]  # the tie goes to the lower index


def test_search_ignores_terms_outside_the_vocabulary_and_empty_queries() -> None:
    index = SparseDocIndex.build(SparseRows.from_dense(np.eye(4, dtype=np.float32)))
    vector = SparseVector(np.array([2, 99], dtype=np.int32), np.array([1, 5], dtype=np.float32))
    assert index.search(vector, 3)[0].tolist() == [2]
    empty = SparseVector(np.zeros(0, np.int32), np.zeros(0, np.float32))
    assert index.search(empty, 3)[0].size == 0


def test_load_refuses_a_truncated_copy(tmp_path: Path) -> None:
    index = SparseDocIndex.build(SparseRows.from_dense(np.eye(4, dtype=np.float32)))
    index.save(tmp_path)
    np.save(tmp_path / "doc_ids.npy", np.zeros(2, dtype=np.int32))
    with pytest.raises(ValueError, match="do not match"):
        SparseDocIndex.load(tmp_path)
