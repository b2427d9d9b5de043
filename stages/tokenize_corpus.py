"""Stage tokenize_corpus: token ids of every document with the prepared model's tokenizer.

Steps: check the corpus and model manifests, load the model's tokenizer and check it is
the one its manifest names, tokenize the documents into tokens.npy and doc_offsets.npy
(a sharded corpus: one shard job per corpus shard, fanned out on Ray, an unchanged
shard of the last run copied instead), write the manifest (with the tokenizer
fingerprint the index checks).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from retrollm.artifacts import ArtifactError, atomic_dir, read_manifest, write_manifest
from retrollm.corpus import CORPUS_SCHEMA, DOCUMENTS_FILE, load_corpus
from retrollm.fanout import RayParams, load_ray_params, run_jobs
from retrollm.models import load_tokenizer, tokenizer_files, tokenizer_fingerprint
from retrollm.sharding import SHARDS_KEY, data_files, listed_shards, reuse_shard, shard_paths
from retrollm.tokenization import smallest_uint, tokenize_corpus, tokenize_shard
from schemas import InputRef, Manifest
from stages.common import Paths, StageParams, checked_input, load_params, load_paths, run_stage

SCHEMA_VERSION = 1
SHARD_SCHEMA = "tokens-shard"


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
    sharded = listed_shards(corpus_manifest) is not None
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
    """One job per corpus shard; a shard of the last output made with these params from
    the same corpus shard and model is copied, not redone."""
    shard_params = params.model_dump(mode="json")
    per_shard: dict[str, dict[str, int]] = {}
    calls = []
    corpus_shards = shard_paths(paths.corpus, CORPUS_SCHEMA)
    for info, folder in corpus_shards:
        corpus_shard = read_manifest(folder, "corpus-shard")
        source = InputRef(
            path=str(folder), schema_name="corpus-shard", fingerprint=corpus_shard.fingerprint
        )
        made_from = {"corpus": source.fingerprint, "model": model.fingerprint}
        previous = paths.tokens / info.folder
        reused = reuse_shard(previous, out / info.folder, SHARD_SCHEMA, shard_params, made_from)
        if reused is not None:
            per_shard[info.folder] = reused.counts
            continue
        manifest = {
            "schema_name": SHARD_SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "stage": "tokenize_corpus",
            "params": shard_params,
            "inputs": {"corpus": source, "model": model},
        }
        documents, target = str(folder / DOCUMENTS_FILE), str(out / info.folder)
        calls.append({"documents": documents, "out": target, "manifest": manifest})
    shared = {"tokenizer": tokenizer, "batch_size": params.batch_size}
    done = run_jobs(tokenize_shard, calls, ray, shared, "tokenize")
    for call, counts in zip(calls, done, strict=True):
        per_shard[Path(call["out"]).name] = counts
    shards = [info.model_dump() for info, _ in corpus_shards]
    totals = {
        key: sum(c[key] for c in per_shard.values()) for key in next(iter(per_shard.values()))
    }
    return totals, shards, len(shards) - len(calls)


if __name__ == "__main__":
    run_stage(
        "tokenize_corpus",
        lambda: main(
            load_params("tokenize_corpus", TokenizeCorpusParams), load_paths(), load_ray_params()
        ),
    )
