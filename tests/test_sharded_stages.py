"""The corpus stages shard by shard: prepare_corpus -> tokenize_corpus -> build_index with
`docs_per_shard` give the documents, ids and index answers of the one-shard run; a local
Ray writes the same bytes as in-process jobs; appending documents reuses every shard
that did not change, and a damaged shard is rebuilt, not carried forward."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from retrollm.artifacts import ArtifactError, read_manifest
from retrollm.corpus import load_corpus
from retrollm.fanout import RayParams, run_jobs
from retrollm.index import CorpusIndex, ShardedIndex, load_index
from retrollm.sharding import data_files, listed_shards, shard_content
from retrollm.tokenization import load_doc_offsets, load_tokens
from schemas import Manifest
from stages import build_index, prepare_corpus, tokenize_corpus
from stages.common import Paths

NO_RAY = RayParams(enabled=False)


def _build(
    root: Path, source: Path, model: Path, docs_per_shard: int | None, ray: RayParams = NO_RAY
) -> tuple[Paths, dict[str, dict[str, int]]]:
    """The three corpus stages into root/; returns the paths and each stage's counts."""
    paths = Paths(corpus=root / "corpus", model=model, tokens=root / "tokens", index=root / "index")
    params = prepare_corpus.PrepareCorpusParams(
        source=source, format="flashrag", docs_per_shard=docs_per_shard
    )
    counts = {"corpus": prepare_corpus.main(params, paths)}
    tokenize = tokenize_corpus.TokenizeCorpusParams(batch_size=3)
    counts["tokens"] = tokenize_corpus.main(tokenize, paths, ray)
    counts["index"] = build_index.main(build_index.BuildIndexParams(), paths, ray)
    return paths, counts


def _files(folder: Path) -> dict[str, str]:
    return read_manifest(folder).files


def _ngrams(tokens: np.ndarray, offsets: np.ndarray) -> list[list[int]]:
    """Some 1-, 2- and 3-grams of every document, plus one that occurs nowhere."""
    grams = []
    for doc in range(len(offsets) - 1):
        start, end = int(offsets[doc]), int(offsets[doc + 1])
        for n in (1, 2, 3):
            if end - start >= n:
                grams.append(tokens[start : start + n].tolist())
    return [*grams, [int(tokens.max()) + 1]]


def appended_source(tmp_path: Path, source: Path, extra_documents: int) -> Path:
    lines = source.read_text().splitlines()
    added = [
        json.dumps({"id": f"added-{n}", "contents": f"Added {n}\nAn appended document {n}."})
        for n in range(extra_documents)
    ]
    grown = tmp_path / "grown.jsonl"
    grown.write_text("\n".join([*lines, *added]) + "\n")
    return grown


def test_shards_hold_what_one_shard_holds(
    tmp_path: Path, fixture_corpus_path: Path, tiny_model_dir: Path
) -> None:
    whole, whole_counts = _build(tmp_path / "whole", fixture_corpus_path, tiny_model_dir, None)
    split, split_counts = _build(tmp_path / "split", fixture_corpus_path, tiny_model_dir, 4)

    assert listed_shards(read_manifest(whole.corpus)) is None
    shards = listed_shards(read_manifest(split.corpus))
    assert shards is not None and [s.n_docs for s in shards] == [4, 4, 4, 4, 4, 1]
    assert split_counts["corpus"]["shards"] == 6
    assert load_corpus(split.corpus) == load_corpus(whole.corpus)
    for stage in ("corpus", "tokens", "index"):
        whole_counts[stage].pop("shards", None)
        assert {k: v for k, v in split_counts[stage].items() if not k.startswith("shard")} == (
            whole_counts[stage]
        )

    tokens, offsets = load_tokens(whole.tokens)
    split_tokens, split_offsets = load_tokens(split.tokens)
    np.testing.assert_array_equal(split_tokens, tokens)
    np.testing.assert_array_equal(split_offsets, offsets)
    np.testing.assert_array_equal(load_doc_offsets(split.tokens), offsets)
    assert read_manifest(split.tokens).extra["dtype"] == read_manifest(whole.tokens).extra["dtype"]

    one, sharded = load_index(whole.index), load_index(split.index)
    assert isinstance(one, CorpusIndex) and isinstance(sharded, ShardedIndex)
    assert len(sharded.shards) == 6
    np.testing.assert_array_equal(sharded.doc_offsets, one.doc_offsets)
    for gram in _ngrams(np.asarray(tokens), offsets):
        assert sharded.count(gram) == one.count(gram)
        np.testing.assert_array_equal(sharded.locate(gram), one.locate(gram))
        ids, counts = sharded.next_tokens(gram)
        expected_ids, expected_counts = one.next_tokens(gram)
        np.testing.assert_array_equal(ids, expected_ids)
        np.testing.assert_array_equal(counts, expected_counts)
    restricted, expected = sharded.restrict([0, 5, 20]), one.restrict([0, 5, 20])
    for gram in _ngrams(np.asarray(tokens), offsets)[:20]:
        np.testing.assert_array_equal(restricted.locate(gram), expected.locate(gram))


def test_each_shard_has_its_manifest_and_readers_check_every_shard(
    tmp_path: Path, fixture_corpus_path: Path, tiny_model_dir: Path
) -> None:
    paths, _ = _build(tmp_path, fixture_corpus_path, tiny_model_dir, 8)
    for folder, schema in [(paths.corpus, "corpus"), (paths.tokens, "tokens")]:
        manifest = read_manifest(folder, schema)
        shards = listed_shards(manifest)
        assert shards is not None and len(shards) == 3
        for shard in shards:
            shard_manifest = read_manifest(folder / shard.folder, f"{schema}-shard")
            assert shard_manifest.counts["documents"] == shard.n_docs
    assert data_files(paths.corpus, "corpus", ["documents.msgpack"]) == [
        f"shard-0000{k}/documents.msgpack" for k in range(3)
    ]
    index_shard = read_manifest(paths.index / "shard-00001", "index-shard")
    tokens_shard = read_manifest(paths.tokens / "shard-00001", "tokens-shard")
    # Made from the tokens shard's files as the (verified) tokens manifest records them.
    content = shard_content(read_manifest(paths.tokens), "shard-00001")
    assert index_shard.inputs["tokens"].fingerprint == content
    assert {f"shard-00001/{name}" for name in tokens_shard.files} == {
        name for name in read_manifest(paths.tokens).files if name.startswith("shard-00001/")
    }
    # A flipped byte in one shard's documents is caught by the next stage that reads it.
    documents = paths.corpus / "shard-00002" / "documents.msgpack"
    data = bytearray(documents.read_bytes())
    data[-2] ^= 0xFF
    documents.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"shard-00002/documents\.msgpack: sha256 differs"):
        tokenize_corpus.main(tokenize_corpus.TokenizeCorpusParams(), paths, NO_RAY)


def test_a_local_ray_writes_the_same_bytes(
    tmp_path: Path, fixture_corpus_path: Path, tiny_model_dir: Path
) -> None:
    ray = RayParams(num_cpus=2, object_store_mb=100)
    here, _ = _build(tmp_path / "here", fixture_corpus_path, tiny_model_dir, 5)
    on_ray, _ = _build(tmp_path / "ray", fixture_corpus_path, tiny_model_dir, 5, ray)
    for stage in ("tokens", "index"):
        assert _files(getattr(on_ray, stage)) == _files(getattr(here, stage))
        assert read_manifest(getattr(on_ray, stage)).fingerprint == (
            read_manifest(getattr(here, stage)).fingerprint
        )


def test_appending_documents_rebuilds_only_the_shards_that_changed(
    tmp_path: Path, fixture_corpus_path: Path, tiny_model_dir: Path
) -> None:
    paths, _ = _build(tmp_path / "grow", fixture_corpus_path, tiny_model_dir, 4)
    before = {
        folder: (paths.index / folder / "suffix_array.npy").stat().st_ino
        for folder in ("shard-00000", "shard-00004")
    }
    grown = appended_source(tmp_path, fixture_corpus_path, 6)  # 27 documents: 4,4,4,4,4,4,3
    paths, counts = _build(tmp_path / "grow", grown, tiny_model_dir, 4)
    assert counts["corpus"]["shards"] == 7
    # Shards 0-4 hold the same documents; shard 5 grew from 1 to 4, shard 6 is new.
    assert counts["tokens"]["shards_reused"] == 5 and counts["index"]["shards_reused"] == 5
    for folder, inode in before.items():  # reused as links to the same bytes, not rewritten
        assert (paths.index / folder / "suffix_array.npy").stat().st_ino == inode

    fresh, _ = _build(tmp_path / "fresh", grown, tiny_model_dir, 4)
    for stage in ("corpus", "tokens", "index"):
        assert read_manifest(getattr(paths, stage)).fingerprint == (
            read_manifest(getattr(fresh, stage)).fingerprint
        )


def test_a_damaged_foreign_or_padded_shard_is_rebuilt(
    tmp_path: Path, fixture_corpus_path: Path, tiny_model_dir: Path
) -> None:
    paths, _ = _build(tmp_path / "out", fixture_corpus_path, tiny_model_dir, 4)
    stages = ("tokens", "index")
    fresh = {stage: read_manifest(getattr(paths, stage)).fingerprint for stage in stages}
    tokens_file = paths.tokens / "shard-00001" / "tokens.npy"
    data = bytearray(tokens_file.read_bytes())
    data[-1] ^= 0x01
    tokens_file.unlink()  # a new file: the hard-linked copies of other runs stay intact
    tokens_file.write_bytes(bytes(data))
    shard_manifest = paths.index / "shard-00003" / "manifest.json"
    foreign = Manifest.model_validate_json(shard_manifest.read_text())
    shard_manifest.unlink()  # params edited, fingerprint left: an edited manifest
    shard_manifest.write_text(
        foreign.model_copy(update={"params": {"backend": "pysais"}}).model_dump_json()
    )
    (paths.index / "shard-00004" / "stray.npy").write_bytes(b"not listed")

    tokens_counts = tokenize_corpus.main(tokenize_corpus.TokenizeCorpusParams(batch_size=3), paths)
    index_counts = build_index.main(build_index.BuildIndexParams(), paths)
    assert tokens_counts["shards_reused"] == 5  # all but the damaged one
    # The rebuilt tokens shard holds its old bytes, so its index shard is still reusable;
    # the edited one and the one with a file its manifest does not list are redone.
    assert index_counts["shards_reused"] == 4
    assert not (paths.index / "shard-00004" / "stray.npy").exists()
    assert {stage: read_manifest(getattr(paths, stage)).fingerprint for stage in stages} == fresh


def test_changed_code_rebuilds_every_shard(
    tmp_path: Path, fixture_corpus_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths, _ = _build(tmp_path / "out", fixture_corpus_path, tiny_model_dir, 4)
    monkeypatch.setattr(build_index, "code_fingerprint", lambda sources: "edited index code")
    assert build_index.main(build_index.BuildIndexParams(), paths)["shards_reused"] == 0
    tokens_counts = tokenize_corpus.main(tokenize_corpus.TokenizeCorpusParams(batch_size=3), paths)
    assert tokens_counts["shards_reused"] == 6  # its own code did not change


def test_a_shard_list_that_leaves_the_folder_is_refused(tmp_path: Path) -> None:
    manifest = Manifest(
        schema_name="corpus",
        schema_version=1,
        stage="test",
        extra={"shards": [{"folder": "..", "doc_start": 0, "n_docs": 1}]},
    )
    with pytest.raises(ArtifactError, match=r"manifest\.json: shard folder '\.\.' is not"):
        listed_shards(manifest, tmp_path)
    manifest.extra["shards"] = [{"folder": "shard-00000", "doc_start": 3, "n_docs": 1}]
    with pytest.raises(ArtifactError, match="does not start at document 0"):
        listed_shards(manifest, tmp_path)
    manifest.extra["shards"] = [{"folder": "shard-00000"}]
    with pytest.raises(ArtifactError, match="malformed shard list"):
        listed_shards(manifest, tmp_path)


def _square(x: int, offset: int) -> int:
    return x * x + offset


def test_jobs_run_in_order_with_the_shared_input() -> None:
    calls = [{"x": x} for x in range(5)]
    assert run_jobs(_square, calls, NO_RAY, {"offset": 1}) == [1, 2, 5, 10, 17]
    assert run_jobs(_square, calls[:1], RayParams(), {"offset": 0}) == [0]  # one job: here
