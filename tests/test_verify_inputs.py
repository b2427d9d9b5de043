"""Inputs are checked before use: every file a stage or the decoder reads must match its
manifest (size first, then sha256), and the decoder's inputs must form one chain by
fingerprint (index made from these tokens, made from this corpus by this tokenizer)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from retrollm.artifacts import (
    ArtifactError,
    UnverifiedInputWarning,
    atomic_dir,
    input_ref,
    read_records,
    write_manifest,
    write_records,
)
from retrollm.chain import check_chain
from retrollm.corpus import DOCUMENTS_FILE
from retrollm.decoding import DecodeConfig
from retrollm.decoding.pipeline import RetroLLM
from retrollm.models import load_tokenizer, tokenizer_fingerprint
from schemas.manifest import Manifest
from schemas.records import CorpusRecord
from stages.build_index import BuildIndexParams
from stages.build_index import main as build_index
from stages.common import Paths
from tests.decoding_support import fixture_corpus, tokens_and_index

UNCONSTRAINED = DecodeConfig(strategy="unconstrained", batch_size=2)


def _corpus(folder: Path, documents: list[CorpusRecord]) -> None:
    with atomic_dir(folder) as out:
        write_records(out / DOCUMENTS_FILE, documents)
        counts = {"documents": len(documents)}
        manifest = Manifest(schema_name="corpus", schema_version=1, stage="test", counts=counts)
        write_manifest(out, manifest)


@pytest.fixture()
def chain(tiny_model_dir: Path, tmp_path: Path) -> Paths:
    """corpus -> tokens -> index of the fixture corpus, made by the stages themselves."""
    paths = Paths(
        assets=tmp_path / "assets", corpus=tmp_path / "corpus", model=tiny_model_dir,
        tokens=tmp_path / "tokens", index=tmp_path / "index", splade=tmp_path / "splade",
    )  # fmt: skip
    _corpus(paths.corpus, fixture_corpus())
    tokens_and_index(paths)
    return paths


def _flip_byte(path: Path) -> None:
    """One flipped byte in the middle: same size, so only hashing can tell."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_flipped_byte_in_the_tokens_is_refused_by_build_index(chain: Paths) -> None:
    _flip_byte(chain.tokens / "tokens.npy")
    with pytest.raises(ArtifactError, match=r"tokens/tokens\.npy: sha256 differs"):
        build_index(BuildIndexParams(), chain)


def test_a_truncated_file_is_refused_by_its_size_before_hashing(
    chain: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    offsets = chain.tokens / "doc_offsets.npy"
    offsets.write_bytes(offsets.read_bytes()[:-8])

    def no_hashing(path: Path) -> str:
        raise AssertionError(f"{path} hashed although its size already differs")

    monkeypatch.setattr("retrollm.artifacts.sha256_file", no_hashing)
    with pytest.raises(ArtifactError, match=r"doc_offsets\.npy: \d+ bytes, .* records \d+"):
        build_index(BuildIndexParams(), chain)


def test_verify_false_checks_sizes_only_and_warns(
    chain: Paths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"artifacts": {"verify": False}}))
    monkeypatch.chdir(tmp_path)
    _flip_byte(chain.tokens / "tokens.npy")
    with pytest.warns(UnverifiedInputWarning, match=r"tokens: 2 input files checked by size"):
        build_index(BuildIndexParams(), chain)
    offsets = chain.tokens / "doc_offsets.npy"
    offsets.write_bytes(offsets.read_bytes()[:-8])
    with pytest.raises(ArtifactError, match=r"doc_offsets\.npy: \d+ bytes"):
        build_index(BuildIndexParams(), chain)


def test_a_flipped_byte_in_an_index_array_is_refused_by_the_decoder(chain: Paths) -> None:
    RetroLLM.from_artifacts(chain, UNCONSTRAINED)  # intact: loads
    _flip_byte(chain.index / "suffix_array.npy")
    with pytest.raises(ArtifactError, match=r"index/suffix_array\.npy: sha256 differs"):
        RetroLLM.from_artifacts(chain, UNCONSTRAINED)


def test_tampered_base_weights_are_refused_by_decoder_and_train(
    chain: Paths, tmp_path: Path
) -> None:
    from stages.train import TrainParams
    from stages.train import main as train

    tampered = tmp_path / "base"
    shutil.copytree(chain.model, tampered)
    _flip_byte(tampered / "model.safetensors")
    paths = chain.model_copy(update={"model": tampered, "trainset": tmp_path / "train"})
    with pytest.raises(ArtifactError, match=r"base/model\.safetensors: sha256 differs"):
        RetroLLM.from_artifacts(paths, UNCONSTRAINED)
    params = TrainParams(cpu=True, threads=1, checkpoint_dir=tmp_path / "ckpt",
                         live_dir=tmp_path / "live")  # fmt: skip
    with pytest.raises(ArtifactError, match=r"base/model\.safetensors: sha256 differs"):
        train(params, paths)


def test_a_tampered_adapter_is_refused_before_it_is_loaded(chain: Paths, tmp_path: Path) -> None:
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").write_bytes(bytes(range(256)) * 8)
    write_manifest(adapter, Manifest(schema_name="adapter", schema_version=1, stage="test"))
    _flip_byte(adapter / "adapter_model.safetensors")
    with pytest.raises(ArtifactError, match=r"adapter/adapter_model\.safetensors: sha256"):
        RetroLLM.from_artifacts(chain, UNCONSTRAINED, adapter=adapter)


def test_documents_in_another_order_are_refused_by_the_decoder(chain: Paths) -> None:
    """Same documents, same count: a count check passes, and evidence would be credited
    to the wrong document. The tokens' record of their corpus does not match."""
    documents = list(read_records(chain.corpus / DOCUMENTS_FILE, CorpusRecord))
    _corpus(chain.corpus, documents[::-1])
    with pytest.raises(ArtifactError, match=r"tokens: made from corpus \w+, but .*corpus holds"):
        RetroLLM.from_artifacts(chain, UNCONSTRAINED)


def test_an_index_of_other_tokens_is_refused(chain: Paths) -> None:
    from stages.tokenize_corpus import TokenizeCorpusParams
    from stages.tokenize_corpus import main as tokenize

    tokenize(TokenizeCorpusParams(batch_size=3), chain)  # new tokens artifact, old index
    with pytest.raises(ArtifactError, match=r"index: made from tokens \w+, but"):
        RetroLLM.from_artifacts(chain, UNCONSTRAINED)


def test_splade_of_another_corpus_is_refused(chain: Paths, tmp_path: Path) -> None:
    other = tmp_path / "other_corpus"
    _corpus(other, fixture_corpus()[:5])
    chain.splade.mkdir()
    inputs = {"corpus": input_ref(other, "corpus")}
    manifest = Manifest(schema_name="splade", schema_version=1, stage="test", inputs=inputs)
    write_manifest(chain.splade, manifest)
    fingerprint = tokenizer_fingerprint(load_tokenizer(chain.model))
    check_chain(chain, fingerprint, splade=False)
    with pytest.raises(ArtifactError, match=r"splade: made from corpus"):
        check_chain(chain, fingerprint, splade=True)
    with pytest.raises(ArtifactError, match=r"tokens: made with tokenizer"):
        check_chain(chain, "another tokenizer", splade=False)
