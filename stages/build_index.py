"""Stage build_index: the suffix-array index over the tokenized corpus.

Steps: check the tokens manifest, memory-map the token ids and document offsets, build
the index with the chosen backend (sharded tokens: one shard index per tokens shard,
fanned out on Ray, an unchanged shard of the last run copied instead, listed in
shards.json), save it with the tokenizer fingerprint (so a decoder with another tokenizer
refuses it), write the manifest.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field

from retrollm.artifacts import atomic_dir, read_manifest, write_manifest
from retrollm.fanout import RayParams, load_ray_params, run_jobs
from retrollm.index import CorpusIndex
from retrollm.index.sharded_build import build_index_shard
from retrollm.index.shards import ShardEntry
from retrollm.index.shards import write_manifest as write_shards_json
from retrollm.sharding import SHARDS_KEY, data_files, listed_shards, reuse_shard, shard_paths
from retrollm.tokenization import OFFSETS_FILE, TOKENS_FILE, load_tokens
from schemas import InputRef, Manifest
from stages.common import Paths, StageParams, checked_input, load_params, load_paths, run_stage

SCHEMA_VERSION = 1
SHARD_SCHEMA = "index-shard"


class BuildIndexParams(StageParams):
    backend: Literal["pydivsufsort", "pysais"] = Field(
        "pydivsufsort", description="Suffix-array library; both give byte-identical indexes."
    )


def main(params: BuildIndexParams, paths: Paths, ray: RayParams | None = None) -> dict[str, int]:
    ray = ray or RayParams()
    # The bytes are checked before use: a flipped one would flow into the index unnoticed.
    files = data_files(paths.tokens, "tokens", [TOKENS_FILE, OFFSETS_FILE])
    tokens_ref = checked_input(paths.tokens, "tokens", files)
    tokens_manifest = read_manifest(paths.tokens, "tokens")
    fingerprint = tokens_manifest.extra["tokenizer_fingerprint"]
    sharded = listed_shards(tokens_manifest) is not None
    with atomic_dir(paths.index) as out:
        extra: dict[str, object] = {"tokenizer_fingerprint": fingerprint}
        reused = 0
        if sharded:
            counts, extra[SHARDS_KEY], reused = build_shards(params, paths, ray, fingerprint, out)
        else:
            tokens, doc_offsets = load_tokens(paths.tokens, mmap=True)
            index = CorpusIndex.build(
                tokens, doc_offsets, backend=params.backend, tokenizer_fingerprint=fingerprint
            )
            counts = {"documents": index.n_docs, "tokens": index.n_tokens}
            index.save(out)
        write_manifest(
            out,
            Manifest(
                schema_name="index",
                schema_version=SCHEMA_VERSION,
                stage="build_index",
                params=params.model_dump(mode="json"),
                inputs={"tokens": tokens_ref},
                counts=counts,
                extra=extra,
            ),
        )
    # How many shards were copied is this run's history, not the artifact's: printed only.
    return counts | ({"shards_reused": reused} if sharded else {})


def build_shards(
    params: BuildIndexParams, paths: Paths, ray: RayParams, fingerprint: str, out: Path
) -> tuple[dict[str, int], list[dict[str, object]], int]:
    """One shard index per tokens shard (a shard of the last output made with these params
    from the same tokens shard is copied), then shards.json, which ShardedIndex loads."""
    shard_params = params.model_dump(mode="json")
    per_shard: dict[str, dict[str, int]] = {}
    calls = []
    tokens_shards = shard_paths(paths.tokens, "tokens")
    for info, folder in tokens_shards:
        tokens_shard = read_manifest(folder, "tokens-shard")
        source = InputRef(
            path=str(folder), schema_name="tokens-shard", fingerprint=tokens_shard.fingerprint
        )
        previous = paths.index / info.folder
        made_from = {"tokens": source.fingerprint}
        reused = reuse_shard(previous, out / info.folder, SHARD_SCHEMA, shard_params, made_from)
        if reused is not None:
            per_shard[info.folder] = reused.counts
            continue
        manifest = {
            "schema_name": SHARD_SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "stage": "build_index",
            "params": shard_params,
            "inputs": {"tokens": source},
        }
        target = str(out / info.folder)
        files = {"tokens": str(folder / TOKENS_FILE), "doc_offsets": str(folder / OFFSETS_FILE)}
        calls.append(files | {"out": target, "manifest": manifest})
    shared = {"backend": params.backend, "tokenizer_fingerprint": fingerprint}
    done = run_jobs(build_index_shard, calls, ray, shared, "index")
    for call, counts in zip(calls, done, strict=True):
        per_shard[Path(call["out"]).name] = counts
    entries, token_start = [], 0
    for info, _ in tokens_shards:
        n_tokens = per_shard[info.folder]["tokens"]
        entries.append(ShardEntry(info.folder, info.doc_start, info.n_docs, token_start, n_tokens))
        token_start += n_tokens
    write_shards_json(out, entries, fingerprint, params.backend)
    totals = {"documents": sum(e.n_docs for e in entries), "tokens": token_start}
    shards = [info.model_dump() for info, _ in tokens_shards]
    return totals, shards, len(tokens_shards) - len(calls)


if __name__ == "__main__":
    # libdivsufsort runs under OpenMP; a fixed thread count keeps builds reproducible in time.
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    run_stage(
        "build_index",
        lambda: main(load_params("build_index", BuildIndexParams), load_paths(), load_ray_params()),
    )
