"""Corpus readers: the wiki-offline summaries json and FlashRAG corpus jsonl.

Both become CorpusRecords whose `contents` is "title\\ntext" (FlashRAG's convention), so
every later stage sees one shape whatever the source. Bad records raise an error naming
file and line, or with `on_error: skip` are recorded as skips; none is dropped silently.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from retrollm.artifacts import read_records
from retrollm.jsonl import OnError, handle_bad_record, json_lines, validation_reason
from retrollm.sharding import shard_paths
from schemas.manifest import Skip
from schemas.records import CorpusRecord

CORPUS_SCHEMA = "corpus"
CORPUS_SHARD_SCHEMA = "corpus-shard"
CORPUS_VERSION = 1
DOCUMENTS_FILE = "documents.msgpack"
CorpusFormat = Literal["wiki-offline", "flashrag"]
GroupBy = Literal["id", "title"]


@dataclass(frozen=True)
class Passage:
    """A validated input passage; `line` stays with it so later checks can name it."""

    line: int
    id: str
    title: str
    body: str


class FlashRAGPassage(BaseModel):
    """FlashRAG corpus line; extra keys are ignored since FlashRAG corpora vary."""

    model_config = ConfigDict(extra="ignore")

    id: str | int
    contents: str
    title: str | None = None


def _passage(
    path: Path,
    line: int,
    raw_id: object,
    title: str,
    body: str,
    on_error: OnError,
    skips: list[Skip],
) -> Passage | None:
    """Check one passage through CorpusRecord's validators (NUL, surrogates, bidi marks,
    an id hygiene would change); emptiness is judged on the cleaned text, so a body of
    invisible marks only is an empty document."""
    if "\n" in title:
        handle_bad_record(path, line, "title contains a line break", on_error, skips)
        return None
    try:
        record = CorpusRecord(id=str(raw_id), title=title, contents=f"{title}\n{body}")
    except ValidationError as error:
        handle_bad_record(path, line, validation_reason(error), on_error, skips)
        return None
    clean_body = record.contents.split("\n", 1)[1]
    if not clean_body.strip():
        handle_bad_record(path, line, "empty document", on_error, skips)
        return None
    return Passage(line, record.id, record.title, clean_body)


def read_wiki_offline(path: Path, on_error: OnError, skips: list[Skip]) -> Iterator[Passage]:
    """Entries of the {title: {title, extract, ...}} json; ids wiki-<n> in file order.

    The json has no useful line numbers, so `line` is the 1-based entry number.
    """
    path = Path(path)
    text = path.read_bytes().decode("utf-8", errors="surrogateescape")
    try:
        entries = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}:{error.lineno}: malformed JSON: {error.msg}") from error
    if not isinstance(entries, dict):
        raise ValueError(f"{path}: expected a JSON object of title -> entry")
    for number, (key, entry) in enumerate(entries.items(), start=1):
        if not isinstance(entry, dict) or not isinstance(entry.get("extract"), str):
            handle_bad_record(path, number, "entry has no 'extract' string", on_error, skips)
            continue
        title = entry.get("title") if isinstance(entry.get("title"), str) else key
        body = entry["extract"].strip()
        passage = _passage(path, number, f"wiki-{number - 1}", title.strip(), body, on_error, skips)
        if passage is not None:
            yield passage


def _split_title(contents: str, title: str | None) -> tuple[str, str]:
    """FlashRAG contents are "title\\ntext" (wiki dumps quote the title: '"Paris"')."""
    first, _, rest = contents.partition("\n")
    first = first.strip()
    unquoted = first[1:-1] if len(first) >= 2 and first[0] == first[-1] == '"' else first
    if title is None:
        return unquoted, rest.strip()
    if title.strip() in (first, unquoted):
        return title.strip(), rest.strip()
    return title.strip(), contents.strip()


def read_flashrag_corpus(path: Path, on_error: OnError, skips: list[Skip]) -> Iterator[Passage]:
    """Lines of {id, contents[, title]}; without a title the first line of contents is it."""
    path = Path(path)
    for number, raw in json_lines(path, on_error, skips):
        try:
            line = FlashRAGPassage.model_validate(raw)
        except ValidationError as error:
            handle_bad_record(path, number, validation_reason(error), on_error, skips)
            continue
        title, body = _split_title(line.contents, line.title)
        passage = _passage(path, number, line.id, title, body, on_error, skips)
        if passage is not None:
            yield passage


def read_passages(
    path: Path, fmt: CorpusFormat, on_error: OnError, skips: list[Skip]
) -> Iterator[Passage]:
    readers = {"wiki-offline": read_wiki_offline, "flashrag": read_flashrag_corpus}
    return readers[fmt](Path(path), on_error, skips)


def iter_documents(
    passages: Iterable[Passage],
    path: Path,
    group_by: GroupBy,
    limit: int | None,
    on_error: OnError,
    skips: list[Skip],
) -> Iterator[CorpusRecord]:
    """One document per id, or per title with passage texts joined by a blank line.

    By id, documents stream out as passages are read (only the ids seen are held, to
    refuse duplicates), so a corpus of any size passes through bounded memory. By title,
    a title's passages may lie anywhere in the file, so its groups are held until the
    end. With `limit` and title grouping, reading stops at the first passage of the
    (limit + 1)-th title: FlashRAG corpora keep a title's passages together, and reading
    a 21M-passage file to the end for a 100-document sample would take minutes.
    """
    seen_ids: set[str] = set()
    groups: dict[str, tuple[str, str, list[str]]] = {}  # title -> (id, title, bodies)
    for passage in passages:
        if passage.id in seen_ids:
            handle_bad_record(path, passage.line, f"duplicate id {passage.id!r}", on_error, skips)
            continue
        if group_by == "id":
            if limit is not None and len(seen_ids) >= limit:
                return
            seen_ids.add(passage.id)
            yield _document(passage.id, passage.title, [passage.body])
            continue
        if passage.title not in groups and limit is not None and len(groups) >= limit:
            break
        seen_ids.add(passage.id)
        groups.setdefault(passage.title, (passage.id, passage.title, []))[2].append(passage.body)
    for doc_id, title, bodies in groups.values():
        yield _document(doc_id, title, bodies)


def _document(doc_id: str, title: str, bodies: list[str]) -> CorpusRecord:
    return CorpusRecord(id=doc_id, title=title, contents=f"{title}\n" + "\n\n".join(bodies))


def load_corpus(folder: Path) -> list[CorpusRecord]:
    """Read a prepare_corpus artifact back, every shard in corpus order; a foreign or
    missing folder is a clear error."""
    return list(iter_corpus(folder))


def iter_corpus(folder: Path) -> Iterator[CorpusRecord]:
    """The documents of a prepare_corpus artifact, streamed shard by shard."""
    for _, shard in shard_paths(Path(folder), CORPUS_SCHEMA):
        yield from read_records(shard / DOCUMENTS_FILE, CorpusRecord)
