"""Stage sparse_expand on the fixture corpus and questions with a tiny SPLADE model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from retrollm.artifacts import ArtifactError, read_manifest, read_records, write_records
from retrollm.artifacts import write_manifest as write_manifest_file
from retrollm.retrieval.splade import SparseDocIndex, SpladeEncoder
from schemas import CorpusRecord, InputRef, Manifest, QARecord
from schemas.retrieval import SparseQuery
from stages.common import Paths
from stages.sparse_expand import SparseExpandParams, main
from tests.retrieval_tiny import tiny_splade

FIXTURES = Path(__file__).parent / "fixtures"


def _artifact(folder: Path, schema: str, files: dict[str, list], inputs: dict) -> None:
    folder.mkdir(parents=True)
    for name, records in files.items():
        write_records(folder / name, records)
    counts = {"documents": len(files.get("documents.msgpack", []))}
    write_manifest_file(
        folder,
        Manifest(schema_name=schema, schema_version=1, stage="t", inputs=inputs, counts=counts),
    )


def _jsonl(name: str) -> list[dict]:
    return [json.loads(line) for line in open(FIXTURES / name, encoding="utf-8")]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Paths, SparseExpandParams]:
    root = tmp_path_factory.mktemp("sparse_expand")
    paths = Paths(
        assets=root / "assets", corpus=root / "corpus", qa=root / "qa", splade=root / "splade"
    )
    corpus = [CorpusRecord(**r) for r in _jsonl("corpus.jsonl")]
    _artifact(paths.corpus, "corpus", {"documents.msgpack": corpus}, {})
    corpus_ref = InputRef(
        path=str(paths.corpus),
        schema_name="corpus",
        fingerprint=read_manifest(paths.corpus).fingerprint,
    )
    splits = {
        f"{split}.msgpack": [QARecord(**r) for r in _jsonl(f"qa_{split}.jsonl")]
        for split in ("train", "test")
    }
    _artifact(paths.qa / "tiny", "qa", splits, {"corpus": corpus_ref})
    model = tiny_splade(root / "model", [r.contents for r in corpus])
    return paths, SparseExpandParams(model=model, top_terms=5, top_docs=7, max_length=64)


def test_writes_doc_index_and_one_query_stream_per_split(
    setup: tuple[Paths, SparseExpandParams],
) -> None:
    paths, params = setup
    counts = main(params, paths)
    manifest = read_manifest(paths.splade, "splade")
    assert manifest.counts == counts
    n_test = len(_jsonl("qa_test.jsonl"))
    assert counts["documents"] == 21 and counts["tiny_test_queries"] == n_test
    assert set(manifest.inputs) == {"corpus", "qa/tiny"}
    assert "docs/meta.json" in manifest.files and "queries/tiny/train.msgpack" in manifest.files

    doc_index = SparseDocIndex.load(paths.splade / "docs")
    encoder = SpladeEncoder(params.model, max_length=params.max_length)
    records = list(read_records(paths.splade / "queries/tiny/test.msgpack", SparseQuery))
    questions = [r["question"] for r in _jsonl("qa_test.jsonl")]
    assert [r.question for r in records] == questions  # the bare question, in QA order
    for record in records:
        assert 0 < len(record.terms) <= 5 and not any(t.startswith("##") for t in record.terms)
        assert 0 < len(record.doc_ranking) <= 7
        vector = encoder.encode([record.question]).row(0)
        docs, scores = doc_index.search(vector, 7)
        assert record.doc_ranking == docs.tolist()
        np.testing.assert_allclose(record.doc_scores, scores, rtol=1e-5)
        assert record.terms == [t for t, _ in encoder.top_terms_of(vector, 5)]


def test_refuses_questions_prepared_against_another_corpus(
    setup: tuple[Paths, SparseExpandParams], tmp_path: Path
) -> None:
    paths, params = setup
    stale = InputRef(path="elsewhere", schema_name="corpus", fingerprint="0" * 64)
    qa_root = tmp_path / "qa"
    _artifact(qa_root / "old", "qa", {"test.msgpack": []}, {"corpus": stale})
    other = paths.model_copy(update={"qa": qa_root, "splade": tmp_path / "splade"})
    with pytest.raises(ArtifactError, match="another corpus"):
        main(params, other)
    assert not (tmp_path / "splade").exists()
