"""Question readers (DPR tsv, FlashRAG jsonl), seeded sampling and answerable flags.

Every question keeps a stable id and every rejected line is an error naming file:line or,
with `on_error: skip`, a recorded skip; nothing is dropped silently.
"""

from __future__ import annotations

import ast
import csv
import random
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError
from tqdm import tqdm

from retrollm.artifacts import ArtifactError, read_manifest, read_records
from retrollm.jsonl import OnError, handle_bad_record, json_lines, validation_reason
from retrollm.text import AnswerMatcher
from schemas.manifest import Skip
from schemas.records import QARecord

QA_SCHEMA = "qa"
QA_VERSION = 1
Split = Literal["train", "test"]
SPLITS: tuple[Split, ...] = ("train", "test")


class FlashRAGQuestion(BaseModel):
    """FlashRAG dataset line; extra keys (metadata, ...) are ignored."""

    model_config = ConfigDict(extra="ignore")

    id: str | int
    question: str
    golden_answers: list[str]


def _dpr_answers(text: str) -> list[str]:
    """The answers column is a Python list literal, e.g. "['Paris', 'Paris, France']"."""
    try:
        answers = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError) as error:
        raise ValueError(f"answers are not a Python list literal: {text[:60]!r}") from error
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        raise ValueError(f"answers are not a list of strings: {text[:60]!r}")
    return answers


def read_dpr_tsv(
    path: Path, prefix: str, on_error: OnError, skips: list[Skip]
) -> Iterator[tuple[int, QARecord]]:
    """Yield (line, record) from `question<TAB>answers`; ids are `<prefix>-<line>`.

    The trivia files CSV-quote fields holding quotes (doubling them), so this is the csv
    module with a tab delimiter, not a plain split.
    """
    path = Path(path)
    with open(path, encoding="utf-8", errors="surrogateescape", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t")
        while True:
            line = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                handle_bad_record(path, line, f"malformed line: {error}", on_error, skips)
                continue
            if not row:
                continue
            try:
                if len(row) != 2:
                    raise ValueError(f"expected question<TAB>answers, found {len(row)} fields")
                yield (
                    line,
                    QARecord(
                        id=f"{prefix}-{line}", question=row[0], golden_answers=_dpr_answers(row[1])
                    ),
                )
            except ValidationError as error:
                handle_bad_record(path, line, validation_reason(error), on_error, skips)
            except ValueError as error:
                handle_bad_record(path, line, str(error), on_error, skips)


def read_flashrag_qa(
    path: Path, on_error: OnError, skips: list[Skip]
) -> Iterator[tuple[int, QARecord]]:
    """Yield (line, record) from {id, question, golden_answers} lines."""
    path = Path(path)
    for line, raw in json_lines(path, on_error, skips):
        try:
            item = FlashRAGQuestion.model_validate(raw)
            yield (
                line,
                QARecord(
                    id=str(item.id), question=item.question, golden_answers=item.golden_answers
                ),
            )
        except ValidationError as error:
            handle_bad_record(path, line, validation_reason(error), on_error, skips)


def read_split(
    path: Path, prefix: str, max_question_chars: int, on_error: OnError, skips: list[Skip]
) -> list[QARecord]:
    """Read one split (format from the file suffix), rejecting duplicate ids and long questions."""
    path = Path(path)
    if path.suffix in (".tsv", ".txt"):
        lines = read_dpr_tsv(path, prefix, on_error, skips)
    elif path.suffix in (".jsonl", ".json"):
        lines = read_flashrag_qa(path, on_error, skips)
    else:
        raise ValueError(f"{path}: unknown question format (expected .tsv DPR or .jsonl FlashRAG)")
    records: list[QARecord] = []
    seen: set[str] = set()
    for line, record in lines:
        if record.id in seen:
            handle_bad_record(path, line, f"duplicate id {record.id!r}", on_error, skips)
        elif len(record.question) > max_question_chars:
            reason = f"question is {len(record.question)} characters (max {max_question_chars})"
            handle_bad_record(path, line, reason, on_error, skips)
        else:
            seen.add(record.id)
            records.append(record)
    return records


def sample(records: Sequence[QARecord], limit: int | None, seed: int) -> list[QARecord]:
    """`limit` records drawn with `seed`, kept in file order so outputs diff cleanly.

    The draw is the first `limit` of one seeded permutation, so samples nest: the 100
    questions of a smaller run are among the 200 of a larger one with the same seed, and
    methods evaluated at different sizes can still be compared question by question."""
    if limit is None or limit >= len(records):
        return list(records)
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    return [records[i] for i in sorted(order[:limit])]


def mark_answerable(
    records: Sequence[QARecord], shards: Iterable[Iterable[str]], desc: str = "answerable"
) -> list[QARecord]:
    """Set `answerable`: whether any gold answer occurs (normalized, as whole words) in
    some document. `shards`: the corpus's document texts, shard by shard; one shard's
    word index is built, asked about the questions not yet found, and dropped before the
    next, so memory follows the largest shard, and "in some document" is the OR over
    shards, the flags a single index over the whole corpus gives."""
    found = [False] * len(records)
    for number, texts in enumerate(shards):
        matcher = AnswerMatcher(texts)
        open_questions = [i for i, flag in enumerate(found) if not flag]
        for i in tqdm(open_questions, desc=f"{desc} {number}", unit="q", mininterval=1.0):
            found[i] = matcher.any_occurs(records[i].golden_answers)
        del matcher
    return [
        record.model_copy(update={"answerable": flag})
        for record, flag in zip(records, found, strict=True)
    ]


def load_qa(folder: Path, split: Split) -> list[QARecord]:
    """Read one split of a prepare_qa artifact back, checking it is one."""
    if split not in SPLITS:
        raise ArtifactError(f"{folder}: unknown split {split!r} (known: {', '.join(SPLITS)})")
    read_manifest(folder, QA_SCHEMA)
    return list(read_records(Path(folder) / f"{split}.msgpack", QARecord))
