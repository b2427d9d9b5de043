"""Stage train: LoRA plus the five special-token embeddings on the build_trainset targets.

    python -m stages.train                                   # CPU or one GPU
    accelerate launch --num_processes 4 -m stages.train      # several GPUs, same params

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

from retrollm.artifacts import (
    ArtifactError,
    atomic_dir,
    code_fingerprint,
    read_manifest,
    read_records,
)
from retrollm.artifacts import write_manifest as save_manifest
from retrollm.models import SpecialTokenIds, load_causal_lm, tokenizer_fingerprint
from retrollm.training.adapter import base_fingerprint, save_adapter
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


class TrainParams(StageParams):
    """The `train:` section of params.yaml."""

    seed: int = Field(0, description="Seeds LoRA init, dropout, the sample and the data order.")
    max_examples: int | None = Field(
        None, ge=1, description="Train on a seeded sample of this many examples (null: all)."
    )
    epochs: int = Field(1, ge=1, description="Passes over the (sampled) examples; paper: 3.")
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps.")
    batch_size: int = Field(1, ge=1, description="Examples per micro-batch per process.")
    grad_accum: int = Field(8, ge=1, description="Micro-batches per optimizer step.")
    lr: float = Field(5e-4, gt=0, description="Peak learning rate of AdamW (not in the paper).")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    warmup_ratio: float = Field(0.05, ge=0, le=1, description="Share of steps in linear warmup.")
    max_grad_norm: float = Field(1.0, ge=0, description="Gradient clipping (0: off).")
    lora_r: int = Field(16, ge=1, description="LoRA rank (paper: 16).")
    lora_alpha: int = Field(64, ge=1, description="LoRA alpha (paper: 64).")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA input.")
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
    checkpoint_every: int = Field(10, ge=1, description="Optimizer steps between checkpoints.")
    keep_checkpoints: int = Field(2, ge=1, description="Newest checkpoints kept.")
    checkpoint_dir: Path = Field(
        Path("data/train_checkpoints"), description="Checkpoints (DVC: persist, not cached)."
    )
    live_dir: Path = Field(Path("data/train_live"), description="dvclive metrics and plots.")

    def loop(self) -> LoopConfig:
        fields = set(LoopConfig.__dataclass_fields__)
        return LoopConfig(**{k: v for k, v in self.model_dump().items() if k in fields})


def load_examples(paths: Paths, params: TrainParams, tokenizer_fp: str) -> list[TrainExample]:
    manifest = read_manifest(paths.trainset, "trainset")
    if manifest.extra.get("tokenizer_fingerprint") != tokenizer_fp:
        raise ArtifactError(f"{paths.trainset}: built with another tokenizer than {paths.model}")
    examples = list(read_records(paths.trainset / "train.msgpack", TrainExample))
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


def main(params: TrainParams, paths: Paths, stop_after: int | None = None) -> dict[str, int]:
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from dvclive import Live

    torch.set_num_threads(params.threads)
    accelerator = Accelerator(mixed_precision=params.mixed_precision, cpu=params.cpu)
    set_seed(params.seed)
    inputs = {
        "model": checked_input(paths.model, "model"),
        "trainset": checked_input(paths.trainset, "trainset", ["train.msgpack"]),
    }
    base = base_fingerprint(paths.model)
    model, tokenizer = load_causal_lm(paths.model, params.model_dtype)
    tokenizer_fp = tokenizer_fingerprint(tokenizer)
    ids = SpecialTokenIds.from_tokenizer(tokenizer)
    examples = load_examples(paths, params, tokenizer_fp)
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
        "seconds_this_run": round(seconds, 1),
    }
    assert live is not None
    live.summary.update(summary)
    live.step = state.step  # next_step() left it one past the last logged step
    live.make_summary()
    live.end()
    with atomic_dir(paths.adapter) as out:
        info = save_adapter(
            model, out, base, ids.as_dict(), tokenizer_fp,
            extra={"run_fingerprint": fingerprint, "steps": state.step},
        )  # fmt: skip
        save_manifest(
            out,
            Manifest(
                schema_name=SCHEMA_NAME,
                schema_version=SCHEMA_VERSION,
                stage="train",
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
    return counts


if __name__ == "__main__":
    run_stage("train", lambda: main(load_params("train", TrainParams), load_paths()))
