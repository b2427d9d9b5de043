"""Stage build_rag_trainset: training targets of the rag-lora baseline.

    python -m stages.build_rag_trainset

Steps: read the questions and answers of build_trainset's targets (the same training
questions RetroLLM's adapter learns from), measure recall@k of bm25 and dense passages on
them and keep the better retriever (or the one `retriever` names), write for each question
the evaluation's RAG prompt over its top-k passages followed by the gold answer
(retrollm.training.rag_trainset), and record the choice in the manifest, where evaluate
reads it for the rag-lora cells.
"""

from __future__ import annotations

import os

# Threads that wait for work sleep instead of spinning (stages/train.py says why).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from collections import Counter
from collections.abc import Callable
from typing import Literal

import torch
from pydantic import Field
from tqdm.auto import tqdm

from retrollm.artifacts import (
    ArtifactError,
    atomic_dir,
    input_ref,
    read_manifest,
    read_records,
    write_json,
    write_manifest,
    write_records,
)
from retrollm.baselines import BaselineConfig, PassageFormatter, SearchFn
from retrollm.corpus import load_corpus
from retrollm.models import load_tokenizer, tokenizer_fingerprint
from retrollm.retrieval.rag import Retriever, bm25_search, dense_search
from retrollm.tokenization import load_doc_offsets
from retrollm.training.rag_trainset import choose_retriever, rag_example
from schemas import Manifest
from schemas.training import TrainExample
from stages.common import DenseParams, Paths, StageParams, load_params, load_paths, run_stage

SCHEMA_NAME = "trainset"  # the records are TrainExamples, read by the same train stage
SCHEMA_VERSION = 1


class BuildRagTrainsetParams(StageParams):
    """The `build_rag_trainset:` section of params.yaml."""

    retriever: Literal["auto", "bm25", "dense"] = Field(
        "auto",
        description="Passages of the prompt: auto picks the retriever with the higher "
        "recall@k on these training questions (never the test questions).",
    )
    max_tokens: int = Field(
        2048, ge=16, description="Longer sequences are dropped (counted); RAG prompts ~700."
    )
    threads: int = Field(2, ge=1, description="torch CPU threads (dense query embedding).")
    excerpt: int = Field(5, ge=0, description="Examples copied to examples.json for people.")


def searches(
    texts: list[str], dense: DenseParams, wanted: str
) -> dict[Retriever, Callable[[], SearchFn]]:
    """Lazily built search functions: only the retrievers `wanted` ever load."""
    every: dict[Retriever, Callable[[], SearchFn]] = {
        "bm25": lambda: bm25_search(texts),
        "dense": lambda: dense_search(
            dense.index, dense.model, dense.max_length, dense.batch_size, len(texts)
        ),
    }
    return every if wanted == "auto" else {wanted: every[wanted]}  # type: ignore[index]


def main(
    params: BuildRagTrainsetParams, baselines: BaselineConfig, dense: DenseParams, paths: Paths
) -> dict[str, int]:
    torch.set_num_threads(params.threads)
    inputs = {
        "model": input_ref(paths.model, "model"),
        "corpus": input_ref(paths.corpus, "corpus"),
        "tokens": input_ref(paths.tokens, "tokens"),
        "trainset": input_ref(paths.trainset, "trainset"),
    }
    tokenizer = load_tokenizer(paths.model)
    fingerprint = tokenizer_fingerprint(tokenizer)
    if read_manifest(paths.trainset, "trainset").extra.get("tokenizer_fingerprint") != fingerprint:
        raise ArtifactError(f"{paths.trainset}: built with another tokenizer than {paths.model}")
    sources = list(read_records(paths.trainset / "train.msgpack", TrainExample))
    if not sources:
        raise ArtifactError(f"{paths.trainset}/train.msgpack: no training examples")
    corpus = load_corpus(paths.corpus)
    texts = [record.contents for record in corpus]
    offsets = load_doc_offsets(paths.tokens)
    passages = PassageFormatter(tokenizer, corpus, offsets, baselines.max_passage_tokens)

    built = searches(texts, dense, params.retriever)
    choice = choose_retriever(built, texts, sources, baselines.top_k)
    print(f"[build_rag_trainset] recall@{baselines.top_k} {choice.recall}: {choice.chosen}")
    search = built[choice.chosen]()  # type: ignore[index]
    eos = int(tokenizer.eos_token_id)
    counts: Counter[str] = Counter()
    examples: list[TrainExample] = []
    for source in tqdm(sources, desc="rag targets", unit="q"):
        rows, _ = search(source.question, baselines.top_k)
        example = rag_example(tokenizer, source, [int(r) for r in rows], passages, eos)
        counts["questions"] += 1
        if len(example.input_ids) > params.max_tokens:
            counts["dropped_too_long"] += 1
            continue
        counts["kept"] += 1
        examples.append(example)
    if not examples:
        raise ArtifactError(f"no rag target fits in {params.max_tokens} tokens")

    n_tokens = [len(e.input_ids) for e in examples]
    with atomic_dir(paths.rag_trainset) as out:
        counts["examples"] = write_records(out / "train.msgpack", examples)
        write_json(
            out / "examples.json",
            [
                {"id": e.id, "prompt": tokenizer.decode(e.input_ids), "answer": e.answer}
                for e in examples[: params.excerpt]
            ],
        )
        write_manifest(
            out,
            Manifest(
                schema_name=SCHEMA_NAME,
                schema_version=SCHEMA_VERSION,
                stage="build_rag_trainset",
                params={
                    **params.model_dump(mode="json", exclude={"threads", "excerpt"}),
                    "top_k": baselines.top_k,
                    "max_passage_tokens": baselines.max_passage_tokens,
                },
                inputs=inputs,
                counts=dict(counts),
                extra={
                    "tokenizer_fingerprint": fingerprint,
                    "kind": "rag",
                    "retriever": choice.chosen,
                    "train_recall_at_k": {k: round(v, 2) for k, v in choice.recall.items()},
                    "mean_tokens": round(sum(n_tokens) / len(n_tokens), 1),
                    "max_tokens": max(n_tokens),
                },
            ),
        )
    return dict(counts)


if __name__ == "__main__":
    run_stage(
        "build_rag_trainset",
        lambda: main(
            load_params("build_rag_trainset", BuildRagTrainsetParams),
            load_params("evaluate.baselines", BaselineConfig),
            load_params("evaluate.dense", DenseParams),
            load_paths(),
        ),
    )
