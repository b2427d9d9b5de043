"""tokenize_corpus: offsets, dtype, lossless round trip, refusal of foreign inputs."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from retrollm.artifacts import ArtifactError, read_manifest
from retrollm.corpus import load_corpus
from retrollm.tokenization import load_tokens, smallest_uint, tokenize_corpus
from stages.common import Paths
from stages.prepare_corpus import PrepareCorpusParams
from stages.prepare_corpus import main as prepare_corpus
from stages.tokenize_corpus import TokenizeCorpusParams
from stages.tokenize_corpus import main as tokenize_stage


@pytest.fixture(scope="module")
def corpus_dir(fixture_corpus_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("corpus") / "corpus"
    prepare_corpus(
        PrepareCorpusParams(source=fixture_corpus_path, format="flashrag"), Paths(corpus=out)
    )
    return out


@pytest.fixture(scope="module")
def tokens_dir(
    corpus_dir: Path, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("tokens") / "tokens"
    tokenize_stage(
        TokenizeCorpusParams(batch_size=4),
        Paths(corpus=corpus_dir, model=tiny_model_dir, tokens=out),
    )
    return out


def test_smallest_uint() -> None:
    assert smallest_uint(256) == np.uint8
    assert smallest_uint(257) == np.uint16
    assert smallest_uint(49157) == np.uint16
    assert smallest_uint(65536) == np.uint16
    assert smallest_uint(65537) == np.uint32


def test_stage_output_is_consistent_and_lossless(
    tokens_dir: Path, corpus_dir: Path, tiny_model_and_tokenizer: Any, tiny_model_dir: Path
) -> None:
    _, tokenizer = tiny_model_and_tokenizer
    tokens, offsets = load_tokens(tokens_dir)
    documents = load_corpus(corpus_dir)
    assert tokens.dtype == np.uint16 and offsets.dtype == np.int64
    assert offsets.shape == (len(documents) + 1,) and offsets[0] == 0
    assert offsets[-1] == tokens.shape[0] and np.all(np.diff(offsets) > 0)
    assert int(tokens.max()) < 512  # no special token ever comes from corpus text
    for i, document in enumerate(documents):
        ids = tokens[offsets[i] : offsets[i + 1]].tolist()
        assert tokenizer.decode(ids) == document.contents  # byte-level BPE is lossless
    manifest = read_manifest(tokens_dir, "tokens")
    assert manifest.counts == {"documents": 21, "tokens": int(offsets[-1]), "empty_documents": 0}
    model_extra = read_manifest(tiny_model_dir, "model").extra
    assert manifest.extra == {
        "tokenizer_fingerprint": model_extra["tokenizer_fingerprint"],
        "dtype": "uint16",
        "vocab_size": 517,
    }
    assert set(manifest.inputs) == {"corpus", "model"}


def test_batch_size_does_not_change_ids(
    tiny_model_and_tokenizer: Any, fixture_texts: list[str], tmp_path: Path
) -> None:
    _, tokenizer = tiny_model_and_tokenizer
    results = []
    for size in (1, 7, 512):
        out = tmp_path / str(size)
        out.mkdir()
        tokenize_corpus(tokenizer, fixture_texts, out, batch_size=size)
        results.append(load_tokens(out, mmap=False))
    for tokens, offsets in results[1:]:
        np.testing.assert_array_equal(tokens, results[0][0])
        np.testing.assert_array_equal(offsets, results[0][1])


def test_empty_documents_keep_their_place(tiny_model_and_tokenizer: Any, tmp_path: Path) -> None:
    _, tokenizer = tiny_model_and_tokenizer
    result = tokenize_corpus(tokenizer, ["Paris", "", "a <|sep|> b", ""], tmp_path)
    tokens, offsets = load_tokens(tmp_path)
    assert (result.documents, result.empty_documents) == (4, 2)
    lengths = np.diff(offsets)
    assert lengths[1] == 0 and lengths[3] == 0 and lengths[0] > 0
    assert int(tokens.max()) < 512  # the literal "<|sep|>" is plain text
    assert tokenizer.decode(tokens[offsets[2] : offsets[3]].tolist()) == "a <|sep|> b"
    tokenize_corpus(tokenizer, [], tmp_path)
    tokens, offsets = load_tokens(tmp_path)
    assert tokens.shape == (0,) and offsets.tolist() == [0]


def test_missing_manifests_are_refused(
    corpus_dir: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    params = TokenizeCorpusParams()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ArtifactError, match=f"{re.escape(str(empty))}.*no manifest"):
        tokenize_stage(params, Paths(corpus=empty, model=tiny_model_dir, tokens=tmp_path / "t"))
    with pytest.raises(ArtifactError, match=f"{re.escape(str(empty))}.*no manifest"):
        tokenize_stage(params, Paths(corpus=corpus_dir, model=empty, tokens=tmp_path / "t"))
    assert not (tmp_path / "t").exists()


def test_foreign_inputs_are_refused(corpus_dir: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    params = TokenizeCorpusParams()
    with pytest.raises(ArtifactError, match="expected a 'corpus' artifact, found 'model'"):
        tokenize_stage(
            params, Paths(corpus=tiny_model_dir, model=tiny_model_dir, tokens=tmp_path / "t")
        )
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    manifest = json.loads((model / "manifest.json").read_text())
    manifest["extra"]["tokenizer_fingerprint"] = "0" * 64
    (model / "manifest.json").write_text(json.dumps(manifest))
    message = f"{re.escape(str(model))}: tokenizer fingerprint .* rerun prepare_model"
    with pytest.raises(ArtifactError, match=message):
        tokenize_stage(params, Paths(corpus=corpus_dir, model=model, tokens=tmp_path / "t"))
    assert not (tmp_path / "t").exists()
