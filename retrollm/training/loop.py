"""The training loop: Accelerate, AdamW, linear warmup and decay, gradient accumulation,
RetroLLM's weighted token loss, periodic checkpoints and exact resumption.

Loss (docs/method.md §8): L = sum_t w_t * NLL_t over the target tokens, w_t from the loss mask
(1 for clue, structure and kept evidence tokens, gamma for answer tokens, 0 elsewhere).
The sum is divided by a *fixed* denominator, D = examples per optimizer step x the mean
total weight of a training example (computed once over the training set), never by the
weight of the batch at hand. So every example's tokens count the same however the batch
is cut into micro-batches and processes (a per-batch mean would up-weight tokens of short
batches), the gradient is exactly the paper's summed loss up to one constant, and the
logged value still reads as a per-token NLL (about 10 for a random model, ln(vocab)).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from retrollm.training.checkpoint import (
    RunState,
    clear_checkpoints,
    latest_checkpoint,
    load_checkpoint,
    read_state,
    save_checkpoint,
    set_rng_state,
)
from retrollm.training.data import IGNORE_INDEX, Collator, TrainDataset
from retrollm.training.lora import trainable_parameters


class LoopConfig(BaseModel):
    """Optimisation settings: the one definition, with the library defaults. The train
    stage's params inherit these fields, so params.yaml sets them by these names."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(1, ge=1, description="Passes over the (sampled) examples; paper: 3.")
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps.")
    batch_size: int = Field(1, ge=1, description="Examples per micro-batch per process.")
    grad_accum: int = Field(8, ge=1, description="Micro-batches per optimizer step.")
    lr: float = Field(5e-4, gt=0, description="Peak learning rate of AdamW (not in the paper).")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    warmup_ratio: float = Field(0.05, ge=0, le=1, description="Share of steps in linear warmup.")
    max_grad_norm: float = Field(1.0, ge=0, description="Gradient clipping (0: off).")
    checkpoint_every: int = Field(20, ge=1, description="Optimizer steps between checkpoints.")
    keep_checkpoints: int = Field(2, ge=1, description="Newest checkpoints kept.")

    def loop(self) -> LoopConfig:
        """These settings alone (a subclass's other fields dropped)."""
        return LoopConfig.model_validate(self.model_dump(include=set(LoopConfig.model_fields)))


def weighted_nll(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sum_t w_t * NLL_t for next-token prediction (position t predicts token t + 1)."""
    logits = logits[:, :-1].float()
    targets = labels[:, 1:]
    w = weights[:, 1:].to(logits.dtype)
    nll = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        targets.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="none",
    )
    return (nll * w.reshape(-1)).sum()


def forward_sum(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The weighted NLL sum of one batch, with logits only where the weight is positive.

    The (tokens x vocabulary) output projection is a fifth of a small model's compute and
    most positions (prompt, masked evidence, padding) carry no loss, so only the kept
    positions are projected (`logits_to_keep` as a boolean mask). Same value as
    weighted_nll on full logits.
    """
    weights = batch["weights"][:, 1:]
    used = weights > 0
    keep = torch.zeros_like(batch["weights"], dtype=torch.bool)
    keep[:, :-1] = used  # position t predicts token t + 1
    out = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        position_ids=batch["position_ids"],
        use_cache=False,
        logits_to_keep=keep,
    )
    targets = batch["input_ids"][:, 1:][used]
    nll = F.cross_entropy(
        out.logits.reshape(-1, out.logits.shape[-1]).float(), targets, reduction="none"
    )
    return (nll * weights[used].to(nll.dtype)).sum()


def linear_schedule(optimizer: torch.optim.Optimizer, warmup: int, total: int) -> Any:
    """Linear warmup from 0 over `warmup` steps, then linear decay to 0 at `total`."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(1, total - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def mean_example_weight(dataset: TrainDataset) -> float:
    """Mean total loss weight of an example: the per-example part of the denominator."""
    total = sum(float(w.sum()) for _, w in dataset.examples)
    return total / max(1, len(dataset.examples))


def train(
    model: torch.nn.Module,
    dataset: TrainDataset,
    collator: Collator,
    accelerator: Any,
    config: LoopConfig,
    checkpoint_dir: Path | str,
    fingerprint: str,
    log: Callable[[dict[str, float]], None] | None = None,
    stop_after: int | None = None,
) -> tuple[torch.nn.Module, RunState]:
    """Train (or resume) until the last step; return the unwrapped model and final state.

    `fingerprint` names the run (params, data, base model): a checkpoint with another one
    is ignored. `log` receives one dict per optimizer step (also the replayed history of a
    resumed run first, so a fresh logger shows the whole curve). `stop_after` ends the run
    after that many optimizer steps with a checkpoint, as an interruption would (tests).
    """
    checkpoint_dir = Path(checkpoint_dir)
    # Its own generator: iterating a loader then draws no seed from the global RNG, which
    # the dropout masks use, so a resumed run sees the same draws as an uninterrupted one.
    loader = DataLoader(
        dataset,
        batch_size=config.batch_size,
        shuffle=False,
        collate_fn=collator,
        generator=torch.Generator().manual_seed(dataset.seed),
    )
    params = [p for _, p in trainable_parameters(model)]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    steps_per_epoch = math.ceil(len(loader) / config.grad_accum)
    total = config.epochs * steps_per_epoch
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    scheduler = linear_schedule(optimizer, round(config.warmup_ratio * total), total)
    denominator = config.batch_size * config.grad_accum * mean_example_weight(dataset)
    global_denominator = denominator * accelerator.num_processes

    state = RunState(step=0, total=total, fingerprint=fingerprint)
    latest = latest_checkpoint(checkpoint_dir)
    if latest is not None and read_state(latest).fingerprint == fingerprint:
        state, rng = load_checkpoint(latest, accelerator, model, optimizer, scheduler)
        if rng is not None:
            set_rng_state(rng)
        accelerator.print(f"resuming from {latest} (step {state.step} of {total})")
    elif latest is not None:
        # Its steps would shadow this run's newer but lower-numbered checkpoints.
        accelerator.print(f"{latest}: made by another configuration; starting over")
        if accelerator.is_main_process:
            clear_checkpoints(checkpoint_dir)
        accelerator.wait_for_everyone()
    if log is not None and accelerator.is_main_process:
        for entry in state.history:
            log(entry)

    model.train()
    bar = tqdm(
        total=total, initial=state.step, desc="train", unit="step",
        disable=not accelerator.is_main_process,
    )  # fmt: skip
    while state.step < total:
        epoch, done_in_epoch = divmod(state.step, steps_per_epoch)
        # accelerate's loader re-applies its own epoch counter on iteration: set it there.
        (loader if hasattr(loader, "set_epoch") else dataset).set_epoch(epoch)
        n_batches = len(loader)
        skip = done_in_epoch * config.grad_accum
        batches = accelerator.skip_first_batches(loader, skip) if skip else loader
        sums = torch.zeros(2, device=accelerator.device)  # weighted NLL, weight
        for number, batch in enumerate(batches, start=skip):
            last_of_step = (number + 1) % config.grad_accum == 0 or number + 1 == n_batches
            sync = contextlib.nullcontext() if last_of_step else accelerator.no_sync(model)
            with sync:
                weighted = forward_sum(model, batch)
                accelerator.backward(weighted / denominator)
            sums += torch.stack([weighted.detach(), batch["weights"][:, 1:].sum()])
            if not last_of_step:
                continue
            if config.max_grad_norm > 0:
                accelerator.clip_grad_norm_(params, config.max_grad_norm)
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            total_sums = accelerator.reduce(sums, reduction="sum")
            sums.zero_()
            state.step += 1
            entry = {
                "step": float(state.step),
                "epoch": float(epoch),
                "loss": float(total_sums[0]) / global_denominator,
                "token_nll": float(total_sums[0]) / max(1.0, float(total_sums[1])),
                "lr": float(lr),
            }
            state.history.append(entry)
            if log is not None and accelerator.is_main_process:
                log(entry)
            bar.update(1)
            bar.set_postfix(loss=f"{entry['loss']:.3f}")
            stopping = stop_after is not None and state.step >= stop_after
            if state.step % config.checkpoint_every == 0 or state.step == total or stopping:
                save_checkpoint(
                    checkpoint_dir, accelerator, model, optimizer, scheduler, state,
                    keep_last=config.keep_checkpoints,
                )  # fmt: skip
            if stopping:
                bar.close()
                return accelerator.unwrap_model(model), state
            if state.step >= total:
                break
    bar.close()
    return accelerator.unwrap_model(model), state
