"""The evaluate stage end to end on hand-built tiny artifacts: outputs, manifest, resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import msgpack
import numpy as np
import pytest
import yaml

from retrollm.artifacts import (
    input_ref,
    read_manifest,
    read_records,
    run_log_path,
    write_manifest,
    write_records,
)
from schemas.manifest import Manifest
from schemas.prediction import Prediction
from schemas.records import CorpusRecord, QARecord
from tests.params_support import write_params

FIXTURES = Path(__file__).parent / "fixtures"


def _artifact(
    folder: Path, schema: str, records: dict[str, list] | None = None, **inputs: Path
) -> None:
    """A manifest over `records`; `inputs`: name -> folder of an input (its manifest)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in (records or {}).items():
        write_records(folder / name, rows)
    refs = {name: input_ref(path, read_manifest(path).schema_name) for name, path in inputs.items()}
    manifest = Manifest(schema_name=schema, schema_version=1, stage="test", inputs=refs)
    write_manifest(folder, manifest)


@pytest.fixture()
def workdir(tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    corpus = [
        CorpusRecord.model_validate(json.loads(line))
        for line in (FIXTURES / "corpus.jsonl").read_text().splitlines()
    ]
    questions = [
        QARecord.model_validate(json.loads(line) | {"answerable": i != 3})
        for i, line in enumerate((FIXTURES / "qa_test.jsonl").read_text().splitlines())
    ]
    _artifact(tmp_path / "data/corpus", "corpus", {"documents.msgpack": corpus})
    _artifact(tmp_path / "data/qa/tiny", "qa", {"test.msgpack": questions, "train.msgpack": []})
    tokens = tmp_path / "data/tokens"
    tokens.mkdir(parents=True)
    np.save(tokens / "doc_offsets.npy", np.arange(0, 10 * (len(corpus) + 1), 10, dtype=np.int64))
    _artifact(tokens, "tokens", corpus=tmp_path / "data/corpus")
    params = {
        "paths": {"corpus": "data/corpus", "qa": "data/qa", "model": str(tiny_model_dir),
                  "tokens": "data/tokens", "eval": "data/eval"},
        "evaluate": {
            "datasets": ["tiny"], "limit": 4, "seed": 0, "threads": 1, "chunk_size": 2,
            "excerpt": 2, "resume_dir": "data/.resume/eval",
            "baselines": {"max_new_tokens": 4, "batch_size": 1},
            "baseline_methods": {"direct": {"kind": "direct"}, "rag-bm25": {"kind": "rag-bm25"}},
        },
    }  # fmt: skip
    write_params(tmp_path / "params.yaml", params)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_direct_and_rag_write_predictions_metrics_and_manifest(workdir: Path) -> None:
    from stages.evaluate import evaluate

    assert evaluate("tiny", "direct") == {"questions": 4, "resumed": 0}
    assert evaluate("tiny", "rag-bm25") == {"questions": 4, "resumed": 0}
    for method in ("direct", "rag-bm25"):
        out = workdir / "data/eval/tiny" / method
        predictions = list(read_records(out / "predictions.msgpack", Prediction))
        assert len(predictions) == 4 and all(p.method == method for p in predictions)
        assert "test-3" not in {p.id for p in predictions}  # not answerable: left out
        assert len((out / "predictions.jsonl").read_text().splitlines()) == 2
        metrics = json.loads((out / "metrics.json").read_text())
        assert (metrics["dataset"], metrics["method"], metrics["n"]) == ("tiny", method, 4)
        assert metrics["answerable"] == 5 and metrics["split_size"] == 6
        manifest = read_manifest(out, "eval")
        assert manifest.params["spec"]["kind"] == method
        assert "threads" not in manifest.params
    rag = json.loads((workdir / "data/eval/tiny/rag-bm25/metrics.json").read_text())
    direct = json.loads((workdir / "data/eval/tiny/direct/metrics.json").read_text())
    assert rag["tokens_in"] > direct["tokens_in"] + 100  # five passages in the prompt
    assert rag["r5"] > 0 and direct["r5"] == 0
    assert not (workdir / "data/.resume/eval/tiny/direct").exists()  # cleared on success


def test_an_interrupted_run_resumes(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import retrollm.baselines as baselines
    from stages.evaluate import evaluate

    real = baselines.run_baseline
    calls = {"n": 0}

    def flaky(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:  # the first chunk (two batches of one) is saved, then an interrupt
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr("stages.evaluate.run_baseline", flaky)
    with pytest.raises(KeyboardInterrupt):
        evaluate("tiny", "direct")
    assert not (workdir / "data/eval/tiny/direct").exists()  # no half artifact
    partial = workdir / "data/.resume/eval/tiny/direct/predictions.partial.msgpack"
    with open(partial, "rb") as handle:
        assert len(list(msgpack.Unpacker(handle, raw=False))) == 2

    assert evaluate("tiny", "direct") == {"questions": 4, "resumed": 2}
    cell = workdir / "data/eval/tiny/direct"
    metrics = json.loads((cell / "metrics.json").read_text())
    assert metrics["n"] == 4 and "resumed" not in metrics
    log = json.loads(run_log_path(cell).read_text())
    assert log["resumed"] == 2 and log["setup_s"] >= 0 and log["latency_ms"] > 0
    predictions = list(read_records(cell / "predictions.msgpack", Prediction))
    assert set(log["timings"]) == {p.id for p in predictions}
    assert all(p.timings == {} for p in predictions)

    # How the run went (resumed, how fast) is in the run log only: the cell itself is the
    # same bytes as an uninterrupted run's.
    resumed = {f.name: f.read_bytes() for f in cell.iterdir()}
    monkeypatch.setattr("stages.evaluate.run_baseline", real)
    shutil.rmtree(cell)
    assert evaluate("tiny", "direct") == {"questions": 4, "resumed": 0}
    assert {f.name: f.read_bytes() for f in cell.iterdir()} == resumed
    assert json.loads(run_log_path(cell).read_text())["resumed"] == 0


def test_unknown_method_and_misplaced_spec_are_clear_errors(workdir: Path) -> None:
    from stages.evaluate import EvaluateParams, evaluate

    with pytest.raises(SystemExit, match="unknown method 'nope'"):
        evaluate("tiny", "nope")
    with pytest.raises(ValueError, match="do not belong here"):
        EvaluateParams(datasets=["x"], methods={"rag": {"kind": "rag-bm25"}})
    # rag-lora waits for its own adapter: only its own matrix stage may run it.
    with pytest.raises(ValueError, match="do not belong here"):
        EvaluateParams(datasets=["x"], baseline_methods={"r": {"kind": "rag-lora"}})
    with pytest.raises(ValueError, match="do not belong here"):
        EvaluateParams(datasets=["x"], rag_lora_methods={"r": {"kind": "rag-bm25"}})
    assert EvaluateParams(datasets=["x"], rag_lora_methods={"r": {"kind": "rag-lora"}}).spec("r")
    with pytest.raises(ValueError, match="kind retrollm only"):
        EvaluateParams(
            datasets=["x"], baseline_methods={"d": {"kind": "direct", "decode": {"k_aux": 1}}}
        )


def test_an_empty_split_is_an_error_naming_the_file(workdir: Path) -> None:
    from retrollm.artifacts import ArtifactError
    from stages.evaluate import evaluate

    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["evaluate"]["split"] = "train"  # the fixture's train split holds no question
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ArtifactError, match=r"qa/tiny/train\.msgpack: no answerable questions"):
        evaluate("tiny", "direct")
    assert not (workdir / "data/eval/tiny/direct").exists()


def test_documents_in_another_order_are_refused(workdir: Path) -> None:
    """Same documents, same count, other order: the token offsets would credit passages
    to the wrong documents, so the chain check (tokens made from this corpus) refuses."""
    from retrollm.artifacts import ArtifactError
    from stages.evaluate import evaluate

    corpus = workdir / "data/corpus"
    documents = list(read_records(corpus / "documents.msgpack", CorpusRecord))
    write_records(corpus / "documents.msgpack", documents[::-1])
    write_manifest(corpus, Manifest(schema_name="corpus", schema_version=1, stage="test"))
    with pytest.raises(ArtifactError, match=r"data/tokens: made from corpus"):
        evaluate("tiny", "rag-bm25")


def test_a_tampered_question_file_is_refused(workdir: Path) -> None:
    from retrollm.artifacts import ArtifactError
    from stages.evaluate import evaluate

    split = workdir / "data/qa/tiny/test.msgpack"
    data = bytearray(split.read_bytes())
    data[len(data) // 2] ^= 0x01
    split.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"qa/tiny/test\.msgpack: sha256 differs"):
        evaluate("tiny", "direct")
