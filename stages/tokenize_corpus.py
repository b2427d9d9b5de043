"""Stage tokenize_corpus: token ids of every document with the prepared model's tokenizer.

Steps: check the corpus and model manifests, load the model's tokenizer and check it is
the one its manifest names, tokenize the documents into tokens.npy and doc_offsets.npy
(a sharded corpus: one shard job per corpus shard, fanned out on Ray, an unchanged
shard of the last run copied instead), write the manifest (with the tokenizer
fingerprint the index checks).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import Field
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from retrollm.artifacts import (
    MANIFEST,
    ArtifactError,
    atomic_dir,
    code_fingerprint,
    read_manifest,
    write_manifest,
)
from retrollm.corpus import CORPUS_SCHEMA, DOCUMENTS_FILE, load_corpus
from retrollm.fanout import RayParams, load_ray_params, run_jobs
from retrollm.models import load_tokenizer, tokenizer_files, tokenizer_fingerprint
from retrollm.sharding import (
    SHARDS_KEY,
    data_files,
    listed_shards,
    plan_shard_jobs,
)
from retrollm.tokenization import OFFSETS_FILE, smallest_uint, tokenize_corpus, tokenize_shard
from schemas import InputRef, Manifest
from stages.common import Paths, StageParams, checked_input, load_params, load_paths, run_stage

SCHEMA_VERSION = 1
SHARD_SCHEMA = "tokens-shard"
CODE = ["retrollm/tokenization.py"]  # what decides a shard's ids, beside the tokenizer


class TokenizeCorpusParams(StageParams):
    batch_size: int = Field(512, ge=1, description="Documents per fast-tokenizer batch.")


def model_tokenizer_files(paths: Paths) -> list[str]:
    """The model folder's files its tokenizer reads (not the weights)."""
    return tokenizer_files(read_manifest(paths.model, "model").files)


def checked_fingerprint(paths: Paths, tokenizer: PreTrainedTokenizerBase) -> str:
    """The model folder's tokenizer must be the one its manifest was written for."""
    expected = read_manifest(paths.model, "model").extra.get("tokenizer_fingerprint")
    actual = tokenizer_fingerprint(tokenizer)
    if actual != expected:
        raise ArtifactError(
            f"{paths.model}: tokenizer fingerprint {actual[:12]} does not match its manifest "
            f"({str(expected)[:12]}); rerun prepare_model"
        )
    return actual


def main(
    params: TokenizeCorpusParams, paths: Paths, ray: RayParams | None = None
) -> dict[str, int]:
    ray = ray or RayParams()
    corpus_files = data_files(paths.corpus, CORPUS_SCHEMA, [DOCUMENTS_FILE])
    inputs = {
        "corpus": checked_input(paths.corpus, CORPUS_SCHEMA, corpus_files),
        "model": checked_input(paths.model, "model", model_tokenizer_files(paths)),
    }
    tokenizer = load_tokenizer(paths.model)
    fingerprint = checked_fingerprint(paths, tokenizer)
    corpus_manifest = read_manifest(paths.corpus, CORPUS_SCHEMA)
    sharded = listed_shards(corpus_manifest, paths.corpus) is not None
    with atomic_dir(paths.tokens) as out:
        reused = 0
        if sharded:
            model = inputs["model"]
            counts, shards, reused = tokenize_shards(params, paths, ray, tokenizer, model, out)
        else:
            counts, shards = tokenize_whole(params, paths, tokenizer, out), None
        expected = corpus_manifest.counts.get("documents", counts["documents"])
        if counts["documents"] != expected:
            raise ArtifactError(
                f"{paths.corpus}: {counts['documents']} documents, manifest says {expected}"
            )
        extra = {
            "tokenizer_fingerprint": fingerprint,
            "dtype": smallest_uint(len(tokenizer)).name,
            "vocab_size": len(tokenizer),
        }
        if shards is not None:
            extra[SHARDS_KEY] = shards
        write_manifest(
            out,
            Manifest(
                schema_name="tokens",
                schema_version=SCHEMA_VERSION,
                stage="tokenize_corpus",
                params=params.model_dump(mode="json"),
                inputs=inputs,
                counts=counts,
                extra=extra,
            ),
        )
    # How many shards were copied is this run's history, not the artifact's: printed only.
    return counts | ({"shards_reused": reused} if sharded else {})


def tokenize_whole(
    params: TokenizeCorpusParams, paths: Paths, tokenizer: PreTrainedTokenizerBase, out: Path
) -> dict[str, int]:
    documents = load_corpus(paths.corpus)
    result = tokenize_corpus(
        tokenizer,
        (document.contents for document in documents),
        out,
        batch_size=params.batch_size,
        total=len(documents),
    )
    return {
        "documents": result.documents,
        "tokens": result.tokens,
        "empty_documents": result.empty_documents,
    }


def tokenize_shards(
    params: TokenizeCorpusParams,
    paths: Paths,
    ray: RayParams,
    tokenizer: PreTrainedTokenizerBase,
    model: InputRef,
    out: Path,
) -> tuple[dict[str, int], list[dict[str, object]], int]:
    """One job per corpus shard; a shard of the last output made with these params and
    this code from the same corpus shard and model is copied, not redone."""
    shard_params = params.model_dump(mode="json")
    code = InputRef(
        path="retrollm/tokenization.py", schema_name="code", fingerprint=code_fingerprint(CODE)
    )
    shard_manifest = {
        "schema_name": SHARD_SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "stage": "tokenize_corpus",
        "params": shard_params,
    }
    plan = plan_shard_jobs(
        paths.corpus,
        CORPUS_SCHEMA,
        {"documents": DOCUMENTS_FILE},
        paths.tokens,
        out,
        shard_manifest,
        {"model": model, "code": code},
    )
    shared = {"tokenizer": tokenizer, "batch_size": params.batch_size}
    run_jobs(tokenize_shard, plan.calls, ray, shared, "tokenize")
    per_shard = [shard_counts(out / info.folder) for info, _ in plan.shards]
    totals = {key: sum(counts[key] for counts in per_shard) for key in per_shard[0]}
    return totals, plan.listing(), plan.reused


def shard_counts(folder: Path) -> dict[str, int]:
    """A tokens shard's counts from its offsets (written by a job or copied: the file is
    the truth, whatever a manifest says)."""
    if not (folder / MANIFEST).is_file():
        raise ArtifactError(f"{folder}: the shard job wrote no manifest")
    sizes = np.diff(np.load(folder / OFFSETS_FILE))
    return {
        "documents": int(sizes.size),
        "tokens": int(sizes.sum()),
        "empty_documents": int((sizes == 0).sum()),
    }


if __name__ == "__main__":
    run_stage(
        "tokenize_corpus",
        lambda: main(
            load_params("tokenize_corpus", TokenizeCorpusParams), load_paths(), load_ray_params()
        ),
    )
