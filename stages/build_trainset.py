"""Stage build_trainset: RetroLLM training targets with loss masks (docs/method.md §8).

Steps: check the model, index, SPLADE and QA manifests (all made with one tokenizer and
corpus), sample each dataset's answerable training questions, and for each batch of
questions run the decoder's own retrieval with the `decode:` section's settings
(retrollm.training.trainset: question clues and SPLADE terms -> fused documents ->
windows -> the same scorer and top-k cut), take k_evidence evidences from the kept
windows, assert each target is reachable under the decoder's constraints, and write
train.msgpack, a few readable examples and the manifest with kept/dropped counts.
"""

from __future__ import annotations

import os

# Threads that wait for work sleep instead of spinning. Set before torch loads OpenMP: on a
# shared or busy machine spinning threads steal the cores they wait for (measured here with
# one other job running: 3 training steps took 219 s spinning, 52 s passive).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import random
from collections import Counter
from pathlib import Path

import torch
from pydantic import Field
from tqdm.auto import tqdm

from retrollm.artifacts import (
    ArtifactError,
    atomic_dir,
    read_manifest,
    read_records,
    write_json,
    write_manifest,
    write_records,
)
from retrollm.chain import asset_ref, check_chain
from retrollm.corpus import CORPUS_SCHEMA, DOCUMENTS_FILE, load_corpus
from retrollm.decoding.config import DecodeConfig
from retrollm.decoding.contexts import RetrievalContexts
from retrollm.decoding.strategies import resolve_strategy
from retrollm.index import load_index
from retrollm.models import (
    SpecialTokenIds,
    load_tokenizer,
    prompt_ids,
    resolve_device,
    tokenizer_files,
    tokenizer_fingerprint,
)
from retrollm.qa import load_qa
from retrollm.retrieval.scorer import load_scorer
from retrollm.sharding import data_files
from retrollm.training.masks import masked_share
from retrollm.training.targets import Special
from retrollm.training.trainset import (
    DECODE_KEYS,
    TrainsetBuilder,
    TrainsetConfig,
    sparse_query,
)
from schemas import Manifest, QARecord
from schemas.retrieval import SparseQuery
from schemas.training import TrainExample
from stages.common import (
    Paths,
    StageParams,
    checked_input,
    load_params,
    load_paths,
    run_stage,
    verify_contents,
)

SCHEMA_NAME = "trainset"
SCHEMA_VERSION = 1


class BuildTrainsetParams(TrainsetConfig, StageParams):
    """The `build_trainset:` section of params.yaml: TrainsetConfig's fields (inherited)
    plus which questions and how the stage runs."""

    datasets: list[str] = Field(["nq", "triviaqa"], description="prepare_qa datasets to use.")
    answerable_only: bool = Field(
        True, description="Only questions whose answer occurs in the corpus (others drop anyway)."
    )
    limit_per_dataset: int | None = Field(
        None, ge=1, description="Questions sampled per dataset with `seed` (null: all)."
    )
    seed: int = Field(0, description="Seed of the question sample.")
    multihop_datasets: list[str] = Field(
        ["hotpotqa", "2wikimultihopqa"], description="Datasets that use k_evidence_multihop."
    )
    k_evidence_multihop: int = Field(10, ge=1, description="k_evidence for multi-hop datasets.")
    batch_size: int = Field(32, ge=1, description="Questions retrieved together.")
    cache_windows: int = Field(
        200_000, ge=0, description="Window vectors kept by text across questions (0: none)."
    )
    threads: int = Field(2, ge=1, description="torch CPU threads.")
    excerpt: int = Field(20, ge=0, description="Examples copied to examples.jsonl for people.")

    def config(self, dataset: str) -> TrainsetConfig:
        config = self.trainset()
        if dataset in self.multihop_datasets:
            config = config.model_copy(update={"k_evidence": self.k_evidence_multihop})
        return config


def questions(paths: Paths, dataset: str, params: BuildTrainsetParams) -> list[QARecord]:
    records = load_qa(paths.qa / dataset, "train")
    if params.answerable_only:
        records = [r for r in records if r.answerable is not False]
    if params.limit_per_dataset is not None and len(records) > params.limit_per_dataset:
        rng = random.Random(params.seed)
        chosen = sorted(rng.sample(range(len(records)), params.limit_per_dataset))
        records = [records[i] for i in chosen]
    return records


def sparse_queries(paths: Paths, dataset: str) -> dict[str, SparseQuery]:
    source = paths.splade / "queries" / dataset / "train.msgpack"
    if not source.is_file():
        raise ArtifactError(f"{source}: missing; rerun sparse_expand after prepare_qa {dataset}")
    return {q.id: q for q in read_records(source, SparseQuery)}


def retrieval(paths: Paths, decode: DecodeConfig, cache_windows: int) -> RetrievalContexts:
    """The decoder's retrieval over the pipeline's artifacts, as evaluate loads it."""
    tokenizer = load_tokenizer(paths.model)
    fingerprint = tokenizer_fingerprint(tokenizer)
    # By fingerprint, not by count: the same documents in another order must not pass.
    check_chain(paths, fingerprint, splade=True)
    index = load_index(paths.index, expected_tokenizer_fingerprint=fingerprint)
    corpus = load_corpus(paths.corpus)
    scorer_dir = decode.scorer_model or Path(paths.assets) / "biencoder"
    asset_ref(paths.assets, Path(scorer_dir), verify_contents())
    scorer = load_scorer(
        decode.scorer, scorer_dir, decode.scorer_max_length, str(resolve_device(decode.device)),
        activation=decode.scorer_activation,
    )  # fmt: skip
    strategy = resolve_strategy(decode)
    return RetrievalContexts(index, tokenizer, scorer, decode, strategy, corpus, cache_windows)


def main(params: BuildTrainsetParams, decode: DecodeConfig, paths: Paths) -> dict[str, int]:
    torch.set_num_threads(params.threads)
    model_files = tokenizer_files(read_manifest(paths.model, "model").files)
    datasets = params.datasets
    queries = [f"queries/{d}/train.msgpack" for d in datasets]
    inputs = {
        "model": checked_input(paths.model, "model", model_files),
        "corpus": checked_input(
            paths.corpus, CORPUS_SCHEMA, data_files(paths.corpus, CORPUS_SCHEMA, [DOCUMENTS_FILE])
        ),
        "index": checked_input(paths.index, "index"),
        "splade": checked_input(paths.splade, "splade", queries),
        **{f"qa/{d}": checked_input(paths.qa / d, "qa", ["train.msgpack"]) for d in datasets},
    }
    contexts = retrieval(paths, decode, params.cache_windows)
    tokenizer = contexts.tokenizer
    fingerprint = tokenizer_fingerprint(tokenizer)
    ids = SpecialTokenIds.from_tokenizer(tokenizer)
    special = Special(**ids.as_dict(), eos=int(tokenizer.eos_token_id))

    counts: Counter[str] = Counter()
    ranks: Counter[int] = Counter()
    examples: list[TrainExample] = []
    for dataset in params.datasets:
        builder = TrainsetBuilder(
            params.config(dataset), decode, contexts, special, lambda q: prompt_ids(tokenizer, q)
        )
        sparse = sparse_queries(paths, dataset)
        records = questions(paths, dataset, params)
        with tqdm(total=len(records), desc=dataset, unit="q") as bar:
            for lo in range(0, len(records), params.batch_size):
                batch = records[lo : lo + params.batch_size]
                queries = []
                for record in batch:
                    found = sparse.get(record.id)
                    if found is None:
                        raise ArtifactError(
                            f"{paths.splade}: no SPLADE entry for {dataset} {record.id}"
                        )
                    queries.append(sparse_query(
                        record.id, record.question, record.golden_answers, found, decode
                    ))  # fmt: skip
                for retrieved in builder.retrieve(queries):
                    example, outcome = builder.build(dataset, retrieved)
                    counts["questions"] += 1
                    counts[f"{dataset}_questions"] += 1
                    counts["kept" if example else f"dropped_{outcome}"] += 1
                    if example is not None:
                        counts[f"{dataset}_kept"] += 1
                        examples.append(example)
                        relevant = [i for i, e in enumerate(example.evidences) if e.relevant]
                        ranks[relevant[0] + 1 if relevant else 0] += 1
                bar.update(len(batch))
    if not examples:
        raise ArtifactError("no training example survived; check the datasets and params")

    n_tokens = [len(e.input_ids) for e in examples]
    with atomic_dir(paths.trainset) as out:
        counts["examples"] = write_records(out / "train.msgpack", examples)
        write_json(
            out / "examples.json",
            [e.model_dump(exclude={"input_ids", "weights"}) for e in examples[: params.excerpt]],
        )
        write_manifest(
            out,
            Manifest(
                schema_name=SCHEMA_NAME,
                schema_version=SCHEMA_VERSION,
                stage="build_trainset",
                params={
                    **params.model_dump(mode="json"),
                    "decode": decode.model_dump(mode="json", include=set(DECODE_KEYS)),
                },
                inputs=inputs,
                counts=dict(counts),
                extra={
                    "tokenizer_fingerprint": fingerprint,
                    "special_token_ids": ids.as_dict(),
                    "relevant_share": round(
                        (counts["kept"] - ranks[0]) / max(1, counts["questions"]), 4
                    ),
                    "first_relevant_rank": {str(k): v for k, v in sorted(ranks.items())},
                    "mean_tokens": round(sum(n_tokens) / len(n_tokens), 1),
                    "max_tokens": max(n_tokens),
                    "mean_evidences": round(
                        sum(len(e.evidences) for e in examples) / len(examples), 2
                    ),
                    "masked_share_of_target": round(
                        sum(masked_share(e.roles) for e in examples) / len(examples), 3
                    ),
                    "relevance": "gold answer in the evidence (normalized, whole words); "
                    "no LLM confirmation (the paper's 70B check is not available offline)",
                },
            ),
        )
    return dict(counts)


if __name__ == "__main__":
    run_stage(
        "build_trainset",
        lambda: main(
            load_params("build_trainset", BuildTrainsetParams),
            load_params("decode", DecodeConfig),
            load_paths(),
        ),
    )
