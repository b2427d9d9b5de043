"""Stage build_trainset: RetroLLM training targets with loss masks (RETROLLM.md 8).

Steps: check the model, index, SPLADE and QA manifests (all made with one tokenizer and
corpus), sample each dataset's answerable training questions, build one target per
question (retrollm.training.trainset: sentence-aligned evidence windows ranked by the
relevance scorer, cut after the first one holding a gold answer; clues from the question
and that evidence), assert each target is reachable under the decoder's constraints,
write train.msgpack, a few readable examples and the manifest with kept/dropped counts.
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
from retrollm.index import CorpusIndex
from retrollm.models import SpecialTokenIds, load_tokenizer, prompt_ids, tokenizer_fingerprint
from retrollm.qa import load_qa
from retrollm.retrieval.scorer import load_scorer
from retrollm.training.masks import masked_share
from retrollm.training.targets import Special
from retrollm.training.trainset import TrainsetBuilder, TrainsetConfig
from schemas import Manifest, QARecord
from schemas.retrieval import SparseQuery
from schemas.training import TrainExample
from stages.common import Paths, StageParams, load_params, load_paths, run_stage

SCHEMA_NAME = "trainset"
SCHEMA_VERSION = 1


class BuildTrainsetParams(StageParams):
    """The `build_trainset:` section of params.yaml."""

    datasets: list[str] = Field(["nq", "triviaqa"], description="prepare_qa datasets to use.")
    answerable_only: bool = Field(
        True, description="Only questions whose answer occurs in the corpus (others drop anyway)."
    )
    limit_per_dataset: int | None = Field(
        None, ge=1, description="Questions sampled per dataset with `seed` (null: all)."
    )
    seed: int = Field(0, description="Seed of the question sample.")
    k_aux: int = Field(8, ge=0, description="SPLADE expansion terms that select sentences.")
    top_docs: int = Field(20, ge=1, description="SPLADE-ranked documents searched per question.")
    k_evidence: int = Field(5, ge=1, description="Evidences the scorer keeps (k_e, single-hop).")
    multihop_datasets: list[str] = Field(
        ["hotpotqa", "2wikimultihopqa"], description="Datasets that use k_evidence_multihop."
    )
    k_evidence_multihop: int = Field(10, ge=1, description="k_e for multi-hop datasets.")
    max_candidates: int = Field(
        12,
        ge=1,
        description="Windows scored per question, at most: those heaviest in SPLADE "
        "term weight. The relevance model is the stage's main cost on a CPU; on a sample, 12 "
        "kept about 80% of the examples 48 did, at a quarter of the cost.",
    )
    evidence_min_tokens: int = Field(
        64,
        ge=0,
        description="Windows take whole sentences up to this many tokens (decoder: "
        "decode.min_evidence_tokens); shorter only at a document end. 0: single sentences.",
    )
    evidence_max_tokens: int = Field(
        128, ge=1, description="Windows are cut here (at most decode.max_evidence_tokens)."
    )
    clues_from_question: int = Field(2, ge=0, description="Clues taken from the question.")
    clues_from_evidence: int = Field(1, ge=0, description="Clues from the relevant evidence.")
    clue_max_words: int = Field(3, ge=1, description="Words per clue span, at most.")
    clue_min_tokens: int = Field(
        2, ge=1, description="Tokens per clue, at least (decode.min_clue_tokens_before_sep)."
    )
    clue_max_tokens: int = Field(7, ge=1, description="Tokens per clue, at most (decoder's cap).")
    clue_max_hits: int = Field(
        1000, ge=1, description="Spans occurring more often select nothing: never clues."
    )
    clue_may_contain_answer: bool = Field(
        False, description="Allow evidence clues that contain a gold answer."
    )
    no_relevant: Literal["drop", "all", "empty"] = Field(
        "drop",
        description="No relevant evidence in the top k_e: drop the question, keep all k_e "
        "evidences, or keep it with an empty evidence section.",
    )
    keep_fraction: float = Field(
        0.1, ge=0.0, le=0.5, description="Share of each evidence's tokens in the loss, per end."
    )
    gamma: float = Field(2.0, ge=0.0, description="Loss weight of answer tokens.")
    max_tokens: int = Field(512, ge=16, description="Longer sequences are dropped (counted).")
    scorer: Literal["biencoder", "cross-encoder"] = Field(
        "biencoder", description="Relevance model kind that ranks evidences."
    )
    scorer_model: Path = Field(Path("data/assets/biencoder"), description="Its model folder.")
    scorer_max_length: int = Field(
        64,
        ge=8,
        description="Tokens the scorer reads per window (the decoder reads 128; "
        "windows start at a sentence, and on a sample 64 kept the same examples, 35% faster).",
    )
    threads: int = Field(2, ge=1, description="torch CPU threads.")
    excerpt: int = Field(20, ge=0, description="Examples copied to examples.jsonl for people.")

    def config(self, dataset: str) -> TrainsetConfig:
        fields = set(TrainsetConfig.__dataclass_fields__)
        values = {k: v for k, v in self.model_dump().items() if k in fields}
        if dataset in self.multihop_datasets:
            values["k_evidence"] = self.k_evidence_multihop
        return TrainsetConfig(**values)


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


def main(params: BuildTrainsetParams, paths: Paths) -> dict[str, int]:
    torch.set_num_threads(params.threads)
    tokenizer = load_tokenizer(paths.model)
    fingerprint = tokenizer_fingerprint(tokenizer)
    tokens_manifest = read_manifest(paths.tokens, "tokens")
    if tokens_manifest.extra.get("tokenizer_fingerprint") != fingerprint:
        raise ArtifactError(f"{paths.tokens}: made with another tokenizer than {paths.model}")
    inputs = {
        "model": input_ref(paths.model, "model"),
        "index": input_ref(paths.index, "index"),
        "splade": input_ref(paths.splade, "splade"),
        **{f"qa/{d}": input_ref(paths.qa / d, "qa") for d in params.datasets},
    }
    index = CorpusIndex.load(paths.index, expected_tokenizer_fingerprint=fingerprint)
    ids = SpecialTokenIds.from_tokenizer(tokenizer)
    special = Special(**ids.as_dict(), eos=int(tokenizer.eos_token_id))
    scorer = load_scorer(params.scorer, params.scorer_model, params.scorer_max_length)

    counts: Counter[str] = Counter()
    ranks: Counter[int] = Counter()
    examples: list[TrainExample] = []
    for dataset in params.datasets:
        builder = TrainsetBuilder(
            params.config(dataset),
            index,
            tokenizer,
            special,
            scorer,
            lambda q: prompt_ids(tokenizer, q),
        )
        sparse = sparse_queries(paths, dataset)
        for record in tqdm(questions(paths, dataset, params), desc=dataset, unit="q"):
            query = sparse.get(record.id)
            if query is None:
                raise ArtifactError(f"{paths.splade}: no SPLADE entry for {dataset} {record.id}")
            example, outcome = builder.build(
                record.id, dataset, record.question, record.golden_answers,
                query.terms, query.doc_ranking, query.term_weights,
            )  # fmt: skip
            counts["questions"] += 1
            counts[f"{dataset}_questions"] += 1
            counts["kept" if example else f"dropped_{outcome}"] += 1
            if example is not None:
                counts[f"{dataset}_kept"] += 1
                examples.append(example)
                relevant = [i for i, e in enumerate(example.evidences) if e.relevant]
                ranks[relevant[0] + 1 if relevant else 0] += 1
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
                params=params.model_dump(mode="json"),
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
        lambda: main(load_params("build_trainset", BuildTrainsetParams), load_paths()),
    )
