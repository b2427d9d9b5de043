"""Stage sparse_expand: SPLADE document vectors of the corpus, and per question its
expansion terms and SPLADE document ranking (docs/method.md §3-4).

Steps: check the corpus and every dataset's manifest (a dataset built from another
corpus is refused), encode the documents into an inverted index (docs/; a sharded
corpus: one index per shard, docs/shard-NNNNN/, fanned out on Ray, an unchanged shard of
the last run copied instead), encode every question of every dataset and split, keep its
top terms and top documents (queries/DATASET/SPLIT.msgpack), write the manifest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import torch
from pydantic import Field
from tqdm.auto import tqdm

from retrollm.artifacts import (
    ArtifactError,
    atomic_dir,
    code_fingerprint,
    input_ref,
    read_manifest,
    read_records,
    write_manifest,
    write_records,
)
from retrollm.chain import asset_ref
from retrollm.corpus import CORPUS_SCHEMA, DOCUMENTS_FILE, iter_corpus
from retrollm.fanout import RayParams, load_ray_params, run_jobs
from retrollm.retrieval.shards import (
    SPARSE_META,
    ShardedSparseDocIndex,
    encode_sparse_shard,
    write_listing,
)
from retrollm.retrieval.splade import SparseDocIndex, SpladeEncoder
from retrollm.sharding import data_files, listed_shards, plan_shard_jobs
from schemas import InputRef, Manifest, QARecord
from schemas.retrieval import SparseQuery
from stages.common import (
    Paths,
    StageParams,
    checked_input,
    load_params,
    load_paths,
    run_stage,
    verify_contents,
)

SCHEMA_VERSION = 1
SPLITS = ("train", "test")
SHARD_SCHEMA = "splade-shard"
CODE = ["retrollm/retrieval/splade.py", "retrollm/retrieval/shards.py"]  # a shard's bytes


class SparseExpandParams(StageParams):
    model: Path = Field(Path("data/assets/splade"), description="SPLADE model folder.")
    top_terms: int = Field(8, ge=0, description="Expansion terms per question (k_aux).")
    top_docs: int = Field(100, ge=1, description="Documents kept in each question's ranking.")
    max_length: int = Field(256, ge=8, description="Tokens per text the encoder reads.")
    batch_size: int = Field(32, ge=1, description="Texts per encoder forward pass.")
    device: str = Field("cpu", description="torch device of the encoder.")
    threads: int = Field(
        1,
        ge=1,
        description="torch CPU threads; more than the free cores thrash (set, so timings compare).",
    )


def dataset_folders(qa_root: Path) -> list[Path]:
    """Every prepare_qa output under paths.qa (a folder with a manifest)."""
    return sorted(p.parent for p in Path(qa_root).glob("*/manifest.json"))


def check_inputs(paths: Paths, model: Path) -> dict[str, InputRef]:
    """Input refs after verifying the files read; refuses QA sets whose answerable flags
    came from another corpus."""
    corpus_files = data_files(paths.corpus, CORPUS_SCHEMA, [DOCUMENTS_FILE])
    refs = {"corpus": checked_input(paths.corpus, CORPUS_SCHEMA, corpus_files)}
    for folder in dataset_folders(paths.qa):
        ref = checked_input(folder, "qa")
        corpus_ref = read_manifest(folder, "qa").inputs.get("corpus")
        if corpus_ref is not None and corpus_ref.fingerprint != refs["corpus"].fingerprint:
            raise ArtifactError(
                f"{folder}: built from another corpus than {paths.corpus}; rerun prepare_qa"
            )
        refs[f"qa/{folder.name}"] = ref
    assets = asset_ref(paths.assets, model, verify_contents())
    if assets is None and (Path(paths.assets) / "manifest.json").is_file():
        assets = input_ref(paths.assets, "assets")
    if assets is not None:
        refs["assets"] = assets
    return refs


def model_digest(folder: Path) -> str:
    """sha256 over the model folder's files: names the exact weights in the manifest,
    also for a model given outside data/assets."""
    digest = hashlib.sha256()
    for file in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        digest.update(file.relative_to(folder).as_posix().encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def encode_corpus(encoder: SpladeEncoder, paths: Paths, batch_size: int) -> SparseDocIndex:
    documents = [r.contents for r in iter_corpus(paths.corpus)]
    expected = read_manifest(paths.corpus, "corpus").counts.get("documents", len(documents))
    if len(documents) != expected:
        raise ArtifactError(f"{paths.corpus}: {len(documents)} documents, manifest says {expected}")
    return SparseDocIndex.build(encoder.encode(documents, batch_size, progress=True))


def encode_shards(
    params: SparseExpandParams, paths: Paths, ray: RayParams, docs: Path
) -> tuple[ShardedSparseDocIndex, int]:
    """One SPLADE index per corpus shard into docs/ (a shard of the last output made with
    these params, weights and code from the same corpus shard is copied), then the
    listing load_doc_index reads; returns the index and how many shards were copied."""
    docs.mkdir(parents=True)
    shard_params = params.model_dump(mode="json", include={"max_length", "batch_size", "device"})
    refs = {
        "model": InputRef(
            path=str(params.model),
            schema_name="splade-model",
            fingerprint=model_digest(params.model),
        ),
        "code": InputRef(path=CODE[0], schema_name="code", fingerprint=code_fingerprint(CODE)),
    }
    shard_manifest = {
        "schema_name": SHARD_SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "stage": "sparse_expand",
        "params": shard_params,
    }
    plan = plan_shard_jobs(
        paths.corpus,
        CORPUS_SCHEMA,
        {"documents": DOCUMENTS_FILE},
        Path(paths.splade) / "docs",
        docs,
        shard_manifest,
        refs,
    )
    shared = shard_params | {"model": str(Path(params.model).resolve()), "threads": params.threads}
    run_jobs(encode_sparse_shard, plan.calls, ray, shared, "splade")
    shards = [info for info, _ in plan.shards]
    for info in shards:
        if not (docs / info.folder / "manifest.json").is_file():
            raise ArtifactError(f"{docs / info.folder}: the shard job wrote no manifest")
    # Totals from the arrays themselves, not from any shard's manifest.
    parts = [SparseDocIndex.load(docs / info.folder) for info in shards]
    n_docs, nnz = sum(p.n_docs for p in parts), sum(p.nnz for p in parts)
    expected = read_manifest(paths.corpus, CORPUS_SCHEMA).counts.get("documents", n_docs)
    if n_docs != expected:
        raise ArtifactError(f"{paths.corpus}: {n_docs} documents encoded, manifest says {expected}")
    write_listing(docs, shards, SPARSE_META, n_docs=n_docs, nnz=nnz)
    return ShardedSparseDocIndex([info.doc_start for info in shards], parts), plan.reused


def expand(
    encoder: SpladeEncoder,
    doc_index: SparseDocIndex | ShardedSparseDocIndex,
    questions: list[QARecord],
    params: SparseExpandParams,
    desc: str,
) -> Iterator[SparseQuery]:
    """SparseQuery per question, in input order; SPLADE sees the bare question only."""
    chunk = params.batch_size * 32  # bounded memory, one progress step per chunk
    with tqdm(total=len(questions), desc=desc, unit="q") as bar:
        for lo in range(0, len(questions), chunk):
            batch = questions[lo : lo + chunk]
            rows = encoder.encode([q.question for q in batch], params.batch_size)
            for i, record in enumerate(batch):
                vector = rows.row(i)
                terms = encoder.top_terms_of(vector, params.top_terms)
                docs, scores = doc_index.search(vector, params.top_docs)
                yield SparseQuery(
                    id=record.id,
                    question=record.question,
                    terms=[t for t, _ in terms],
                    term_weights=[w for _, w in terms],
                    doc_ranking=docs.tolist(),
                    doc_scores=scores.tolist(),
                )
            bar.update(len(batch))


def main(params: SparseExpandParams, paths: Paths, ray: RayParams | None = None) -> dict[str, int]:
    ray = ray or RayParams()
    torch.set_num_threads(params.threads)
    inputs = check_inputs(paths, params.model)
    encoder = SpladeEncoder(params.model, params.device, params.max_length)
    shards = listed_shards(read_manifest(paths.corpus, CORPUS_SCHEMA), paths.corpus)
    counts: dict[str, int] = {}
    reused = 0
    with atomic_dir(paths.splade) as out:
        doc_index: SparseDocIndex | ShardedSparseDocIndex
        if shards is None:
            doc_index = encode_corpus(encoder, paths, params.batch_size)
            doc_index.save(out / "docs")
        else:
            doc_index, reused = encode_shards(params, paths, ray, out / "docs")
        counts |= {"documents": doc_index.n_docs, "doc_nonzeros": doc_index.nnz}
        for folder in dataset_folders(paths.qa):
            for split in SPLITS:
                source = folder / f"{split}.msgpack"
                if not source.is_file():
                    continue
                questions = list(read_records(source, QARecord))
                target = out / "queries" / folder.name / f"{split}.msgpack"
                target.parent.mkdir(parents=True, exist_ok=True)
                desc = f"{folder.name}/{split}"
                written = write_records(target, expand(encoder, doc_index, questions, params, desc))
                counts[f"{folder.name}_{split}_queries"] = written
        # Only a sharded run says more, so one shard keeps the bytes it always had.
        extra: dict[str, object] = {}
        if shards is not None:
            layout = "docs/shard-NNNNN/, listed in docs/meta.json"
            extra = {"doc_shards": len(shards), "doc_layout": layout}
        write_manifest(
            out,
            Manifest(
                schema_name="splade",
                schema_version=SCHEMA_VERSION,
                stage="sparse_expand",
                params=params.model_dump(mode="json"),
                inputs=inputs,
                counts=counts,
                extra={
                    "model_sha256": model_digest(params.model),
                    "vocab_size": encoder.vocab_size,
                    "mean_doc_nonzeros": round(doc_index.nnz / max(doc_index.n_docs, 1), 2),
                    "layout": "docs/: SparseDocIndex (term -> postings); "
                    "queries/DATASET/SPLIT.msgpack: SparseQuery stream in QA order",
                }
                | extra,
            ),
        )
    # How many shards were copied is this run's history, not the artifact's: printed only.
    return counts | ({"shards_reused": reused} if shards is not None else {})


if __name__ == "__main__":
    run_stage(
        "sparse_expand",
        lambda: main(
            load_params("sparse_expand", SparseExpandParams), load_paths(), load_ray_params()
        ),
    )
