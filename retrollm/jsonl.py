"""Reading people-made jsonl input with errors that name the file and line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ValidationError

from schemas.manifest import Skip

RecordT = TypeVar("RecordT", bound=BaseModel)
OnError = Literal["raise", "skip"]


class InputError(ValueError):
    """A bad input record; the message names the file and line."""


def _reason(error: ValidationError) -> str:
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


def read_jsonl(
    path: Path, model: type[RecordT], on_error: OnError, skips: list[Skip]
) -> Iterator[RecordT]:
    """Yield valid records; malformed lines raise or are recorded in `skips`."""
    path = Path(path)
    with open(path, encoding="utf-8", errors="surrogateescape") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
                if not isinstance(raw, dict):
                    raise ValueError("line is not a JSON object")
                yield model.model_validate(raw)
            except json.JSONDecodeError as error:
                reason = f"malformed JSON: {error.msg}"
                handle_bad_record(path, line_number, reason, on_error, skips)
            except ValidationError as error:
                handle_bad_record(path, line_number, _reason(error), on_error, skips)
            except ValueError as error:
                handle_bad_record(path, line_number, str(error), on_error, skips)
