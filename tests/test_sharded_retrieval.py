"""The document side of retrieval shard by shard: SPLADE and dense search over shards rank
exactly as one index over the same vectors (ties included); sparse_expand and dense_index
on a sharded corpus write one folder per shard, the same bytes with and without Ray, give
the rankings of the one-shard run, and a grown corpus re-encodes only its new shards."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retrollm.artifacts import ArtifactError, read_manifest, read_records, write_records
from retrollm.artifacts import write_manifest as write_manifest_file
from retrollm.fanout import RayParams
from retrollm.retrieval.dense import DenseRetriever
from retrollm.retrieval.shards import (
    ShardedDenseRetriever,
    ShardedSparseDocIndex,
    load_dense,
    load_doc_index,
)
from retrollm.retrieval.splade import SparseDocIndex, SparseRows, SparseVector
from schemas import Manifest, QARecord
from schemas.retrieval import SparseQuery
from stages import dense_index, prepare_corpus, sparse_expand
from stages.common import DenseParams, Paths
from tests.retrieval_tiny import tiny_biencoder, tiny_splade
from tests.test_sharded_stages import appended_source

FIXTURES = Path(__file__).parent / "fixtures"
NO_RAY = RayParams(enabled=False)


def _cuts(draw: st.DrawFn, n: int) -> list[int]:
    inner = draw(st.lists(st.integers(0, n), max_size=6))
    return [0, *sorted(inner), n]


@st.composite
def sparse_case(draw: st.DrawFn) -> tuple[np.ndarray, list[int], np.ndarray, int]:
    n_docs, n_terms = draw(st.integers(1, 12)), draw(st.integers(1, 6))
    # Small integer weights: many exact ties, which must break the same way.
    dense = np.array(
        draw(st.lists(st.integers(0, 2), min_size=n_docs * n_terms, max_size=n_docs * n_terms)),
        dtype=np.float32,
    ).reshape(n_docs, n_terms)
    query = np.array(draw(st.lists(st.integers(0, 2), min_size=n_terms, max_size=n_terms)))
    return dense, _cuts(draw, n_docs), query.astype(np.float32), draw(st.integers(0, n_docs + 2))


def _vector(query: np.ndarray) -> SparseVector:
    indices = np.flatnonzero(query).astype(np.int64)
    return SparseVector(indices, query[indices].astype(np.float32))


@settings(max_examples=150, deadline=None)
@given(sparse_case())
def test_sparse_search_over_shards_is_the_search_over_one_index(
    case: tuple[np.ndarray, list[int], np.ndarray, int],
) -> None:
    dense, cuts, query, k = case
    whole = SparseDocIndex.build(SparseRows.from_dense(dense))
    blocks = [dense[a:b] for a, b in itertools.pairwise(cuts)]
    parts = [SparseDocIndex.build(SparseRows.from_dense(block)) for block in blocks]
    sharded = ShardedSparseDocIndex(cuts[:-1], parts)
    assert sharded.n_docs == whole.n_docs and sharded.nnz == whole.nnz
    expected, got = whole.search(_vector(query), k), sharded.search(_vector(query), k)
    assert got[0].tolist() == expected[0].tolist()
    np.testing.assert_array_equal(got[1], expected[1])


class FixedQuery:
    """An embedder whose every query is one given vector."""

    def __init__(self, vector: np.ndarray) -> None:
        self.vector = vector

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.tile(self.vector, (len(texts), 1))


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_dense_search_over_shards_is_the_search_over_one_matrix(data: st.DataObject) -> None:
    n_docs, dim = data.draw(st.integers(1, 12)), data.draw(st.integers(1, 4))
    rows = data.draw(st.lists(st.integers(-2, 2), min_size=n_docs * dim, max_size=n_docs * dim))
    matrix = np.array(rows, dtype=np.float32).reshape(n_docs, dim)
    query = np.array(data.draw(st.lists(st.integers(-2, 2), min_size=dim, max_size=dim)))
    cuts, k = _cuts(data.draw, n_docs), data.draw(st.integers(0, n_docs + 2))
    encoder = FixedQuery(query.astype(np.float32))
    whole = DenseRetriever(encoder, matrix)
    blocks = [matrix[a:b] for a, b in itertools.pairwise(cuts)]
    sharded = ShardedDenseRetriever(encoder, cuts[:-1], blocks)
    expected, got = whole.search("q", k), sharded.search("q", k)
    assert got[0].tolist() == expected[0].tolist()
    np.testing.assert_array_equal(got[1], expected[1])


# The stages on the fixture corpus, cut into shards of 4 documents.


def _jsonl(name: str) -> list[dict]:
    return [json.loads(line) for line in open(FIXTURES / name, encoding="utf-8")]


def _corpus(root: Path, source: Path, docs_per_shard: int | None) -> Path:
    paths = Paths(corpus=root / "corpus")
    params = prepare_corpus.PrepareCorpusParams(
        source=source, format="flashrag", docs_per_shard=docs_per_shard
    )
    prepare_corpus.main(params, paths)
    return paths.corpus


def _questions(root: Path) -> Path:
    """A QA artifact without a corpus ref (so any corpus may be used with it)."""
    folder = root / "qa" / "tiny"
    folder.mkdir(parents=True)
    write_records(folder / "test.msgpack", [QARecord(**r) for r in _jsonl("qa_test.jsonl")])
    manifest = Manifest(schema_name="qa", schema_version=1, stage="t", counts={})
    write_manifest_file(folder, manifest)
    return root / "qa"


@pytest.fixture(scope="module")
def models(fixture_texts: list[str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("retrieval_models")
    return {
        "splade": tiny_splade(root / "splade", fixture_texts),
        "bi": tiny_biencoder(root / "bi", fixture_texts),
    }


def _sparse(
    root: Path, corpus: Path, qa: Path, model: Path, ray: RayParams = NO_RAY
) -> tuple[Path, dict[str, int]]:
    """sparse_expand into root/splade: the folder and the stage's counts."""
    paths = Paths(corpus=corpus, qa=qa, assets=root / "assets", splade=root / "splade")
    params = sparse_expand.SparseExpandParams(model=model, top_terms=5, top_docs=21, max_length=64)
    return paths.splade, sparse_expand.main(params, paths, ray)


def _queries(splade: Path) -> list[SparseQuery]:
    return list(read_records(splade / "queries/tiny/test.msgpack", SparseQuery))


def test_sparse_expand_shard_by_shard_ranks_as_one_shard(
    tmp_path: Path, fixture_corpus_path: Path, models: dict[str, Path]
) -> None:
    qa = _questions(tmp_path)
    whole_corpus = _corpus(tmp_path / "whole", fixture_corpus_path, None)
    split_corpus = _corpus(tmp_path / "split", fixture_corpus_path, 4)
    whole, whole_counts = _sparse(tmp_path / "whole", whole_corpus, qa, models["splade"])
    split, split_counts = _sparse(tmp_path / "split", split_corpus, qa, models["splade"])

    index = load_doc_index(split / "docs")
    assert isinstance(index, ShardedSparseDocIndex) and index.starts == [0, 4, 8, 12, 16, 20]
    assert isinstance(load_doc_index(whole / "docs"), SparseDocIndex)
    assert split_counts["documents"] == whole_counts["documents"] == 21
    manifest = read_manifest(split, "splade")
    assert manifest.extra["doc_shards"] == 6 and "docs/shard-00005/weights.npy" in manifest.files
    assert "doc_shards" not in read_manifest(whole, "splade").extra
    for a, b in zip(_queries(whole), _queries(split), strict=True):
        # Another batching of the documents may move a weight in its last bits, no more.
        assert (a.id, a.terms, a.doc_ranking) == (b.id, b.terms, b.doc_ranking)
        np.testing.assert_allclose(a.doc_scores, b.doc_scores, rtol=1e-5)


def test_sparse_expand_reencodes_only_new_shards_and_never_a_damaged_one(
    tmp_path: Path, fixture_corpus_path: Path, models: dict[str, Path]
) -> None:
    qa = _questions(tmp_path)
    root = tmp_path / "run"
    corpus = _corpus(root, fixture_corpus_path, 4)
    splade, counts = _sparse(root, corpus, qa, models["splade"])
    assert counts["shards_reused"] == 0
    docs = splade / "docs"
    before = {p.relative_to(docs): p.read_bytes() for p in docs.rglob("*") if p.is_file()}

    # 21 + 6 documents: shards 0-4 are unchanged, shard 5 grows, shard 6 is new.
    corpus = _corpus(root, appended_source(tmp_path, fixture_corpus_path, 6), 4)
    _, counts = _sparse(root, corpus, qa, models["splade"])
    assert counts["shards_reused"] == 5 and counts["documents"] == 27
    grown = read_manifest(splade).files
    for name in ("shard-00000", "shard-00004"):
        assert (docs / name / "weights.npy").read_bytes() == before[Path(name) / "weights.npy"]

    fresh_root = tmp_path / "fresh"
    fresh_corpus = _corpus(fresh_root, appended_source(tmp_path, fixture_corpus_path, 6), 4)
    fresh, _ = _sparse(fresh_root, fresh_corpus, qa, models["splade"])
    assert read_manifest(fresh).files == grown  # grown in place = built from scratch

    damaged = docs / "shard-00002" / "weights.npy"
    damaged.write_bytes(damaged.read_bytes()[:-4] + b"\0\0\0\0")
    _, counts = _sparse(root, corpus, qa, models["splade"])
    assert counts["shards_reused"] == 6  # the damaged shard is encoded again
    assert read_manifest(splade).files == grown


def test_a_sparse_listing_that_does_not_match_its_shards_is_refused(
    tmp_path: Path, fixture_corpus_path: Path, models: dict[str, Path]
) -> None:
    corpus = _corpus(tmp_path, fixture_corpus_path, 4)
    splade, _ = _sparse(tmp_path, corpus, _questions(tmp_path), models["splade"])
    meta_file = splade / "docs" / "meta.json"
    meta = json.loads(meta_file.read_text())
    meta["shards"][1]["n_docs"] = 3
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="does not start at document"):
        load_doc_index(splade / "docs")


def _dense(root: Path, corpus: Path, model: Path, ray: RayParams = NO_RAY) -> tuple[Path, dict]:
    paths = Paths(corpus=corpus, assets=root / "assets")
    params = DenseParams(model=model, index=root / "dense", max_length=64, batch_size=4, threads=1)
    return params.index, dense_index.main(params, paths, ray)


def test_dense_index_shard_by_shard_on_ray_matches_in_process_and_one_shard(
    tmp_path: Path, fixture_corpus_path: Path, models: dict[str, Path]
) -> None:
    whole_corpus = _corpus(tmp_path / "whole", fixture_corpus_path, None)
    split_corpus = _corpus(tmp_path / "split", fixture_corpus_path, 4)
    whole, _ = _dense(tmp_path / "whole", whole_corpus, models["bi"])
    local, _ = _dense(tmp_path / "local", split_corpus, models["bi"])
    on_ray, counts = _dense(tmp_path / "ray", split_corpus, models["bi"], RayParams(num_cpus=2))
    assert counts == {"documents": 21, "shards_reused": 0}
    for name, digest in read_manifest(local).files.items():
        assert read_manifest(on_ray).files[name] == digest, name
    assert len(read_manifest(on_ray).extra["shards"]) == 6

    plain, sharded = load_dense(whole, models["bi"]), load_dense(on_ray, models["bi"])
    assert isinstance(plain, DenseRetriever) and isinstance(sharded, ShardedDenseRetriever)
    np.testing.assert_allclose(np.concatenate(sharded.parts), plain.embeddings, atol=1e-5)
    for record in _jsonl("qa_test.jsonl"):
        a, b = plain.search(record["question"], 5), sharded.search(record["question"], 5)
        assert a[0].tolist() == b[0].tolist()
        np.testing.assert_allclose(a[1], b[1], atol=1e-5)

    _, again = _dense(tmp_path / "ray", split_corpus, models["bi"])
    assert again["shards_reused"] == 6
