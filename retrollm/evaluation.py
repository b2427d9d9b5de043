"""The evaluation loop: pick the question sample, answer it in checkpointed chunks.

An evaluation of a few hundred questions takes minutes to an hour on a CPU, so losing it
to an interrupt would hurt. Predictions are appended chunk by chunk to a resume file that
lives outside the stage's output (DVC deletes outputs before a stage runs); a rerun with
the same key (method, params, inputs, questions) continues after the last complete chunk,
any other key starts afresh.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgpack
from pydantic import ValidationError
from tqdm.auto import tqdm

from retrollm.qa import sample
from schemas.prediction import Prediction
from schemas.records import QARecord

AnswerFn = Callable[[Sequence[QARecord]], list[Prediction]]
PARTIAL = "predictions.partial.msgpack"
KEY = "key.json"


def select_questions(
    records: Sequence[QARecord], limit: int | None, seed: int, answerable_only: bool
) -> list[QARecord]:
    """The answerable questions (a gold answer occurs in the corpus), then `limit` of them
    drawn with `seed`: the same sample for every method, so rows of a table compare."""
    if answerable_only:
        unknown = sum(record.answerable is None for record in records)
        if unknown:
            raise ValueError(
                f"{unknown} questions have no 'answerable' flag; rerun prepare_qa to set it"
            )
        records = [record for record in records if record.answerable]
    return sample(records, limit, seed)


def resume_key(payload: dict[str, Any]) -> str:
    """sha256 of everything that decides the predictions; json keeps it order-free."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


class ResumeFile:
    """Predictions made so far for one (dataset, method), valid only under one key."""

    def __init__(self, folder: Path, key: str) -> None:
        self.folder = Path(folder)
        self.key = key
        self.path = self.folder / PARTIAL

    def load(self, questions: Sequence[QARecord]) -> list[Prediction]:
        """Complete predictions saved under this key, in question order; else nothing.

        A record cut short by an interrupt is dropped and the file truncated after the
        last complete one, so later appends never follow garbage.
        """
        key_file = self.folder / KEY
        if not key_file.is_file() or json.loads(key_file.read_text()).get("key") != self.key:
            self._reset()
            return []
        done: list[Prediction] = []
        good_end = 0
        with open(self.path, "rb") as handle:
            unpacker = msgpack.Unpacker(handle, raw=False)
            try:
                for raw in unpacker:
                    done.append(Prediction.model_validate(raw))
                    good_end = unpacker.tell()
            except (ValueError, ValidationError, msgpack.UnpackException):
                pass
        expected = [question.id for question in questions[: len(done)]]
        if [prediction.id for prediction in done] != expected:
            self._reset()
            return []
        with open(self.path, "r+b") as handle:
            handle.truncate(good_end)
        return done

    def append(self, predictions: Sequence[Prediction]) -> None:
        with open(self.path, "ab") as handle:
            packer = msgpack.Packer()
            for prediction in predictions:
                handle.write(packer.pack(prediction.model_dump(mode="json")))
            handle.flush()

    def _reset(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        self.path.write_bytes(b"")
        (self.folder / KEY).write_text(json.dumps({"key": self.key}) + "\n")

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def run_checkpointed(
    questions: Sequence[QARecord],
    answer: AnswerFn,
    resume: ResumeFile,
    chunk_size: int,
    desc: str,
) -> tuple[list[Prediction], int]:
    """Answer every question, `chunk_size` at a time, saving after each chunk.

    Returns the predictions in question order and how many came from an earlier run.
    """
    predictions = resume.load(questions)
    resumed = len(predictions)
    with tqdm(total=len(questions), initial=resumed, desc=desc, unit="q") as bar:
        for lo in range(resumed, len(questions), chunk_size):
            chunk = questions[lo : lo + chunk_size]
            made = answer(chunk)
            if [p.id for p in made] != [q.id for q in chunk]:
                raise RuntimeError(f"{desc}: the method returned predictions out of order")
            resume.append(made)
            predictions.extend(made)
            bar.update(len(chunk))
    return predictions, resumed
