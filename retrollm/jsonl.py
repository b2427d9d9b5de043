"""Reading people-made jsonl input with errors that name the file and line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from schemas.manifest import Skip

RecordT = TypeVar("RecordT", bound=BaseModel)
OnError = Literal["raise", "skip"]


class InputError(ValueError):
    """A bad input record; the message names the file and line."""


def validation_reason(error: ValidationError) -> str:
    """The first problem of a pydantic error as 'field: message'."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "record"
    return f"{where}: {first['msg']}"


def handle_bad_record(
    path: Path, line: int, reason: str, on_error: OnError, skips: list[Skip]
) -> None:
    """Raise for `on_error: raise`, else remember the skip so the manifest counts it."""
    if on_error == "raise":
        raise InputError(f"{path}:{line}: {reason} (set on_error: skip to skip such records)")
    skips.append(Skip(file=str(path), line=line, reason=reason))


def json_lines(path: Path, on_error: OnError, skips: list[Skip]) -> Iterator[tuple[int, Any]]:
    """Yield (line number, parsed JSON) for each non-blank line; malformed lines are bad.

    The line number comes along because some checks (duplicate ids) happen after parsing
    and must still be reported as file:line. Invalid UTF-8 becomes lone surrogates, which
    the record validators reject with a clear message.
    """
    with open(path, encoding="utf-8", errors="surrogateescape") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as error:
                handle_bad_record(path, number, f"malformed JSON: {error.msg}", on_error, skips)


def read_jsonl(
    path: Path, model: type[RecordT], on_error: OnError, skips: list[Skip]
) -> Iterator[RecordT]:
    """Yield valid records; malformed lines raise or are recorded in `skips`."""
    path = Path(path)
    for number, raw in json_lines(path, on_error, skips):
        if not isinstance(raw, dict):
            handle_bad_record(path, number, "line is not a JSON object", on_error, skips)
            continue
        try:
            yield model.model_validate(raw)
        except ValidationError as error:
            handle_bad_record(path, number, validation_reason(error), on_error, skips)
