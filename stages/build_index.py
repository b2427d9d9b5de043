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

import numpy as np
from pydantic import Field

from retrollm.artifacts import (
    ArtifactError,
    atomic_dir,
    code_fingerprint,
    read_manifest,
    write_manifest,
)
from retrollm.fanout import RayParams, load_ray_params, run_jobs
from retrollm.index import CorpusIndex
from retrollm.index.sharded_build import build_index_shard
from retrollm.index.shards import ShardEntry
from retrollm.index.shards import write_manifest as write_shards_json
from retrollm.sharding import (
    SHARDS_KEY,
    data_files,
    listed_shards,
    plan_shard_jobs,
)
from retrollm.tokenization import OFFSETS_FILE, TOKENS_FILE, load_tokens
from schemas import InputRef, Manifest
from stages.common import Paths, StageParams, checked_input, load_params, load_paths, run_stage

SCHEMA_VERSION = 1
SHARD_SCHEMA = "index-shard"
CODE = ["retrollm/index"]  # what decides a shard index's bytes


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
    sharded = listed_shards(tokens_manifest, paths.tokens) is not None
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
    and this code from the same tokens shard is copied), then shards.json, which
    ShardedIndex loads."""
    shard_params = params.model_dump(mode="json")
    code = InputRef(path="retrollm/index", schema_name="code", fingerprint=code_fingerprint(CODE))
    shard_manifest = {
        "schema_name": SHARD_SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "stage": "build_index",
        "params": shard_params,
    }
    files = {"tokens": TOKENS_FILE, "doc_offsets": OFFSETS_FILE}
    plan = plan_shard_jobs(
        paths.tokens, "tokens", files, paths.index, out, shard_manifest, {"code": code}
    )
    entries, token_start = [], 0
    for info, folder in plan.shards:
        # The shard's size from its verified offsets, not from any manifest's counts.
        n_tokens = int(np.load(folder / OFFSETS_FILE)[-1])
        entries.append(ShardEntry(info.folder, info.doc_start, info.n_docs, token_start, n_tokens))
        token_start += n_tokens
    shared = {"backend": params.backend, "tokenizer_fingerprint": fingerprint}
    run_jobs(build_index_shard, plan.calls, ray, shared, "index")
    for entry in entries:
        if not (out / entry.folder / "manifest.json").is_file():
            raise ArtifactError(f"{out / entry.folder}: the shard job wrote no manifest")
    write_shards_json(out, entries, fingerprint, params.backend)
    totals = {"documents": sum(e.n_docs for e in entries), "tokens": token_start}
    return totals, plan.listing(), plan.reused


if __name__ == "__main__":
    # libdivsufsort runs under OpenMP; a fixed thread count keeps builds reproducible in time.
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    run_stage(
        "build_index",
        lambda: main(load_params("build_index", BuildIndexParams), load_paths(), load_ray_params()),
    )
