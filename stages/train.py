"""Stage train: LoRA plus the five special-token embeddings on the build_trainset targets.

    python -m stages.train                                   # CPU or one GPU
    accelerate launch --num_processes 4 -m stages.train      # several GPUs, same params
    python -m stages.train rag                               # the rag-lora baseline

`rag` trains the same recipe (the `train:` section) on build_rag_trainset's targets and
writes paths.rag_adapter; only where it writes checkpoints and logs differs (`train_rag:`).

Steps: check the trainset was built with this base model's tokenizer, sample
`max_examples` of it, wrap the base model with LoRA (retrollm.training.lora), train with
Accelerate (retrollm.training.loop), resuming from the newest checkpoint in
`checkpoint_dir` when it belongs to this exact configuration, log loss and learning rate
with dvclive, and write the adapter folder with a manifest naming the base model.
"""

from __future__ import annotations

import os

# Threads that wait for work sleep instead of spinning. Set before torch loads OpenMP: on a
# shared or busy machine spinning threads steal the cores they wait for (measured here with
# one other job running: 3 training steps took 219 s spinning, 52 s passive).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import hashlib
import json
import random
import time
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field

from retrollm.adapters import base_fingerprint
from retrollm.artifacts import (
    ArtifactError,
    atomic_dir,
    code_fingerprint,
    read_manifest,
    read_records,
    write_run_log,
)
from retrollm.artifacts import write_manifest as save_manifest
from retrollm.models import SpecialTokenIds, load_causal_lm, tokenizer_fingerprint
from retrollm.training.adapter import save_adapter
from retrollm.training.data import Collator, TrainDataset
from retrollm.training.loop import LoopConfig, mean_example_weight, train
from retrollm.training.lora import LLAMA_TARGET_MODULES, lora_config, wrap_model
from schemas import Manifest
from schemas.training import TrainExample
from stages.common import Paths, StageParams, checked_input, load_params, load_paths, run_stage

SCHEMA_NAME = "adapter"
SCHEMA_VERSION = 1
# The code that decides what is learned: part of the run fingerprint, so that after an edit
# a finished checkpoint of the old code is not reloaded and saved as the new adapter.
TRAINING_CODE = (
    "stages/train.py",
    "retrollm/training/data.py",
    "retrollm/training/lora.py",
    "retrollm/training/loop.py",
    "retrollm/training/checkpoint.py",
    "retrollm/training/adapter.py",
    "retrollm/adapters.py",
    "retrollm/models.py",
)
# Params that change where and how often things are written, not what is learned.
_NOT_IN_FINGERPRINT = {
    "threads",
    "checkpoint_every",
    "keep_checkpoints",
    "checkpoint_dir",
    "live_dir",
}


class TrainParams(LoopConfig, StageParams):
    """The `train:` section of params.yaml: the optimisation settings of LoopConfig (its
    fields, inherited) plus what the stage decides about model and data."""

    seed: int = Field(0, description="Seeds LoRA init, dropout, the sample and the data order.")
    max_examples: int | None = Field(
        None, ge=1, description="Train on a seeded sample of this many examples (null: all)."
    )
    lora_r: int = Field(16, ge=1, description="LoRA rank (paper: 16).")
    lora_alpha: int = Field(64, ge=1, description="LoRA alpha (paper: 64).")
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the LoRA input.")
    target_modules: list[str] = Field(
        list(LLAMA_TARGET_MODULES), description="Linear layers with LoRA (Llama-style names)."
    )
    padding_side: Literal["right", "left"] = Field("right", description="Batch padding side.")
    length_grouping: int = Field(
        32,
        ge=0,
        description="Sort the shuffled order by length within blocks of this many "
        "examples (less padding); 0: plain shuffle.",
    )
    model_dtype: Literal["float32", "bfloat16"] = Field("float32", description="Base weights.")
    mixed_precision: Literal["no", "bf16", "fp16"] = Field("no", description="Accelerate autocast.")
    cpu: bool = Field(False, description="Train on CPU even when a GPU is present.")
    threads: int = Field(2, ge=1, description="torch CPU threads.")
    checkpoint_dir: Path = Field(
        Path("data/train_checkpoints"), description="Checkpoints (DVC: persist, not cached)."
    )
    live_dir: Path = Field(Path("data/train_live"), description="dvclive metrics and plots.")


class TrainRagParams(StageParams):
    """The `train_rag:` section: where the rag-lora run writes; its recipe is `train:`."""

    checkpoint_dir: Path = Field(
        Path("data/train_rag_checkpoints"), description="Checkpoints of the rag-lora run."
    )
    live_dir: Path = Field(Path("data/train_rag_live"), description="Its dvclive metrics.")


Variant = Literal["retrollm", "rag"]


def variant_params(params: TrainParams, variant: Variant, rag: TrainRagParams) -> TrainParams:
    """The recipe of `train:`, writing where the variant's own section says."""
    if variant == "retrollm":
        return params
    return params.model_copy(update=rag.model_dump())


def variant_paths(paths: Paths, variant: Variant) -> tuple[Path, Path]:
    """(trainset, adapter) folders of a variant."""
    if variant == "rag":
        return paths.rag_trainset, paths.rag_adapter
    return paths.trainset, paths.adapter


def load_examples(
    trainset: Path, model: Path, params: TrainParams, tokenizer_fp: str
) -> list[TrainExample]:
    manifest = read_manifest(trainset, "trainset")
    if manifest.extra.get("tokenizer_fingerprint") != tokenizer_fp:
        raise ArtifactError(f"{trainset}: built with another tokenizer than {model}")
    examples = list(read_records(trainset / "train.msgpack", TrainExample))
    if params.max_examples is not None and len(examples) > params.max_examples:
        chosen = sorted(
            random.Random(params.seed).sample(range(len(examples)), params.max_examples)
        )
        examples = [examples[i] for i in chosen]
    return examples


def run_fingerprint(
    params: TrainParams, trainset: str, base: str, processes: int, code: str | None = None
) -> str:
    """Names one training run: params, trainset, base model, process count and the
    training code (`code`: its fingerprint; default: TRAINING_CODE as it is now)."""
    body = {
        "params": params.model_dump(mode="json", exclude=_NOT_IN_FINGERPRINT),
        "trainset": trainset,
        "base": base,
        "processes": processes,
        "code": code if code is not None else code_fingerprint(TRAINING_CODE),
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def main(
    params: TrainParams, paths: Paths, stop_after: int | None = None, variant: Variant = "retrollm"
) -> dict[str, int]:
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from dvclive import Live

    torch.set_num_threads(params.threads)
    accelerator = Accelerator(mixed_precision=params.mixed_precision, cpu=params.cpu)
    set_seed(params.seed)
    trainset, adapter = variant_paths(paths, variant)
    inputs = {
        "model": checked_input(paths.model, "model"),
        "trainset": checked_input(trainset, "trainset", ["train.msgpack"]),
    }
    base = base_fingerprint(paths.model)
    model, tokenizer = load_causal_lm(paths.model, params.model_dtype)
    tokenizer_fp = tokenizer_fingerprint(tokenizer)
    ids = SpecialTokenIds.from_tokenizer(tokenizer)
    examples = load_examples(trainset, paths.model, params, tokenizer_fp)
    model = wrap_model(
        model,
        lora_config(
            model, list(ids.as_dict().values()), params.lora_r, params.lora_alpha,
            params.lora_dropout, params.target_modules,
        ),
    )  # fmt: skip
    dataset = TrainDataset(
        [(e.input_ids, e.weights) for e in examples], params.seed, True, params.length_grouping
    )
    collator = Collator(int(tokenizer.pad_token_id), params.padding_side)
    fingerprint = run_fingerprint(
        params, inputs["trainset"].fingerprint, base, accelerator.num_processes
    )

    live = None
    if accelerator.is_main_process:
        live = Live(str(params.live_dir), dvcyaml=None, save_dvc_exp=False, report=None)

    def log(entry: dict[str, float]) -> None:
        assert live is not None
        live.step = int(entry["step"])
        for name in ("loss", "token_nll", "lr"):
            live.log_metric(f"train/{name}", entry[name])
        live.next_step()

    start = time.perf_counter()
    model, state = train(
        model, dataset, collator, accelerator, params.loop(), params.checkpoint_dir,
        fingerprint, log=log, stop_after=stop_after,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    counts = {"examples": len(examples), "steps": state.step}
    if not accelerator.is_main_process or state.step < state.total:
        return counts  # interrupted (stop_after): the checkpoint holds the progress
    losses = [entry["loss"] for entry in state.history]
    summary = {
        "loss_first": losses[0] if losses else float("nan"),
        "loss_last": losses[-1] if losses else float("nan"),
        "steps": state.step,
        "examples": len(examples),
    }
    assert live is not None
    live.summary.update(summary)
    live.step = state.step  # next_step() left it one past the last logged step
    live.make_summary()
    live.end()
    with atomic_dir(adapter) as out:
        info = save_adapter(
            model, out, base, ids.as_dict(), tokenizer_fp,
            extra={"run_fingerprint": fingerprint, "steps": state.step},
        )  # fmt: skip
        save_manifest(
            out,
            Manifest(
                schema_name=SCHEMA_NAME,
                schema_version=SCHEMA_VERSION,
                stage="train" if variant == "retrollm" else f"train {variant}",
                params=params.model_dump(mode="json"),
                inputs=inputs,
                counts=counts,
                extra={
                    **info,
                    "loss_first": summary["loss_first"],
                    "loss_last": summary["loss_last"],
                    "loss_denominator_per_example": round(mean_example_weight(dataset), 4),
                    "processes": accelerator.num_processes,
                },
            ),
        )
    # The loss log and the adapter repeat byte for byte; the wall time does not, so it
    # goes beside them (NAME.run.json, ignored by DVC).
    write_run_log(adapter, {"seconds_this_run": round(seconds, 1), "steps": state.step})
    return counts


def cli() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variant", nargs="?", default="retrollm", choices=["retrollm", "rag"])
    variant = parser.parse_args().variant
    params = variant_params(
        load_params("train", TrainParams), variant, load_params("train_rag", TrainRagParams)
    )
    name = "train" if variant == "retrollm" else "train rag"
    run_stage(name, lambda: main(params, load_paths(), variant=variant))


if __name__ == "__main__":
    cli()
