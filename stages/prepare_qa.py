"""Stage prepare_qa NAME: one dataset's train and test questions (data/qa/NAME/).

Steps: per split read the questions (bad lines raise or are counted skips) and sample
`limit` of them with `seed`; flag those whose gold answer occurs in the corpus (its word
index built one corpus shard at a time); write the splits, then the manifest.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

from pydantic import Field

from retrollm.artifacts import (
    atomic_dir,
    read_records,
    sha256_file,
    write_manifest,
    write_records,
)
from retrollm.corpus import CORPUS_SCHEMA, DOCUMENTS_FILE
from retrollm.jsonl import OnError
from retrollm.qa import QA_SCHEMA, QA_VERSION, SPLITS, mark_answerable, read_split, sample
from retrollm.sharding import data_files, shard_paths
from schemas import CorpusRecord, QARecord
from schemas.manifest import InputRef, Manifest, Skip
from stages.common import Paths, StageParams, checked_input, load_params, load_paths, run_stage


class DatasetParams(StageParams):
    train: Path = Field(description="Train split: DPR tsv or FlashRAG jsonl.")
    test: Path = Field(description="Test split: DPR tsv or FlashRAG jsonl.")
    train_limit: int | None = Field(None, ge=1, description="Sample N train questions.")
    test_limit: int | None = Field(None, ge=1, description="Sample N test questions.")
    max_question_chars: int = Field(
        1000, ge=1, description="Longer questions are bad records (raise or counted skip)."
    )


class PrepareQAParams(StageParams):
    seed: int = Field(0, description="Seed of the *_limit samples.")
    on_error: OnError = Field("raise", description="raise, or skip bad records (counted).")
    datasets: dict[str, DatasetParams] = Field(description="One output folder per dataset.")


def _file_ref(path: Path) -> InputRef:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: question file not found (prepare_qa.datasets)")
    return InputRef(path=str(path), schema_name="file", fingerprint=sha256_file(path))


def corpus_shards(folder: Path) -> Iterator[Iterator[str]]:
    """The corpus's document texts, one shard at a time (the plain layout is one)."""
    for _, shard in shard_paths(folder, CORPUS_SCHEMA):
        yield (record.contents for record in read_records(shard / DOCUMENTS_FILE, CorpusRecord))


def main(params: PrepareQAParams, paths: Paths, name: str) -> dict[str, int]:
    if name not in params.datasets:
        known = ", ".join(params.datasets) or "none"
        raise SystemExit(f"prepare_qa: unknown dataset {name!r} (known: {known})")
    dataset = params.datasets[name]
    sources = {"train": dataset.train, "test": dataset.test}
    limits = {"train": dataset.train_limit, "test": dataset.test_limit}
    corpus_files = data_files(paths.corpus, CORPUS_SCHEMA, [DOCUMENTS_FILE])
    inputs = {"corpus": checked_input(paths.corpus, CORPUS_SCHEMA, corpus_files)}
    inputs |= {split: _file_ref(sources[split]) for split in SPLITS}

    skips: list[Skip] = []
    chosen: dict[str, list[QARecord]] = {}
    skipped: dict[str, int] = {}
    for split in SPLITS:
        split_skips: list[Skip] = []
        records = read_split(
            sources[split], f"{name}-{split}", dataset.max_question_chars, params.on_error,
            split_skips,
        )  # fmt: skip
        if not records:
            raise ValueError(
                f"{sources[split]}: no {split} questions left ({len(split_skips)} skipped)"
            )
        chosen[split] = sample(records, limits[split], params.seed)
        skipped[split] = len(split_skips)
        skips += split_skips
    everything = [record for split in SPLITS for record in chosen[split]]
    marked = mark_answerable(everything, corpus_shards(paths.corpus), desc=name)
    counts: dict[str, int] = {}
    with atomic_dir(paths.qa / name) as out:
        for split in SPLITS:
            records, marked = marked[: len(chosen[split])], marked[len(chosen[split]) :]
            write_records(out / f"{split}.msgpack", records)
            counts[f"{split}_questions"] = len(records)
            counts[f"{split}_answerable"] = sum(bool(record.answerable) for record in records)
            counts[f"{split}_skipped"] = skipped[split]
        manifest = Manifest(
            schema_name=QA_SCHEMA,
            schema_version=QA_VERSION,
            stage="prepare_qa",
            params={
                "name": name,
                "seed": params.seed,
                "on_error": params.on_error,
                **dataset.model_dump(mode="json"),
            },
            inputs=inputs,
            counts=counts,
            skips=skips,
        )
        write_manifest(out, manifest)
    return counts


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m stages.prepare_qa DATASET")
    run_stage(
        f"prepare_qa {sys.argv[1]}",
        lambda: main(load_params("prepare_qa", PrepareQAParams), load_paths(), sys.argv[1]),
    )
