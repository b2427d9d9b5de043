"""The build_trainset and train stages on pipeline-shaped artifacts of the fixture corpus
(tiny model, tiny bi-encoder, word-overlap SPLADE stand-in), and the show command."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from retrollm.artifacts import (
    atomic_dir,
    input_ref,
    read_manifest,
    read_records,
    run_log_path,
    write_manifest,
    write_records,
)
from retrollm.models import load_tokenizer, tokenizer_fingerprint
from schemas import Manifest, QARecord
from schemas.retrieval import SparseQuery
from schemas.training import TrainExample
from stages.common import Paths
from tests.decoding_support import fixture_corpus, tokens_and_index

FIXTURES = Path(__file__).parent / "fixtures"
_WORD = re.compile(r"[a-z0-9]+")
_STOP = {"what", "which", "who", "the", "does", "into", "is", "of", "on", "in", "name", "first"}


def _words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 2]


def _manifest(folder: Path, schema: str, **extra: Any) -> None:
    write_manifest(
        folder, Manifest(schema_name=schema, schema_version=1, stage="test", extra=extra)
    )


@pytest.fixture(scope="module")
def artifacts(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Paths:
    from tests.retrieval_tiny import tiny_biencoder

    root = tmp_path_factory.mktemp("pipeline")
    lines = (FIXTURES / "corpus.jsonl").read_text().splitlines()
    texts = [json.loads(line)["contents"] for line in lines if line.strip()]
    tokenizer = load_tokenizer(tiny_model_dir)
    fingerprint = tokenizer_fingerprint(tokenizer)
    paths = Paths(
        assets=root / "assets", model=tiny_model_dir, tokens=root / "tokens", index=root / "index",
        corpus=root / "corpus",
        qa=root / "qa", splade=root / "splade", trainset=root / "train",
        adapter=root / "adapter", rag_trainset=root / "train_rag",
        rag_adapter=root / "adapter_rag",
    )  # fmt: skip
    with atomic_dir(paths.corpus) as out:
        write_records(out / "documents.msgpack", fixture_corpus())
        _manifest(out, "corpus")
    tokens_and_index(paths)
    assert read_manifest(paths.index, "index").extra["tokenizer_fingerprint"] == fingerprint
    questions = [
        QARecord.model_validate({**json.loads(line), "answerable": True})
        for line in (FIXTURES / "qa_train.jsonl").read_text().splitlines()
        if line.strip()
    ]
    with atomic_dir(paths.qa / "tiny") as out:
        write_records(out / "train.msgpack", questions)
        _manifest(out, "qa")
    doc_words = [set(_words(t)) for t in texts]
    queries = []
    for q in questions:
        terms = list(dict.fromkeys(_words(q.question)))
        overlap = np.array([len(set(terms) & d) for d in doc_words], dtype=np.float32)
        docs = [int(i) for i in np.argsort(-overlap, kind="stable") if overlap[i] > 0]
        queries.append(SparseQuery(
            id=q.id, question=q.question, terms=terms, term_weights=[1.0] * len(terms),
            doc_ranking=docs, doc_scores=[float(overlap[d]) for d in docs],
        ))  # fmt: skip
    with atomic_dir(paths.splade) as out:
        (out / "queries" / "tiny").mkdir(parents=True)
        write_records(out / "queries" / "tiny" / "train.msgpack", queries)
        write_manifest(out, Manifest(
            schema_name="splade", schema_version=1, stage="test",
            inputs={"corpus": input_ref(paths.corpus, "corpus")},
        ))  # fmt: skip
    tiny_biencoder(root / "biencoder", texts)
    return paths


def _trainset_params(paths: Paths) -> tuple[Any, Any]:
    from retrollm.decoding.config import DecodeConfig
    from stages.build_trainset import BuildTrainsetParams

    decode = DecodeConfig(
        scorer_model=str(paths.assets.parent / "biencoder"), min_evidences=3, max_evidences=3
    )
    return BuildTrainsetParams(datasets=["tiny"], excerpt=2), decode


def _train_params(tmp: Path, **overrides: Any) -> Any:
    from stages.train import TrainParams

    values = dict(
        batch_size=2, grad_accum=2, lora_r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"],
        checkpoint_every=1, checkpoint_dir=tmp / "ckpt", live_dir=tmp / "live", cpu=True,
    )  # fmt: skip
    return TrainParams(**{**values, **overrides})


def _bytes_of(folder: Path, *files: Path) -> dict[str, bytes]:
    """Every file under `folder`, plus `files`, by path."""
    paths = [p for p in sorted(folder.rglob("*")) if p.is_file()] + list(files)
    return {str(p): p.read_bytes() for p in paths}


def test_build_trainset_then_train_then_show(
    artifacts: Paths,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from retrollm.adapters import base_fingerprint, read_adapter_info
    from retrollm.training.show import main as show
    from stages.build_trainset import main as build_trainset
    from stages.train import main as train

    counts = build_trainset(*_trainset_params(artifacts), artifacts)
    assert counts["questions"] == 8 and counts["kept"] >= 1
    assert counts["kept"] + sum(v for k, v in counts.items() if k.startswith("dropped_")) == 8
    manifest = read_manifest(artifacts.trainset, "trainset")
    assert 0 < manifest.extra["relevant_share"] <= 1
    examples = list(read_records(artifacts.trainset / "train.msgpack", TrainExample))
    assert len(examples) == counts["kept"]

    params = _train_params(tmp_path)
    live_summary = tmp_path / "live" / "metrics.json"
    first = train(params, artifacts, stop_after=1)  # interrupted after one step
    assert first["steps"] == 1 and not (artifacts.adapter / "manifest.json").exists()
    done = train(params, artifacts)  # resumes
    assert done["steps"] >= 2
    info = read_adapter_info(artifacts.adapter)
    assert info["base_fingerprint"] == base_fingerprint(artifacts.model)
    adapter_manifest = read_manifest(artifacts.adapter, "adapter")
    assert adapter_manifest.extra["base_fingerprint"] == info["base_fingerprint"]
    loss_log = (tmp_path / "live" / "plots" / "metrics" / "train" / "loss.tsv").read_text()
    assert len(loss_log.strip().splitlines()) == done["steps"] + 1  # header + replayed steps
    summary = json.loads(live_summary.read_text())
    assert summary["steps"] == done["steps"] and "seconds_this_run" not in summary
    assert json.loads(run_log_path(artifacts.adapter).read_text())["seconds_this_run"] >= 0

    # A rerun of the same code reuses the finished checkpoint, and writes the same bytes
    # (its wall time differs: the run log beside the adapter holds it); after an edit to
    # the training code it must train again, not save the old weights as a new adapter.
    written = _bytes_of(artifacts.adapter, live_summary)
    capsys.readouterr()
    train(params, artifacts)
    assert f"(step {done['steps']} of {done['steps']})" in capsys.readouterr().out
    assert _bytes_of(artifacts.adapter, live_summary) == written
    monkeypatch.setattr("stages.train.code_fingerprint", lambda sources: "edited training code")
    again = train(params, artifacts)
    out = capsys.readouterr().out
    assert "made by another configuration; starting over" in out and "resuming" not in out
    assert again["steps"] == done["steps"]

    show(["--trainset", str(artifacts.trainset), "--model", str(artifacts.model), "-n", "1"])
    out = capsys.readouterr().out
    assert "⟦" in out and "«" in out and examples[0].question in out
    shutil.rmtree(artifacts.adapter)


def test_rag_trainset_then_train_rag(artifacts: Paths, tmp_path: Path) -> None:
    """The rag-lora baseline: RetroLLM's training questions under the evaluation's RAG
    prompt, the retriever picked by recall on them, trained by the same train stage."""
    from retrollm.adapters import read_adapter_info
    from retrollm.baselines import BaselineConfig, build_prompt
    from retrollm.retrieval.dense import DenseRetriever
    from stages.build_rag_trainset import BuildRagTrainsetParams
    from stages.build_rag_trainset import main as build_rag_trainset
    from stages.build_trainset import main as build_trainset
    from stages.common import DenseParams
    from stages.evaluate import MethodSpec, rag_retriever
    from stages.train import main as train

    if not (artifacts.trainset / "train.msgpack").is_file():
        build_trainset(*_trainset_params(artifacts), artifacts)
    sources = list(read_records(artifacts.trainset / "train.msgpack", TrainExample))
    encoder = artifacts.assets.parent / "biencoder"
    texts = [r.contents for r in fixture_corpus()]
    DenseRetriever.build(encoder, texts).save(tmp_path / "dense")
    dense = DenseParams(model=encoder, index=tmp_path / "dense")
    baselines = BaselineConfig(top_k=2)

    counts = build_rag_trainset(BuildRagTrainsetParams(), baselines, dense, artifacts)
    assert counts["questions"] == len(sources) == counts["kept"]
    manifest = read_manifest(artifacts.rag_trainset, "trainset")
    recall = manifest.extra["train_recall_at_k"]
    assert set(recall) == {"bm25", "dense"}
    assert recall[manifest.extra["retriever"]] == max(recall.values())
    assert rag_retriever(MethodSpec(kind="rag-lora"), artifacts) == manifest.extra["retriever"]

    tokenizer = load_tokenizer(artifacts.model)
    examples = list(read_records(artifacts.rag_trainset / "train.msgpack", TrainExample))
    for example, source in zip(examples, sources, strict=True):
        assert example.id == source.id and example.answer == source.answer.strip()
        prompt = example.input_ids[: example.prompt_length]
        # The evaluation's prompt: FlashRAG's instruction, top_k passages, the question.
        text = tokenizer.decode(prompt)
        assert "Doc 2(Title:" in text and "Doc 3(Title:" not in text
        question_turn = tokenizer.decode(build_prompt(tokenizer, example.question, None))
        assert text.endswith(question_turn[-40:])
        target = example.input_ids[example.prompt_length :]
        assert target[-1] == tokenizer.eos_token_id
        assert tokenizer.decode(target[:-1]).strip() == example.answer
        assert example.roles == "p" * example.prompt_length + "a" * len(target)
        assert example.weights == [0.0] * example.prompt_length + [1.0] * len(target)

    done = train(_train_params(tmp_path), artifacts, variant="rag")
    assert done["examples"] == len(examples) and done["steps"] >= 1
    assert read_manifest(artifacts.rag_adapter, "adapter").inputs["trainset"].path == str(
        artifacts.rag_trainset
    )
    assert read_adapter_info(artifacts.rag_adapter)["base_fingerprint"]
