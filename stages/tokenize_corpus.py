"""Stage tokenize_corpus: token ids of every document with the prepared model's tokenizer.

Steps: check the corpus and model manifests, load the model's tokenizer and check it is
the one its manifest names, load the documents, tokenize them into tokens.npy and
doc_offsets.npy, write the manifest (with the tokenizer fingerprint the index checks).
"""

from __future__ import annotations

from pydantic import Field
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from retrollm.artifacts import ArtifactError, atomic_dir, read_manifest, write_manifest
from retrollm.corpus import CORPUS_SCHEMA, DOCUMENTS_FILE, load_corpus
from retrollm.models import load_tokenizer, tokenizer_files, tokenizer_fingerprint
from retrollm.tokenization import tokenize_corpus
from schemas import Manifest
from stages.common import Paths, StageParams, checked_input, load_params, load_paths, run_stage

SCHEMA_VERSION = 1


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


def main(params: TokenizeCorpusParams, paths: Paths) -> dict[str, int]:
    inputs = {
        "corpus": checked_input(paths.corpus, CORPUS_SCHEMA, [DOCUMENTS_FILE]),
        "model": checked_input(paths.model, "model", model_tokenizer_files(paths)),
    }
    tokenizer = load_tokenizer(paths.model)
    fingerprint = checked_fingerprint(paths, tokenizer)
    documents = load_corpus(paths.corpus)
    expected = read_manifest(paths.corpus, CORPUS_SCHEMA).counts.get("documents", len(documents))
    if len(documents) != expected:
        raise ArtifactError(f"{paths.corpus}: {len(documents)} documents, manifest says {expected}")

    with atomic_dir(paths.tokens) as out:
        result = tokenize_corpus(
            tokenizer,
            (document.contents for document in documents),
            out,
            batch_size=params.batch_size,
            total=len(documents),
        )
        counts = {
            "documents": result.documents,
            "tokens": result.tokens,
            "empty_documents": result.empty_documents,
        }
        write_manifest(
            out,
            Manifest(
                schema_name="tokens",
                schema_version=SCHEMA_VERSION,
                stage="tokenize_corpus",
                params=params.model_dump(mode="json"),
                inputs=inputs,
                counts=counts,
                extra={
                    "tokenizer_fingerprint": fingerprint,
                    "dtype": result.dtype,
                    "vocab_size": result.vocab_size,
                },
            ),
        )
    return counts


if __name__ == "__main__":
    run_stage(
        "tokenize_corpus",
        lambda: main(load_params("tokenize_corpus", TokenizeCorpusParams), load_paths()),
    )
