"""Stage prepare_corpus: turn the source corpus into CorpusRecords (data/corpus/).

Steps: hash the source file, read its passages (bad ones raise or are counted skips),
group them into documents by id or title, keep the first `limit`, write documents.msgpack
and the manifest.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from retrollm.artifacts import atomic_dir, sha256_file, write_manifest, write_records
from retrollm.corpus import (
    CORPUS_SCHEMA,
    CORPUS_VERSION,
    DOCUMENTS_FILE,
    CorpusFormat,
    GroupBy,
    build_documents,
    count_words,
    read_passages,
)
from retrollm.jsonl import OnError
from schemas.manifest import InputRef, Manifest, Skip
from stages.common import Paths, StageParams, load_params, load_paths, run_stage


class PrepareCorpusParams(StageParams):
    source: Path = Field(description="Source corpus file.")
    format: CorpusFormat = Field(
        "wiki-offline", description="wiki-offline summaries json, or flashrag corpus jsonl."
    )
    group_by: GroupBy = Field("id", description="One document per passage id, or per title.")
    limit: int | None = Field(None, ge=1, description="Keep only the first N documents.")
    on_error: OnError = Field("raise", description="raise, or skip bad records (counted).")


def main(params: PrepareCorpusParams, paths: Paths) -> dict[str, int]:
    if not params.source.is_file():
        raise FileNotFoundError(f"{params.source}: corpus source not found (prepare_corpus.source)")
    source = InputRef(
        path=str(params.source), schema_name="file", fingerprint=sha256_file(params.source)
    )
    skips: list[Skip] = []
    passages = read_passages(params.source, params.format, params.on_error, skips)
    documents = build_documents(
        passages, params.source, params.group_by, params.limit, params.on_error, skips
    )
    if not documents:
        raise ValueError(f"{params.source}: no documents left ({len(skips)} skipped)")
    counts = {"documents": len(documents), "words": count_words(documents), "skipped": len(skips)}
    with atomic_dir(paths.corpus) as out:
        write_records(out / DOCUMENTS_FILE, documents)
        manifest = Manifest(
            schema_name=CORPUS_SCHEMA,
            schema_version=CORPUS_VERSION,
            stage="prepare_corpus",
            params=params.model_dump(mode="json"),
            inputs={"source": source},
            counts=counts,
            skips=skips,
        )
        write_manifest(out, manifest)
    return counts


if __name__ == "__main__":
    run_stage(
        "prepare_corpus",
        lambda: main(load_params("prepare_corpus", PrepareCorpusParams), load_paths()),
    )
