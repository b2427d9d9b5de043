"""Stage evaluate: one method on one dataset's answerable test sample.

    python -m stages.evaluate DATASET METHOD

METHOD names an entry of `evaluate.baseline_methods`, `evaluate.methods` (RetroLLM, base
model), `evaluate.adapter_methods` (RetroLLM, trained adapter) or
`evaluate.rag_lora_methods` (naive RAG over the rag-lora adapter, with the retriever
build_rag_trainset chose). dvc.yaml runs each map as its own matrix stage so that each
depends on what it reads only: baselines do not rerun when `decode` changes, and only the
adapter methods wait for their training.
Output data/eval/DATASET/METHOD/: predictions.msgpack (every Prediction, traces kept),
predictions.jsonl (the first few, for people), metrics.json (aggregate), manifest.json;
beside it data/eval/DATASET/METHOD.run.json: the run's wall times and resumed count.
"""

from __future__ import annotations

import os

# Before torch loads: spinning OpenMP workers thrash when the cores are shared (measured
# here: 2 threads took 10x longer than 1 with other jobs running; passive waiting, none).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field, model_validator

from retrollm.artifacts import (
    ArtifactError,
    atomic_dir,
    code_fingerprint,
    input_ref,
    read_manifest,
    write_json,
    write_manifest,
    write_records,
    write_run_log,
)
from retrollm.baselines import BaselineConfig, run_baseline
from retrollm.chain import asset_ref, made_from, tokens_of_corpus
from retrollm.corpus import DOCUMENTS_FILE
from retrollm.evaluation import ResumeFile, resume_key, run_checkpointed, select_questions
from retrollm.metrics import aggregate, score, timing
from retrollm.qa import load_qa
from retrollm.retrieval.dense import DENSE_SCHEMA
from retrollm.retrieval.rag import Retriever, bm25_search, dense_search
from retrollm.sharding import data_files
from retrollm.tokenization import OFFSETS_FILE, load_doc_offsets
from schemas.manifest import InputRef, Manifest
from schemas.prediction import Prediction
from stages.common import (
    DenseParams,
    Paths,
    StageParams,
    checked_input,
    load_params,
    load_paths,
    load_yaml,
    run_stage,
    verify_contents,
)

# The code that decides a prediction: in the resume key, so a checkpoint written by other
# code is never resumed.
EVALUATION_CODE = (
    "stages/evaluate.py",
    "retrollm/funnel.py",
    "retrollm/evaluation.py",
    "retrollm/baselines.py",
    "retrollm/metrics.py",
    "retrollm/models.py",
    "retrollm/text.py",
    "retrollm/decoding",
    "retrollm/retrieval",
    "retrollm/index",
    "retrollm/adapters.py",
)
EVAL_SCHEMA = "eval"
EVAL_VERSION = 1
Kind = Literal["retrollm", "direct", "rag-bm25", "rag-dense", "rag-lora"]


class MethodSpec(StageParams):
    """One evaluated method: which engine runs it and what it overrides."""

    kind: Kind = Field(
        description="retrollm (the decoder), direct, rag-bm25, rag-dense or rag-lora (RAG "
        "over its own adapter and the retriever build_rag_trainset chose)."
    )
    adapter: bool = Field(False, description="Load the trained LoRA adapter over the base LM.")
    limit: int | None = Field(
        None,
        ge=1,
        description="Questions for this method instead of evaluate.limit (samples nest, so "
        "a smaller one is a subset of the larger and still pairs question by question).",
    )
    decode: dict[str, Any] = Field(
        default_factory=dict,
        description="Overrides of the `decode:` section (strategy, ablation switches, ...).",
    )

    @model_validator(mode="after")
    def _decode_only_for_retrollm(self) -> MethodSpec:
        if self.decode and self.kind != "retrollm":
            raise ValueError(f"decode overrides apply to kind retrollm only, not {self.kind}")
        return self


class EvaluateParams(StageParams):
    """The `evaluate:` section of params.yaml."""

    datasets: list[str] = Field(description="prepare_qa datasets; dvc.yaml's matrix reads it.")
    split: Literal["train", "test"] = Field("test", description="Split to evaluate on.")
    answerable_only: bool = Field(
        True, description="Only questions with a gold answer in the corpus (docs/design.md §4)."
    )
    limit: int | None = Field(
        None, ge=1, description="Questions sampled per dataset (same sample for every method)."
    )
    seed: int = Field(0, description="Seed of the question sample.")
    threads: int = Field(2, ge=1, description="torch CPU threads.")
    chunk_size: int = Field(16, ge=1, description="Questions per checkpoint (resume unit).")
    excerpt: int = Field(20, ge=0, description="Predictions copied to predictions.jsonl.")
    resume_dir: Path = Field(
        Path("data/.resume/eval"), description="Checkpoints of unfinished runs (not a DVC out)."
    )
    model_dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "float32", description="Baseline LM dtype (auto: bfloat16 on CUDA, float32 on a CPU)."
    )
    baselines: BaselineConfig = Field(default_factory=BaselineConfig)
    dense: DenseParams = Field(default_factory=DenseParams)
    baseline_methods: dict[str, MethodSpec] = Field(
        default_factory=dict, description="direct and naive RAG (stage evaluate_baseline)."
    )
    methods: dict[str, MethodSpec] = Field(
        default_factory=dict, description="RetroLLM on the base model (stage evaluate)."
    )
    adapter_methods: dict[str, MethodSpec] = Field(
        default_factory=dict,
        description="RetroLLM over the trained adapter (stage evaluate_adapter, after train).",
    )
    rag_lora_methods: dict[str, MethodSpec] = Field(
        default_factory=dict,
        description="RAG over the rag-lora adapter (stage evaluate_rag_lora, after train_rag).",
    )

    @model_validator(mode="after")
    def _groups(self) -> EvaluateParams:
        """Each map feeds one DVC matrix stage with its own deps, so a method in the wrong
        map would run without (or wait for) the artifacts it needs."""
        rules = {
            "baseline_methods": (
                self.baseline_methods,
                lambda s: s.kind in ("direct", "rag-bm25", "rag-dense") and not s.adapter,
            ),
            "methods": (self.methods, lambda s: s.kind == "retrollm" and not s.adapter),
            "adapter_methods": (self.adapter_methods, lambda s: s.kind == "retrollm" and s.adapter),
            "rag_lora_methods": (self.rag_lora_methods, lambda s: s.kind == "rag-lora"),
        }
        for group, (specs, fits) in rules.items():
            if wrong := [name for name, spec in specs.items() if not fits(spec)]:
                raise ValueError(
                    f"{group}: {wrong} do not belong here (baseline_methods: direct, "
                    "rag-bm25, rag-dense; methods: retrollm without adapter; adapter_methods: "
                    "retrollm, adapter: true; rag_lora_methods: rag-lora)"
                )
        names = [
            *self.baseline_methods, *self.methods, *self.adapter_methods, *self.rag_lora_methods
        ]  # fmt: skip
        if dupes := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"{dupes}: a method name may appear in one map only")
        return self

    def spec(self, method: str) -> MethodSpec:
        every = self.baseline_methods | self.methods | self.adapter_methods | self.rag_lora_methods
        if method not in every:
            raise SystemExit(f"evaluate: unknown method {method!r} (known: {', '.join(every)})")
        return every[method]


# An input: (folder, schema name, the files read from it; None: every file).
Input = tuple[Path, str, list[str] | None]


def rag_retriever(spec: MethodSpec, paths: Paths) -> Retriever | None:
    """The retriever behind a RAG method: its kind names it, or build_rag_trainset chose it."""
    if spec.kind == "rag-lora":
        chosen = read_manifest(paths.rag_trainset, "trainset").extra.get("retriever")
        if chosen not in ("bm25", "dense"):
            raise ArtifactError(f"{paths.rag_trainset}: manifest names no retriever ({chosen})")
        return chosen  # type: ignore[return-value]
    return {"rag-bm25": "bm25", "rag-dense": "dense"}.get(spec.kind)  # type: ignore[return-value]


def _inputs(
    spec: MethodSpec, paths: Paths, dataset: str, split: str, dense: Path
) -> dict[str, Input]:
    """The artifacts a method reads, with the files it reads from each."""
    inputs: dict[str, Input] = {
        "qa": (paths.qa / dataset, "qa", [f"{split}.msgpack"]),
        "model": (paths.model, "model", None),
    }

    def corpus() -> Input:  # read only by the methods that retrieve
        return (paths.corpus, "corpus", data_files(paths.corpus, "corpus", [DOCUMENTS_FILE]))

    if spec.kind.startswith("rag"):
        offsets = data_files(paths.tokens, "tokens", [OFFSETS_FILE])
        inputs |= {"corpus": corpus(), "tokens": (paths.tokens, "tokens", offsets)}
    if rag_retriever(spec, paths) == "dense":
        inputs["dense"] = (dense, DENSE_SCHEMA, None)
    if spec.kind == "rag-lora":
        inputs["rag_trainset"] = (paths.rag_trainset, "trainset", [])
        inputs["rag_adapter"] = (paths.rag_adapter, "adapter", None)
    if spec.kind == "retrollm":
        inputs |= {"corpus": corpus(), "index": (paths.index, "index", None)}
        inputs["splade"] = (paths.splade, "splade", None)
    if spec.adapter:
        inputs["adapter"] = (paths.adapter, "adapter", None)
    return inputs


def _checked_inputs(
    spec: MethodSpec, params: EvaluateParams, paths: Paths, dataset: str
) -> dict[str, InputRef]:
    """Each input's manifest checked, its files verified, and its ref for the manifest.
    The decoder verifies the models it reads from the assets (SPLADE, window scorer)
    itself, since its config names them (RetroLLM.from_artifacts)."""
    folders = _inputs(spec, paths, dataset, params.split, params.dense.index)
    refs = {name: checked_input(*folder) for name, folder in folders.items()}
    if rag_retriever(spec, paths) == "dense":
        asset_ref(paths.assets, params.dense.model, verify_contents())
    if spec.kind == "retrollm":
        refs["assets"] = input_ref(paths.assets, "assets")
    return refs


def answer_fn(  # type: ignore[no-untyped-def]
    method: str, spec: MethodSpec, params: EvaluateParams, paths: Paths, device: str | None = None
):
    """Load what the method needs once and return questions -> predictions. Every method
    runs on `device` (None: `decode.device`, the one device knob of params.yaml)."""
    from retrollm.decoding import DecodeConfig
    from retrollm.models import resolve_device

    base = load_params("decode", DecodeConfig)
    device = str(resolve_device(device or base.device))
    if spec.kind == "retrollm":
        from retrollm.decoding import RetroLLM

        config = DecodeConfig.model_validate(base.model_dump() | spec.decode | {"device": device})
        adapter = paths.adapter if spec.adapter else None
        decoder = RetroLLM.from_artifacts(paths, config, adapter=adapter, verify=verify_contents())

        def answer(questions: Sequence[Any]) -> list[Prediction]:
            made = decoder.answer(list(questions))
            return [p.model_copy(update={"method": method}) for p in made]

        return answer

    from retrollm.models import load_causal_lm

    adapter = paths.rag_adapter if spec.kind == "rag-lora" else None
    model, tokenizer = load_causal_lm(paths.model, params.model_dtype, adapter, device)
    config = params.baselines
    search = formatter = None
    if spec.kind != "direct":
        from retrollm.baselines import PassageFormatter
        from retrollm.corpus import load_corpus

        tokens_of_corpus(paths)  # the offsets must be this corpus's documents, in order
        corpus = load_corpus(paths.corpus)
        offsets = load_doc_offsets(paths.tokens)
        formatter = PassageFormatter(tokenizer, corpus, offsets, config.max_passage_tokens)
        texts = [r.contents for r in corpus]
        if rag_retriever(spec, paths) == "bm25":
            search = bm25_search(texts)
        else:
            dense = params.dense
            made_from(
                dense.index, read_manifest(dense.index, DENSE_SCHEMA), "corpus", paths.corpus,
                read_manifest(paths.corpus, "corpus"),
            )  # fmt: skip
            search = dense_search(
                dense.index, dense.model, dense.max_length, dense.batch_size, len(texts), device
            )
    kind = "direct" if spec.kind == "direct" else "rag"

    def answer(questions: Sequence[Any]) -> list[Prediction]:
        made: list[Prediction] = []
        for lo in range(0, len(questions), config.batch_size):
            batch = questions[lo : lo + config.batch_size]
            made += run_baseline(method, kind, batch, model, tokenizer, config, search, formatter)
        return made

    return answer


def _funnel(method: str, spec: MethodSpec, paths: Paths, predictions: list[Prediction]) -> Any:
    """Where the method lost the gold answer (retrollm/funnel.py); RetroLLM rows read the
    corpus text of their documents and located windows."""
    from retrollm.funnel import CorpusText, funnel, no_corpus

    if spec.kind != "retrollm":
        return funnel(method, predictions, no_corpus, no_corpus)
    from retrollm.corpus import load_corpus
    from retrollm.index import load_index
    from retrollm.models import load_tokenizer

    index = load_index(paths.index)
    contents = [r.contents for r in load_corpus(paths.corpus)]
    text = CorpusText(contents, index.extract, load_tokenizer(paths.model))
    return funnel(method, predictions, text.document, text.span)


def evaluate(dataset: str, method: str) -> dict[str, int]:
    params = load_params("evaluate", EvaluateParams)
    paths = load_paths()
    spec = params.spec(method)
    torch.set_num_threads(params.threads)
    inputs = _checked_inputs(spec, params, paths, dataset)
    records = load_qa(paths.qa / dataset, params.split)
    limit = spec.limit if spec.limit is not None else params.limit
    questions = select_questions(records, limit, params.seed, params.answerable_only)
    if not questions:
        which = "answerable questions" if params.answerable_only else "questions"
        raise ArtifactError(
            f"{paths.qa / dataset / f'{params.split}.msgpack'}: no {which} to evaluate "
            f"({len(records)} in the split); a metrics row over none would mean nothing"
        )
    # What decides the predictions (not threads or chunking) goes in manifest and resume key.
    unused = {"threads", "chunk_size", "baseline_methods", "methods", "adapter_methods"}
    unused |= {"rag_lora_methods"}
    unused |= {"baselines", "dense", "model_dtype"} if spec.kind == "retrollm" else set()
    stage_params = params.model_dump(mode="json", exclude=unused)
    stage_params |= {"method": method, "spec": spec.model_dump(mode="json")}
    if spec.kind == "retrollm":
        stage_params["decode"] = load_yaml().get("decode")
    key = resume_key(
        {
            "params": stage_params,
            "inputs": {k: v.fingerprint for k, v in inputs.items()},
            "questions": [q.id for q in questions],
            "code": code_fingerprint(EVALUATION_CODE),
        }
    )
    resume = ResumeFile(params.resume_dir / dataset / method, key)

    start = time.perf_counter()
    answer = answer_fn(method, spec, params, paths)
    setup_s = time.perf_counter() - start
    predictions, resumed = run_checkpointed(
        questions, answer, resume, params.chunk_size, desc=f"{dataset}/{method}"
    )
    spent = timing(predictions)
    run_log = {"setup_s": round(setup_s, 2), "resumed": resumed} | spent.model_dump()
    run_log["timings"] = {p.id: p.timings for p in predictions}
    # Wall times differ run to run: in the artifact they would give a rerun with the same
    # params and inputs new bytes, so they leave it for the run log written below.
    predictions = [p.model_copy(update={"timings": {}}) for p in predictions]
    scored = [score(p) for p in predictions]
    result = aggregate(scored)
    metrics = {"dataset": dataset, "method": method, "kind": spec.kind, "adapter": spec.adapter}
    metrics |= result.model_dump() | {
        "funnel": _funnel(method, spec, paths, predictions).model_dump(),
        "answerable": sum(bool(r.answerable) for r in records),
        "split_size": len(records),
    }
    with atomic_dir(paths.eval / dataset / method) as out:
        write_records(out / "predictions.msgpack", predictions)
        with open(out / "predictions.jsonl", "w") as handle:
            for prediction in predictions[: params.excerpt]:
                handle.write(prediction.model_dump_json() + "\n")
        write_json(out / "metrics.json", metrics)
        # Per-question scores: the report pairs methods question by question (retrollm/stats.py).
        write_json(
            out / "scores.json",
            {
                p.id: {"acc": s.acc, "em": s.em, "f1": s.f1}
                for p, s in zip(predictions, scored, strict=True)
            },
        )
        write_manifest(
            out,
            Manifest(
                schema_name=EVAL_SCHEMA,
                schema_version=EVAL_VERSION,
                stage="evaluate",
                params=stage_params,
                inputs=inputs,
                counts={"predictions": len(predictions)},
                extra={"question_ids_sha256": resume_key({"ids": [q.id for q in questions]})},
            ),
        )
    write_run_log(paths.eval / dataset / method, run_log)
    resume.clear()
    print(
        f"[evaluate] {dataset}/{method}: acc {result.acc:.1f} em {result.em:.1f} "
        f"f1 {result.f1:.1f} tokens {result.tokens:.0f} latency {spent.latency_ms:.0f} ms",
        flush=True,
    )
    return {"questions": len(predictions), "resumed": resumed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("method")
    args = parser.parse_args()
    run_stage(f"evaluate {args.dataset}/{args.method}", lambda: evaluate(args.dataset, args.method))


if __name__ == "__main__":
    main()
