"""Stage dense_index: bi-encoder embeddings of every corpus document, for rag-dense.

    python -m stages.dense_index

Embedding 10k documents takes many CPU minutes, far longer than answering a sample of
questions, so it is done once here and shared by every dataset's rag-dense run (and by a
DVC remote) instead of inside each evaluate cell. Output (`evaluate.dense.index`):
embeddings.npy, dense_meta.json (retrollm.retrieval.dense layout), manifest.json; for a
sharded corpus one such folder per shard (shard-NNNNN/, embedded as Ray tasks, an
unchanged shard of the last run copied instead), listed in dense_meta.json and the
manifest (retrollm.retrieval.shards).
"""

from __future__ import annotations

import os

# Before torch loads: spinning OpenMP workers thrash when the cores are shared (measured
# here: 2 threads took 10x longer than 1 with other jobs running; passive waiting, none).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import hashlib
from pathlib import Path

import numpy as np
import torch

from retrollm.artifacts import (
    ArtifactError,
    atomic_dir,
    code_fingerprint,
    read_manifest,
    sha256_file,
    write_manifest,
)
from retrollm.chain import asset_ref
from retrollm.corpus import CORPUS_SCHEMA, DOCUMENTS_FILE, load_corpus
from retrollm.fanout import RayParams, load_ray_params, run_jobs
from retrollm.retrieval.dense import DENSE_SCHEMA, DENSE_VERSION, DenseRetriever
from retrollm.retrieval.shards import DENSE_CHUNK, embed_dense_shard, write_listing
from retrollm.sharding import SHARDS_KEY, data_files, listed_shards, plan_shard_jobs
from schemas.manifest import InputRef, Manifest
from stages.common import (
    DenseParams,
    Paths,
    checked_input,
    load_params,
    load_paths,
    run_stage,
    verify_contents,
)


def model_ref(folder: Path) -> InputRef:
    """The encoder folder as an input: a hash over its files (it has no manifest)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(folder)}:{sha256_file(path)}\n".encode())
    return InputRef(path=str(folder), schema_name="biencoder", fingerprint=digest.hexdigest())


def load_encoder(dense: DenseParams):  # type: ignore[no-untyped-def]
    """The bi-encoder with this stage's truncation, for documents and queries alike."""
    from retrollm.retrieval.scorer import BiEncoderScorer

    return BiEncoderScorer(dense.model, max_length=dense.max_length, batch_size=dense.batch_size)


SHARD_SCHEMA = "dense-shard"
CODE = [  # what decides a shard's bytes
    "retrollm/retrieval/dense.py",
    "retrollm/retrieval/scorer.py",
    "retrollm/retrieval/shards.py",
]


def embed_shards(
    dense: DenseParams, paths: Paths, ray: RayParams, model: InputRef, out: Path
) -> tuple[int, int, list[dict[str, object]], int]:
    """One embeddings folder per corpus shard (a shard of the last output made with these
    params, weights and code from the same corpus shard is copied), then the listing
    load_dense reads; returns the documents, the dimension, the shard list and how many
    shards were copied."""
    shard_params = dense.model_dump(mode="json", include={"max_length", "batch_size"})
    code = InputRef(path=CODE[0], schema_name="code", fingerprint=code_fingerprint(CODE))
    shard_manifest = {
        "schema_name": SHARD_SCHEMA,
        "schema_version": DENSE_VERSION,
        "stage": "dense_index",
        "params": shard_params,
    }
    plan = plan_shard_jobs(
        paths.corpus,
        CORPUS_SCHEMA,
        {"documents": DOCUMENTS_FILE},
        dense.index,
        out,
        shard_manifest,
        {"model": model, "code": code},
    )
    shared = shard_params | {"model": str(dense.model.resolve()), "threads": dense.threads}
    run_jobs(embed_dense_shard, plan.calls, ray, shared, "embed")
    shards = [info for info, _ in plan.shards]
    rows, dim = 0, 0
    for info in shards:
        if not (out / info.folder / "manifest.json").is_file():
            raise ArtifactError(f"{out / info.folder}: the shard job wrote no manifest")
        part = np.load(out / info.folder / DenseRetriever.FILE, mmap_mode="r")
        if part.shape[0] != info.n_docs:
            raise ArtifactError(
                f"{out / info.folder}: {part.shape[0]} rows for {info.n_docs} documents"
            )
        rows, dim = rows + int(part.shape[0]), int(part.shape[1])
    write_listing(out, shards, DenseRetriever.META, n_docs=rows, dim=dim)
    return rows, dim, plan.listing(), plan.reused


def main(dense: DenseParams, paths: Paths, ray: RayParams | None = None) -> dict[str, int]:
    ray = ray or RayParams()
    torch.set_num_threads(dense.threads)
    corpus_files = data_files(paths.corpus, CORPUS_SCHEMA, [DOCUMENTS_FILE])
    corpus_ref = checked_input(paths.corpus, CORPUS_SCHEMA, corpus_files)
    asset_ref(paths.assets, dense.model, verify_contents())  # model_ref hashes it below
    model = model_ref(dense.model)
    sharded = listed_shards(read_manifest(paths.corpus, CORPUS_SCHEMA), paths.corpus) is not None
    with atomic_dir(dense.index) as out:
        extra: dict[str, object] = {}
        reused = 0
        if sharded:
            n_docs, dim, extra[SHARDS_KEY], reused = embed_shards(dense, paths, ray, model, out)
        else:
            texts = [record.contents for record in load_corpus(paths.corpus)]
            retriever = DenseRetriever.build(
                load_encoder(dense), texts, batch_size=DENSE_CHUNK, progress=True
            )
            retriever.save(out)
            n_docs, dim = retriever.n_docs, int(retriever.embeddings.shape[1])
        write_manifest(
            out,
            Manifest(
                schema_name=DENSE_SCHEMA,
                schema_version=DENSE_VERSION,
                stage="dense_index",
                params=dense.model_dump(mode="json", exclude={"threads"}),
                inputs={"corpus": corpus_ref, "model": model},
                counts={"documents": n_docs},
                extra={"dim": int(dim)} | extra,
            ),
        )
    # How many shards were copied is this run's history, not the artifact's: printed only.
    return {"documents": n_docs} | ({"shards_reused": reused} if sharded else {})


if __name__ == "__main__":
    run_stage(
        "dense_index",
        lambda: main(load_params("evaluate.dense", DenseParams), load_paths(), load_ray_params()),
    )
