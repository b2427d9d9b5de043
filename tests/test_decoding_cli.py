"""`python -m retrollm ask` over artifact folders laid out as the pipeline writes them:
covers RetroLLM.from_artifacts (model, index, corpus, SPLADE, scorer) end to end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from retrollm.__main__ import main
from retrollm.artifacts import input_ref, write_manifest, write_records
from retrollm.decoding.config import DecodeConfig
from retrollm.retrieval.splade import SparseDocIndex, SpladeEncoder
from schemas.manifest import Manifest
from stages.common import Paths
from tests.decoding_support import fixture_corpus, one_torch_thread, tokens_and_index
from tests.params_support import write_params
from tests.retrieval_tiny import tiny_biencoder, tiny_splade


@pytest.fixture(scope="module")
def params_file(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("artifacts")
    corpus = fixture_corpus()
    texts = [r.contents for r in corpus]
    (root / "corpus").mkdir()
    write_records(root / "corpus" / "documents.msgpack", corpus)
    manifest = Manifest(
        schema_name="corpus", schema_version=1, stage="test", counts={"documents": len(corpus)}
    )
    write_manifest(root / "corpus", manifest)
    paths = Paths(
        assets=root / "assets", corpus=root / "corpus", model=tiny_model_dir,
        tokens=root / "tokens", index=root / "index", splade=root / "splade",
    )  # fmt: skip
    tokens_and_index(paths)
    assets = root / "assets"
    assets.mkdir()
    tiny_splade(assets / "splade", texts)
    tiny_biencoder(assets / "biencoder", texts)
    with one_torch_thread():
        encoder = SpladeEncoder(assets / "splade")
        SparseDocIndex.build(encoder.encode(texts)).save(root / "splade" / "docs")
    splade = Manifest(
        schema_name="splade", schema_version=1, stage="test",
        inputs={"corpus": input_ref(paths.corpus, "corpus")},
    )  # fmt: skip
    write_manifest(paths.splade, splade)
    params = {
        "paths": {k: str(v) for k, v in paths.model_dump().items()},
        # The decoder's own defaults, as these tests were written against them.
        "decode": DecodeConfig(batch_size=2, max_answer_tokens=8).model_dump(mode="json"),
    }
    return write_params(root / "params.yaml", params)


def run(params_file: Path, *args: str) -> None:
    with one_torch_thread():  # main sets the thread count; put it back afterwards
        assert main(["ask", "Who designed the Eiffel Tower?", "--params", str(params_file),
                     "--threads", "1", *args]) == 0  # fmt: skip


def test_ask_json_prints_a_full_prediction(params_file: Path, capsys: Any) -> None:
    run(params_file, "--json")
    record = json.loads(capsys.readouterr().out)
    assert record["well_formed"] and record["method"] == "retrollm"
    assert record["clues"] and record["documents"] and record["evidences"]
    assert len(record["expansion_terms"]) == 8


def test_ask_prints_the_trace_readably(params_file: Path, capsys: Any) -> None:
    run(params_file, "--strategy", "retrollm-hard-windows")
    out = capsys.readouterr().out
    for heading in ("RetroLLM", "Clues", "Candidate documents", "Evidence 1", "Answer", "Cost"):
        assert heading in out


def test_ask_naive_constrained(params_file: Path, capsys: Any) -> None:
    run(params_file, "--strategy", "naive-constrained", "--json")
    record = json.loads(capsys.readouterr().out)
    assert record["method"] == "naive-constrained" and record["evidences"]


def test_ask_html_writes_the_inspector_view_of_the_question(
    params_file: Path, tmp_path: Path, capsys: Any
) -> None:
    page = tmp_path / "views" / "eiffel.html"
    run(params_file, "--json", "--html", str(page))
    record = json.loads(capsys.readouterr().out)
    text = page.read_text()
    payload = text.split('id="inspector-data">')[1].split("</script>")[0]
    question = json.loads(payload)["questions"][0]
    assert question["question"] == "Who designed the Eiffel Tower?"
    view = question["methods"]["retrollm"]
    assert view["clues"] == record["clues"] and len(view["evidences"]) == len(record["evidences"])
    # Evidence is verbatim corpus text, so each is found inside its document.
    assert all("at" in e for e in view["evidences"])
    # A question typed at the prompt has no gold answers: no scores and no funnel steps.
    assert "acc" not in view and "lost" not in view  # None fields are left out of the page
    assert set(view["steps"].values()) <= {None}
