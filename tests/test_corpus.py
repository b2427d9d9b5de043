"""prepare_corpus: both input formats, grouping, limits, bad records, atomic output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from retrollm.artifacts import ArtifactError, read_manifest, write_manifest
from retrollm.corpus import load_corpus
from retrollm.jsonl import InputError
from schemas.manifest import Manifest
from stages import prepare_corpus
from stages.common import Paths
from stages.prepare_corpus import PrepareCorpusParams

FIXTURE = Path(__file__).parent / "fixtures" / "corpus.jsonl"


def _paths(tmp_path: Path) -> Paths:
    return Paths(corpus=tmp_path / "out" / "corpus")


def _run(tmp_path: Path, source: Path, **params: Any) -> dict[str, int]:
    return prepare_corpus.main(PrepareCorpusParams(source=source, **params), _paths(tmp_path))


def _write_lines(path: Path, lines: list[str | bytes]) -> Path:
    raw = [line if isinstance(line, bytes) else line.encode() for line in lines]
    path.write_bytes(b"\n".join(raw) + b"\n")
    return path


def _line(**record: Any) -> str:
    return json.dumps(record, ensure_ascii=False)


def test_flashrag_fixture_round_trips(tmp_path: Path) -> None:
    counts = _run(tmp_path, FIXTURE, format="flashrag")
    documents = load_corpus(_paths(tmp_path).corpus)
    assert counts["documents"] == len(documents) == 21
    assert counts["skipped"] == 0
    assert counts["words"] == sum(len(d.contents.split()) for d in documents)
    assert documents[0].id == "wiki-0" and documents[0].title == "Paris"
    assert documents[0].contents.startswith("Paris\nParis is the capital")
    manifest = read_manifest(_paths(tmp_path).corpus, "corpus")
    assert manifest.inputs["source"].path == str(FIXTURE)
    assert manifest.params["format"] == "flashrag"


def test_wiki_offline_json(tmp_path: Path) -> None:
    entries = {
        "Paris": {"title": "Paris", "extract": "Paris is a city.", "topic": "Geo"},
        "Rome": {"title": "Rome", "extract": " Rome is old. ", "description": "x"},
    }
    source = tmp_path / "summaries.json"
    source.write_text(json.dumps(entries))
    assert _run(tmp_path, source, format="wiki-offline")["documents"] == 2
    documents = load_corpus(_paths(tmp_path).corpus)
    assert [(d.id, d.title, d.contents) for d in documents] == [
        ("wiki-0", "Paris", "Paris\nParis is a city."),
        ("wiki-1", "Rome", "Rome\nRome is old."),
    ]


def test_group_by_title_joins_passages_in_file_order(tmp_path: Path) -> None:
    source = _write_lines(
        tmp_path / "c.jsonl",
        [
            _line(id="1", contents='"Paris"\nFirst part.'),
            _line(id="2", contents="Rome\nOnly part."),
            _line(id="3", title="Paris", contents="Paris\nSecond part."),
        ],
    )
    assert _run(tmp_path, source, format="flashrag", group_by="title")["documents"] == 2
    paris, rome = load_corpus(_paths(tmp_path).corpus)
    assert (paris.id, paris.title) == ("1", "Paris")
    assert paris.contents == "Paris\nFirst part.\n\nSecond part."
    assert rome.contents == "Rome\nOnly part."


def test_limit_keeps_the_first_documents(tmp_path: Path) -> None:
    assert _run(tmp_path, FIXTURE, format="flashrag", limit=5)["documents"] == 5
    assert [d.id for d in load_corpus(_paths(tmp_path).corpus)] == [f"wiki-{i}" for i in range(5)]


GOOD = _line(id="a", contents="Alpha\nAlpha text.")
BAD_LINES: dict[str, tuple[str | bytes, str]] = {
    "malformed json": ('{"id": "b", "contents": ', "malformed JSON"),
    "missing field": (_line(id="b"), "contents"),
    "empty document": (_line(id="b", contents="Beta\n   "), "empty document"),
    "nul": (_line(id="b", contents="Beta\nNUL\x00here"), "NUL"),
    "invalid utf-8": (b'{"id": "b", "contents": "Beta\\nbad \xff byte"}', "surrogate"),
    "lone surrogate": ('{"id": "b", "contents": "Beta\\nbad \\ud800"}', "surrogate"),
    "duplicate id": (_line(id="a", contents="Beta\nAgain."), "duplicate id"),
    # Emptiness is judged after hygiene: invisible marks alone are no text.
    "marks only": (_line(id="b", contents="Beta\n\u200f\u202b"), "empty document"),
    # An id is a key other files refer to: hygiene must not change it silently.
    "marked id": (_line(id="b\u200f", contents="Beta\ntext."), "directional marks"),
    "non-NFC id": (_line(id="cafe\u0301", contents="Beta\ntext."), "non-NFC"),
}


@pytest.mark.parametrize("case", sorted(BAD_LINES))
def test_bad_record_raises_naming_file_and_line(tmp_path: Path, case: str) -> None:
    line, reason = BAD_LINES[case]
    source = _write_lines(tmp_path / "c.jsonl", [GOOD, line])
    with pytest.raises(InputError, match=f"c.jsonl:2: .*{reason}"):
        _run(tmp_path, source, format="flashrag")
    assert not _paths(tmp_path).corpus.exists()


@pytest.mark.parametrize("case", sorted(BAD_LINES))
def test_bad_record_is_a_counted_skip(tmp_path: Path, case: str) -> None:
    line, reason = BAD_LINES[case]
    source = _write_lines(tmp_path / "c.jsonl", [GOOD, line, GOOD.replace('"a"', '"c"')])
    counts = _run(tmp_path, source, format="flashrag", on_error="skip")
    assert counts["documents"] == 2 and counts["skipped"] == 1
    (skip,) = read_manifest(_paths(tmp_path).corpus).skips
    assert (skip.file, skip.line) == (str(source), 2)
    assert reason in skip.reason


def test_rtl_marks_are_removed(tmp_path: Path) -> None:
    source = _write_lines(tmp_path / "c.jsonl", [_line(id="a", contents="Al\u200fpha\nte\u202bxt")])
    _run(tmp_path, source, format="flashrag")
    (document,) = load_corpus(_paths(tmp_path).corpus)
    assert (document.title, document.contents) == ("Alpha", "Alpha\ntext")


def test_wiki_entry_without_extract_names_the_entry(tmp_path: Path) -> None:
    source = tmp_path / "summaries.json"
    source.write_text(json.dumps({"A": {"extract": "a."}, "B": {"title": "B"}}))
    with pytest.raises(InputError, match=r"summaries\.json:2: "):
        _run(tmp_path, source)


def test_nothing_left_is_an_error(tmp_path: Path) -> None:
    source = _write_lines(tmp_path / "c.jsonl", ["{oops"])
    with pytest.raises(ValueError, match="no documents"):
        _run(tmp_path, source, format="flashrag", on_error="skip")


def test_exception_mid_stage_leaves_no_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(prepare_corpus, "write_manifest", explode)
    with pytest.raises(RuntimeError, match="disk full"):
        _run(tmp_path, FIXTURE, format="flashrag")
    assert list((tmp_path / "out").iterdir()) == []


def test_load_corpus_refuses_another_artifact(tmp_path: Path) -> None:
    folder = tmp_path / "qa"
    folder.mkdir()
    write_manifest(folder, Manifest(schema_name="qa", schema_version=1, stage="prepare_qa"))
    with pytest.raises(ArtifactError, match="expected a 'corpus' artifact"):
        load_corpus(folder)
