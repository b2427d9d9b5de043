"""Stage prepare_corpus: turn the source corpus into CorpusRecords (data/corpus/).

Steps: hash the source file, stream its passages (bad ones raise or are counted skips),
group them into documents by id or title, keep the first `limit`, write documents.msgpack
(or, with `docs_per_shard`, one shard folder per run of that many documents, each written
as the stream reaches it) and the manifest.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path

from pydantic import Field

from retrollm.artifacts import atomic_dir, sha256_file, write_manifest, write_records
from retrollm.corpus import (
    CORPUS_SCHEMA,
    CORPUS_SHARD_SCHEMA,
    CORPUS_VERSION,
    DOCUMENTS_FILE,
    CorpusFormat,
    GroupBy,
    iter_documents,
    read_passages,
)
from retrollm.jsonl import OnError
from retrollm.sharding import SHARDS_KEY, ShardInfo, shard_folder
from schemas.manifest import InputRef, Manifest, Skip
from schemas.records import CorpusRecord
from stages.common import Paths, StageParams, load_params, load_paths, run_stage


class PrepareCorpusParams(StageParams):
    source: Path = Field(description="Source corpus file.")
    format: CorpusFormat = Field(
        "wiki-offline", description="wiki-offline summaries json, or flashrag corpus jsonl."
    )
    group_by: GroupBy = Field("id", description="One document per passage id, or per title.")
    limit: int | None = Field(None, ge=1, description="Keep only the first N documents.")
    on_error: OnError = Field("raise", description="raise, or skip bad records (counted).")
    docs_per_shard: int | None = Field(
        None,
        ge=1,
        description="Documents per corpus shard; tokens and index follow the corpus's shards "
        "(null: one shard, the plain layout).",
    )


class DocumentTally:
    """Counts the documents and words that stream through it."""

    def __init__(self) -> None:
        self.documents = 0
        self.words = 0

    def __call__(self, documents: Iterable[CorpusRecord]) -> Iterator[CorpusRecord]:
        for document in documents:
            self.documents += 1
            self.words += len(document.contents.split())
            yield document


def main(params: PrepareCorpusParams, paths: Paths) -> dict[str, int]:
    if not params.source.is_file():
        raise FileNotFoundError(f"{params.source}: corpus source not found (prepare_corpus.source)")
    source = InputRef(
        path=str(params.source), schema_name="file", fingerprint=sha256_file(params.source)
    )
    skips: list[Skip] = []
    passages = read_passages(params.source, params.format, params.on_error, skips)
    documents = iter_documents(
        passages, params.source, params.group_by, params.limit, params.on_error, skips
    )
    total = DocumentTally()
    with atomic_dir(paths.corpus) as out:
        if params.docs_per_shard is None:
            write_records(out / DOCUMENTS_FILE, total(documents))
            extra = {}
        else:
            shards = write_shards(out, total(documents), params.docs_per_shard)
            extra = {SHARDS_KEY: [shard.model_dump() for shard in shards]}
        if total.documents == 0:
            raise ValueError(f"{params.source}: no documents left ({len(skips)} skipped)")
        counts = {"documents": total.documents, "words": total.words, "skipped": len(skips)}
        manifest = Manifest(
            schema_name=CORPUS_SCHEMA,
            schema_version=CORPUS_VERSION,
            stage="prepare_corpus",
            params=manifest_params(params),
            inputs={"source": source},
            counts=counts,
            skips=skips,
            extra=extra,
        )
        write_manifest(out, manifest)
    return counts | ({"shards": len(extra[SHARDS_KEY])} if extra else {})


def manifest_params(params: PrepareCorpusParams) -> dict[str, object]:
    """The params as the manifest records them; `docs_per_shard` only when set, so the
    one-shard artifact is byte for byte what the code before sharding wrote."""
    exclude = {"docs_per_shard"} if params.docs_per_shard is None else set()
    return params.model_dump(mode="json", exclude=exclude)


def write_shards(
    out: Path, documents: Iterable[CorpusRecord], docs_per_shard: int
) -> list[ShardInfo]:
    """One shard folder per `docs_per_shard` documents, in stream order. A shard's
    manifest depends on its documents alone (not on where it starts or on the source's
    other documents), so an unchanged shard keeps its fingerprint when documents are
    appended and what is made from it is reused."""
    shards: list[ShardInfo] = []
    iterator = iter(documents)
    while batch := list(itertools.islice(iterator, docs_per_shard)):
        shard = ShardInfo(
            folder=shard_folder(len(shards)),
            doc_start=sum(s.n_docs for s in shards),
            n_docs=len(batch),
        )
        folder = out / shard.folder
        folder.mkdir()
        write_records(folder / DOCUMENTS_FILE, batch)
        write_manifest(
            folder,
            Manifest(
                schema_name=CORPUS_SHARD_SCHEMA,
                schema_version=CORPUS_VERSION,
                stage="prepare_corpus",
                counts={"documents": len(batch)},
            ),
        )
        shards.append(shard)
    return shards


if __name__ == "__main__":
    run_stage(
        "prepare_corpus",
        lambda: main(load_params("prepare_corpus", PrepareCorpusParams), load_paths()),
    )
