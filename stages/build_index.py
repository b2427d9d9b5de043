"""Stage build_index: the suffix-array index over the tokenized corpus.

Steps: check the tokens manifest, memory-map the token ids and document offsets, build
the index with the chosen backend, save it with the tokenizer fingerprint (so a decoder
with another tokenizer refuses it), write the manifest.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field

from retrollm.artifacts import atomic_dir, read_manifest, write_manifest
from retrollm.index import CorpusIndex
from retrollm.tokenization import OFFSETS_FILE, TOKENS_FILE, load_tokens
from schemas import Manifest
from stages.common import Paths, StageParams, checked_input, load_params, load_paths, run_stage

SCHEMA_VERSION = 1


class BuildIndexParams(StageParams):
    backend: Literal["pydivsufsort", "pysais"] = Field(
        "pydivsufsort", description="Suffix-array library; both give byte-identical indexes."
    )


def main(params: BuildIndexParams, paths: Paths) -> dict[str, int]:
    # The bytes are checked before use: a flipped one would flow into the index unnoticed.
    tokens_ref = checked_input(paths.tokens, "tokens", [TOKENS_FILE, OFFSETS_FILE])
    tokens_manifest = read_manifest(paths.tokens, "tokens")
    fingerprint = tokens_manifest.extra["tokenizer_fingerprint"]
    tokens, doc_offsets = load_tokens(paths.tokens, mmap=True)

    index = CorpusIndex.build(
        tokens, doc_offsets, backend=params.backend, tokenizer_fingerprint=fingerprint
    )
    counts = {"documents": index.n_docs, "tokens": index.n_tokens}
    with atomic_dir(paths.index) as out:
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
                extra={"tokenizer_fingerprint": fingerprint},
            ),
        )
    return counts


if __name__ == "__main__":
    # libdivsufsort runs under OpenMP; a fixed thread count keeps builds reproducible in time.
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    run_stage(
        "build_index", lambda: main(load_params("build_index", BuildIndexParams), load_paths())
    )
