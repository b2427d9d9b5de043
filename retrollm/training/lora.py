"""LoRA over the base LM, with the five RetroLLM token embeddings trainable.

peft 0.21's `trainable_token_indices` trains chosen rows of the embedding matrix without
making the whole (vocab x hidden) matrix trainable or saving it: only the rows' new values
are parameters and only they land in the adapter file. With tied input/output embeddings
(SmolLM2, Llama-3.2-1B) peft ties the lm_head's rows to the same parameters. With an
untied lm_head (Mistral) the output rows are targeted as well: the decoder must be able
to *emit* `<|sep|>` and `<|/evidence|>`, which depends on the output rows, and those start
at the mean of the old rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import PreTrainedModel

# Every linear layer of a Llama/Mistral/Qwen block: LoRA on all of them is the common
# strong default (QLoRA paper); attention-only LoRA trains fewer weights but learns less.
LLAMA_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _module_name(model: PreTrainedModel, module: torch.nn.Module) -> str:
    for name, candidate in model.named_modules():
        if candidate is module:
            return name.rsplit(".", 1)[-1]
    raise ValueError("module not found in model")


def is_tied(model: PreTrainedModel) -> bool:
    """Whether input and output embeddings share one weight tensor."""
    output = model.get_output_embeddings()
    return output is None or (
        output.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    )


def lora_config(
    model: PreTrainedModel,
    token_ids: Sequence[int],
    r: int = 16,
    alpha: int = 64,
    dropout: float = 0.05,
    target_modules: Sequence[str] = LLAMA_TARGET_MODULES,
) -> LoraConfig:
    """The paper's LoRA (r = 16, alpha = 64) plus trainable rows for `token_ids`."""
    ids = sorted(int(i) for i in token_ids)
    trainable: list[int] | dict[str, list[int]] = ids
    if not is_tied(model):
        trainable = {
            _module_name(model, model.get_input_embeddings()): ids,
            _module_name(model, model.get_output_embeddings()): ids,
        }
    return LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=list(target_modules),
        trainable_token_indices=trainable,
        bias="none",
        task_type="CAUSAL_LM",
    )


def wrap_model(model: PreTrainedModel, config: LoraConfig) -> PeftModel:
    """The peft model; base weights frozen, LoRA and the token rows trainable."""
    return get_peft_model(model, config)


def trainable_parameters(model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    """Named trainable parameters in a stable order (the optimizer's and checkpoints')."""
    return [(name, p) for name, p in model.named_parameters() if p.requires_grad]


@torch.no_grad()
def token_embeddings(model: torch.nn.Module, token_ids: Sequence[int]) -> dict[str, torch.Tensor]:
    """The effective input (and, if untied, output) rows of `token_ids` after training.

    Read through the layers' forward, so they are what the model actually uses, whatever
    peft's internal storage.
    """
    base = model.get_base_model() if isinstance(model, PeftModel) else model
    ids = torch.tensor(list(token_ids), dtype=torch.long, device=base.device)
    out = {"input": base.get_input_embeddings()(ids).detach().cpu().contiguous()}
    head = base.get_output_embeddings()
    if head is not None and not getattr(base.config, "tie_word_embeddings", False):
        eye = torch.eye(head.in_features, dtype=next(head.parameters()).dtype, device=base.device)
        out["output"] = head(eye)[:, ids].T.detach().cpu().contiguous()
    return out
