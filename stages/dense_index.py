"""Stage dense_index: bi-encoder embeddings of every corpus document, for rag-dense.

    python -m stages.dense_index

Embedding 10k documents takes many CPU minutes, far longer than answering a sample of
questions, so it is done once here and shared by every dataset's rag-dense run (and by a
DVC remote) instead of inside each evaluate cell. Output (`evaluate.dense.index`):
embeddings.npy, dense_meta.json (retrollm.retrieval.dense layout), manifest.json.
"""

from __future__ import annotations

import os

# Before torch loads: spinning OpenMP workers thrash when the cores are shared (measured
# here: 2 threads took 10x longer than 1 with other jobs running; passive waiting, none).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import hashlib
from pathlib import Path

import torch

from retrollm.artifacts import atomic_dir, sha256_file, write_manifest
from retrollm.chain import asset_ref
from retrollm.corpus import CORPUS_SCHEMA, DOCUMENTS_FILE, load_corpus
from retrollm.retrieval.dense import DENSE_SCHEMA, DENSE_VERSION
from retrollm.sharding import data_files
from schemas.manifest import InputRef, Manifest
from stages.common import (
    DenseParams,
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


def main() -> dict[str, int]:
    from retrollm.retrieval.dense import DenseRetriever

    dense = load_params("evaluate.dense", DenseParams)
    paths = load_paths()
    torch.set_num_threads(dense.threads)
    corpus_files = data_files(paths.corpus, CORPUS_SCHEMA, [DOCUMENTS_FILE])
    corpus_ref = checked_input(paths.corpus, CORPUS_SCHEMA, corpus_files)
    asset_ref(paths.assets, dense.model, verify_contents())  # model_ref hashes it below
    corpus = load_corpus(paths.corpus)
    encoder = load_encoder(dense)
    # Chunks of 1024: sentence-transformers sorts each chunk by length, so its batches
    # hold texts of similar length (little padding), and the bar still moves.
    texts = [record.contents for record in corpus]
    retriever = DenseRetriever.build(encoder, texts, batch_size=1024, progress=True)
    with atomic_dir(dense.index) as out:
        retriever.save(out)
        write_manifest(
            out,
            Manifest(
                schema_name=DENSE_SCHEMA,
                schema_version=DENSE_VERSION,
                stage="dense_index",
                params=dense.model_dump(mode="json", exclude={"threads"}),
                inputs={
                    "corpus": corpus_ref,
                    "model": model_ref(dense.model),
                },
                counts={"documents": retriever.n_docs},
                extra={"dim": int(retriever.embeddings.shape[1])},
            ),
        )
    return {"documents": retriever.n_docs}


if __name__ == "__main__":
    run_stage("dense_index", main)
