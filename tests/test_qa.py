"""prepare_qa: DPR tsv and FlashRAG jsonl, sampling, answerable flags, bad lines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from retrollm.artifacts import ArtifactError, read_manifest
from retrollm.jsonl import InputError
from retrollm.qa import load_qa, read_dpr_tsv, sample
from schemas.records import QARecord
from stages import prepare_corpus, prepare_qa
from stages.common import Paths
from stages.prepare_corpus import PrepareCorpusParams
from stages.prepare_qa import PrepareQAParams

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def corpus_paths(tmp_path_factory: pytest.TempPathFactory) -> Paths:
    root = tmp_path_factory.mktemp("data")
    paths = Paths(corpus=root / "corpus", qa=root / "qa")
    params = PrepareCorpusParams(source=FIXTURES / "corpus.jsonl", format="flashrag")
    prepare_corpus.main(params, paths)
    return paths


def _paths(corpus_paths: Paths, tmp_path: Path) -> Paths:
    return corpus_paths.model_copy(update={"qa": tmp_path / "qa"})


def _run(paths: Paths, train: Path, test: Path, **params: Any) -> dict[str, int]:
    dataset = {"train": train, "test": test}
    dataset |= {k: params.pop(k) for k in list(params) if k.endswith(("_limit", "_chars"))}
    return prepare_qa.main(PrepareQAParams(datasets={"ds": dataset}, **params), paths, "ds")


def _write(path: Path, lines: list[str | bytes], newline: bytes = b"\n") -> Path:
    raw = [line if isinstance(line, bytes) else line.encode() for line in lines]
    path.write_bytes(newline.join(raw) + newline)
    return path


def test_flashrag_fixtures(corpus_paths: Paths, tmp_path: Path) -> None:
    paths = _paths(corpus_paths, tmp_path)
    counts = _run(paths, FIXTURES / "qa_train.jsonl", FIXTURES / "qa_test.jsonl")
    assert counts == {
        "train_questions": 8, "train_answerable": 8, "train_skipped": 0,
        "test_questions": 6, "test_answerable": 5, "test_skipped": 0,
    }  # fmt: skip
    test = load_qa(paths.qa / "ds", "test")
    assert [q.id for q in test if not q.answerable] == ["test-3"]  # Laika is not in the corpus
    manifest = read_manifest(paths.qa / "ds", "qa")
    assert set(manifest.inputs) == {"corpus", "train", "test"}
    assert manifest.params["name"] == "ds"


def test_a_sharded_corpus_flags_the_same_questions(corpus_paths: Paths, tmp_path: Path) -> None:
    """The word index is built one shard at a time (memory of one shard); a question is
    answerable when some shard holds its answer, as with one index over all documents."""
    whole = _paths(corpus_paths, tmp_path / "whole")
    split = Paths(corpus=tmp_path / "split" / "corpus", qa=tmp_path / "split" / "qa")
    params = PrepareCorpusParams(
        source=FIXTURES / "corpus.jsonl", format="flashrag", docs_per_shard=2
    )
    prepare_corpus.main(params, split)
    files = (FIXTURES / "qa_train.jsonl", FIXTURES / "qa_test.jsonl")
    assert _run(split, *files) == _run(whole, *files)
    for name in ("train", "test"):
        assert load_qa(split.qa / "ds", name) == load_qa(whole.qa / "ds", name)
        assert (split.qa / "ds" / f"{name}.msgpack").read_bytes() == (
            whole.qa / "ds" / f"{name}.msgpack"
        ).read_bytes()


def test_dpr_tsv_with_csv_quoting_and_crlf(tmp_path: Path) -> None:
    source = _write(
        tmp_path / "nq.test.tsv",
        [
            "who wrote hamlet\t['William Shakespeare', 'Shakespeare']",
            'who sings it\t"[\'Solange Knowles\', ""Destiny \'s Child""]"',
            "a \"quoted\" word inside\t['x']",
        ],
        newline=b"\r\n",
    )
    rows = list(read_dpr_tsv(source, "nq-test", "raise", []))
    assert [(line, q.id) for line, q in rows] == [
        (1, "nq-test-1"),
        (2, "nq-test-2"),
        (3, "nq-test-3"),
    ]
    assert rows[1][1].golden_answers == ["Solange Knowles", "Destiny 's Child"]
    assert rows[2][1].question == 'a "quoted" word inside'


def test_dpr_split_through_the_stage(corpus_paths: Paths, tmp_path: Path) -> None:
    tsv = _write(tmp_path / "q.tsv", ["capital of france?\t['Paris']", "first dog?\t['Laika']"])
    paths = _paths(corpus_paths, tmp_path)
    counts = _run(paths, tsv, tsv)
    assert counts["test_questions"] == 2 and counts["test_answerable"] == 1
    assert [q.id for q in load_qa(paths.qa / "ds", "train")] == ["ds-train-1", "ds-train-2"]


GOOD_TSV = "capital of france?\t['Paris']"
BAD_TSV: dict[str, tuple[str | bytes, str]] = {
    "one field": ("no tab here", "found 1 fields"),
    "three fields": ("q\t['a']\textra", "found 3 fields"),
    "not a literal": ("q\t[unquoted]", "not a Python list literal"),
    "not a list": ("q\t'Paris'", "not a list of strings"),
    "no answers": ("q\t[]", "golden_answers"),
    "empty question": (" \t['a']", "question"),
    "nul": ("q\x00q\t['a']", "NUL"),
    "invalid utf-8": (b"q \xff\t['a']", "surrogate"),
    "over-long question": ("q" * 1001 + "\t['a']", "1001 characters"),
}


@pytest.mark.parametrize("case", sorted(BAD_TSV))
def test_bad_tsv_line_raises_naming_file_and_line(
    corpus_paths: Paths, tmp_path: Path, case: str
) -> None:
    line, reason = BAD_TSV[case]
    source = _write(tmp_path / "bad.tsv", [GOOD_TSV, line])
    with pytest.raises(InputError, match=f"bad.tsv:2: .*{reason}"):
        _run(_paths(corpus_paths, tmp_path), FIXTURES / "qa_train.jsonl", source)
    assert not (tmp_path / "qa" / "ds").exists()


@pytest.mark.parametrize("case", sorted(BAD_TSV))
def test_bad_tsv_line_is_a_counted_skip(corpus_paths: Paths, tmp_path: Path, case: str) -> None:
    line, reason = BAD_TSV[case]
    source = _write(tmp_path / "bad.tsv", [GOOD_TSV, line, GOOD_TSV])
    paths = _paths(corpus_paths, tmp_path)
    counts = _run(paths, FIXTURES / "qa_train.jsonl", source, on_error="skip")
    assert (counts["test_questions"], counts["test_skipped"]) == (2, 1)
    (skip,) = read_manifest(paths.qa / "ds").skips
    assert (skip.file, skip.line) == (str(source), 2) and reason in skip.reason
    assert [q.id for q in load_qa(paths.qa / "ds", "test")] == ["ds-test-1", "ds-test-3"]


def _q(**record: Any) -> str:
    return json.dumps(record)


BAD_JSONL: dict[str, tuple[str, str]] = {
    "malformed json": ('{"id": "x", ', "malformed JSON"),
    "missing field": (_q(id="x", question="q?"), "golden_answers"),
    "duplicate id": (_q(id="a", question="again?", golden_answers=["b"]), "duplicate id"),
    "lone surrogate": ('{"id": "x", "question": "q\\udc00", "golden_answers": ["a"]}', "surrogate"),
    "marked id": (_q(id="\u200ex", question="q?", golden_answers=["a"]), "directional marks"),
}


@pytest.mark.parametrize("case", sorted(BAD_JSONL))
def test_bad_jsonl_line(corpus_paths: Paths, tmp_path: Path, case: str) -> None:
    line, reason = BAD_JSONL[case]
    good = _q(id="a", question="Capital of France?", golden_answers=["Paris"], metadata={})
    source = _write(tmp_path / "bad.jsonl", [good, line])
    paths = _paths(corpus_paths, tmp_path)
    with pytest.raises(InputError, match=f"bad.jsonl:2: .*{reason}"):
        _run(paths, source, source)
    counts = _run(paths, source, source, on_error="skip")
    assert (counts["train_questions"], counts["train_skipped"]) == (1, 1)
    assert counts["test_skipped"] == 1


def test_rtl_marks_are_removed(corpus_paths: Paths, tmp_path: Path) -> None:
    source = _write(tmp_path / "q.tsv", ["capital of \u200ffrance?\t['Pa\u202bris']"])
    paths = _paths(corpus_paths, tmp_path)
    assert _run(paths, source, source)["test_answerable"] == 1
    (question,) = load_qa(paths.qa / "ds", "test")
    assert (question.question, question.golden_answers) == ("capital of france?", ["Paris"])


def test_an_empty_split_is_an_error_naming_the_file(corpus_paths: Paths, tmp_path: Path) -> None:
    good = _write(tmp_path / "train.jsonl", [_q(id="a", question="q?", golden_answers=["a"])])
    empty = _write(tmp_path / "test.jsonl", [])
    with pytest.raises(ValueError, match=r"test\.jsonl: no test questions left"):
        _run(_paths(corpus_paths, tmp_path), good, empty)


def test_question_limit_is_a_param(corpus_paths: Paths, tmp_path: Path) -> None:
    source = _write(tmp_path / "q.tsv", ["q" * 1500 + "\t['a']"])
    counts = _run(_paths(corpus_paths, tmp_path), source, source, max_question_chars=2000)
    assert counts["test_questions"] == 1


def test_sampling_is_seeded_and_keeps_file_order(corpus_paths: Paths, tmp_path: Path) -> None:
    records = [QARecord(id=str(i), question=f"q{i}", golden_answers=["a"]) for i in range(50)]
    first = [r.id for r in sample(records, 10, seed=3)]
    assert first == [r.id for r in sample(records, 10, seed=3)]
    assert first != [r.id for r in sample(records, 10, seed=4)]
    assert first == sorted(first, key=int) and len(set(first)) == 10
    assert len(sample(records, 100, seed=0)) == 50
    # Samples nest: a smaller draw is a subset of a larger one with the same seed.
    for small, large in [(5, 10), (10, 37), (1, 49)]:
        smaller, larger = sample(records, small, 3), sample(records, large, 3)
        assert {r.id for r in smaller} <= {r.id for r in larger}

    paths = _paths(corpus_paths, tmp_path)
    counts = _run(paths, FIXTURES / "qa_train.jsonl", FIXTURES / "qa_test.jsonl", test_limit=3)
    assert (counts["train_questions"], counts["test_questions"]) == (8, 3)


def test_unknown_dataset_and_split(corpus_paths: Paths, tmp_path: Path) -> None:
    params = PrepareQAParams(datasets={})
    with pytest.raises(SystemExit, match="unknown dataset 'nq'"):
        prepare_qa.main(params, _paths(corpus_paths, tmp_path), "nq")
    with pytest.raises(ArtifactError, match="unknown split"):
        load_qa(tmp_path, "dev")  # type: ignore[arg-type]


def test_unknown_file_format(corpus_paths: Paths, tmp_path: Path) -> None:
    source = _write(tmp_path / "q.csv", ["x"])
    with pytest.raises(ValueError, match="unknown question format"):
        _run(_paths(corpus_paths, tmp_path), source, source)
