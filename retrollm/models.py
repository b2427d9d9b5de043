"""The causal LM and its tokenizer: special tokens, loading, prompts, fingerprints.

Everything downstream (tokens, index, decoder, training) must agree on one tokenizer, so
the helpers here are the single place that adds RetroLLM's five tokens, builds the prompt
and fingerprints the vocabulary. Loading never reaches the network: weights come from
registry packages or local folders (see docs/design.md §4).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

SPECIAL_TOKENS = ("<|clue|>", "<|/clue|>", "<|evidence|>", "<|/evidence|>", "<|sep|>")
DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt")


class ModelError(RuntimeError):
    """A model or tokenizer is missing or unusable for RetroLLM; the message says which."""


@dataclass(frozen=True)
class SpecialTokenIds:
    """Ids of the five RetroLLM tokens, resolved once so no caller looks them up by string."""

    clue: int
    clue_end: int
    evidence: int
    evidence_end: int
    sep: int

    @classmethod
    def from_tokenizer(cls, tokenizer: PreTrainedTokenizerBase) -> SpecialTokenIds:
        """Resolve the ids; fail if a token is absent or would encode to several ids.

        `convert_tokens_to_ids` silently maps an unknown token to `unk`, so membership in
        the vocabulary and a single-id encoding are both checked.
        """
        vocab = tokenizer.get_vocab()
        missing = [token for token in SPECIAL_TOKENS if token not in vocab]
        if missing:
            raise ModelError(
                f"tokenizer lacks RetroLLM special token(s) {missing}; "
                "prepare the model with retrollm.models.add_special_tokens (stage prepare_model)"
            )
        ids = []
        for token in SPECIAL_TOKENS:
            encoded = tokenizer.encode(token, add_special_tokens=False)
            if encoded != [vocab[token]]:
                raise ModelError(
                    f"{token!r} encodes to {encoded}, not to the single id {vocab[token]}"
                )
            ids.append(vocab[token])
        return cls(*ids)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def resolve_device(name: str) -> torch.device:
    """The device a `device` knob names: cpu, cuda, cuda:N, or auto (the first CUDA device
    when torch sees one, else the CPU). A CUDA name on a machine without CUDA fails here,
    naming the knob, not deep inside a model load."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ModelError(f"device must be cpu, cuda, cuda:N or auto, got {name!r}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ModelError(f"device {name!r}: torch sees no CUDA device on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise ModelError(f"device {name!r}: this machine has {count} CUDA device(s)")
    return device


def resolve_dtype(name: str, device: torch.device) -> str:
    """A dtype name; "auto" is bfloat16 on CUDA (the paper's 7B backbones need it to fit)
    and float32 on a CPU (bfloat16 is emulated on CPUs without AVX-512 BF16, and slow)."""
    if name != "auto":
        return name
    return "bfloat16" if device.type == "cuda" else "float32"


def torch_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise ModelError(f"unknown dtype {name!r}; expected one of {sorted(DTYPES)}")
    return DTYPES[name]


def _existing(path: Path | str, what: str) -> Path:
    """Local paths only: a missing one must fail here, not turn into a hub download."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: {what} not found")
    return path


def tokenizer_files(names: Iterable[str]) -> list[str]:
    """The files of a model folder that loading its tokenizer reads: all but the weights
    (what a tokenizer-only reader verifies, without hashing gigabytes it never opens)."""
    return sorted(name for name in names if not name.endswith(WEIGHT_SUFFIXES))


def load_tokenizer(folder: Path | str) -> PreTrainedTokenizerBase:
    """The tokenizer of a local model folder, pad token set (eos when the model has none)."""
    folder = _existing(folder, "model folder")
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_source_model(
    source: Path | str, dtype: str = "float32"
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load the base LM from a GGUF file (de-quantized) or a local Hugging Face folder."""
    source = _existing(source, "model source (a .gguf file or a Hugging Face model folder)")
    if source.is_file():
        if source.suffix != ".gguf":
            raise ModelError(f"{source}: a model source file must be .gguf")
        return dequantize_gguf(source, dtype)
    tokenizer = load_tokenizer(source)
    model = AutoModelForCausalLM.from_pretrained(
        source, dtype=torch_dtype(dtype), local_files_only=True
    )
    return model.eval(), tokenizer


def dequantize_gguf(
    path: Path, dtype: str = "float32"
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a GGUF checkpoint as a plain, serializable transformers model.

    transformers de-quantizes GGUF on load but marks the model as quantized and then
    refuses `save_pretrained`; rebuilding from the config without `quantization_config`
    and copying the state dict gives an ordinary model with identical weights.
    """
    tokenizer = AutoTokenizer.from_pretrained(
        path.parent, gguf_file=path.name, local_files_only=True
    )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    quantized = AutoModelForCausalLM.from_pretrained(
        path.parent, gguf_file=path.name, dtype=torch.float32, local_files_only=True
    )
    config = copy.deepcopy(quantized.config)
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype(dtype))
    model.load_state_dict(quantized.state_dict(), strict=True)
    model.tie_weights()
    model.generation_config = copy.deepcopy(quantized.generation_config)
    del quantized
    return model.eval(), tokenizer


@torch.no_grad()
def add_special_tokens(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase
) -> SpecialTokenIds:
    """Add the five RetroLLM tokens and give each a starting embedding.

    New rows start at the mean of the existing embeddings (a standard choice, Hewitt 2021:
    it keeps the new tokens' logits in the range of ordinary ones instead of random
    outliers); training then learns them. Tokens already present keep their (possibly
    trained) rows, so running this twice changes nothing.
    """
    old_len = len(tokenizer)
    tokenizer.add_special_tokens(
        {"extra_special_tokens": list(SPECIAL_TOKENS)}, replace_extra_special_tokens=False
    )
    ids = SpecialTokenIds.from_tokenizer(tokenizer)
    new_ids = [i for i in ids.as_dict().values() if i >= old_len]
    if not new_ids:
        return ids
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    matrices = [model.get_input_embeddings().weight]
    output = model.get_output_embeddings()
    if output is not None and output.weight.data_ptr() != matrices[0].data_ptr():
        matrices.append(output.weight)  # untied lm_head: its rows need the same start
    for weight in matrices:
        weight[new_ids] = weight[:old_len].mean(dim=0)
    model.config.vocab_size = model.get_input_embeddings().weight.shape[0]
    return ids


def _grouped_sdpa(module: Any, query: Any, key: Any, value: Any, mask: Any, **kw: Any) -> Any:
    """transformers' SDPA attention, but one masked multi-position call on a CPU runs
    grouped-query attention in torch's kernel (enable_gqa) instead of first copying every
    key/value head per query head (repeat_kv): a jump-forward chunk over a cache with
    masked holes took 0.9 s instead of 1.9 s (SmolLM2-135M, 16 rows x 8 over 400 cells),
    same output. Single positions, GPUs (no masked GQA kernel) and training keep the
    stock path."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    grouped = (
        getattr(module, "num_key_value_groups", 1) > 1
        and mask is not None
        and query.shape[2] > 1
        and query.device.type == "cpu"
        and not torch.is_grad_enabled()
        and not kw.get("dropout")
        and kw.get("position_bias") is None
        and kw.get("softcap") is None
    )
    if not grouped:
        return sdpa_attention_forward(module, query, key, value, mask, **kw)
    out = torch.nn.functional.scaled_dot_product_attention(
        query, key, value, attn_mask=mask, scale=kw.get("scaling"), enable_gqa=True
    )
    return out.transpose(1, 2).contiguous(), None


def use_grouped_sdpa(enabled: bool = True) -> None:
    """Route the "sdpa" attention of every model in this process through _grouped_sdpa
    (False: back to transformers' own)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.modeling_utils import AttentionInterface

    AttentionInterface.register("sdpa", _grouped_sdpa if enabled else sdpa_attention_forward)


def load_causal_lm(
    folder: Path | str,
    dtype: str = "float32",
    adapter: Path | str | None = None,
    device: str = "cpu",
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A prepared model folder (and optionally a LoRA adapter over it), ready to generate
    on `device` (cpu, cuda, cuda:N or auto; a dtype of auto follows it)."""
    folder = _existing(folder, "model folder")
    target = resolve_device(device)
    tokenizer = load_tokenizer(folder)
    model = AutoModelForCausalLM.from_pretrained(
        folder, dtype=torch_dtype(resolve_dtype(dtype, target)), local_files_only=True
    )
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        raise ModelError(f"{folder}: tokenizer has more tokens than the model's embeddings")
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    if adapter is not None:
        # Only the adapter path needs peft. The adapter must have been trained on exactly
        # these weights; merged, it costs nothing per forward pass (LoRA adds 14 small
        # matmuls per layer otherwise).
        from retrollm.adapters import base_fingerprint, load_adapter

        adapter = _existing(adapter, "adapter folder")
        model = load_adapter(
            model, adapter, base_fingerprint(folder), tokenizer_fingerprint(tokenizer)
        )
        model = model.merge_and_unload()
    use_grouped_sdpa()
    return model.to(target).eval(), tokenizer


def is_chat_model(tokenizer: PreTrainedTokenizerBase) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def prompt_ids(tokenizer: PreTrainedTokenizerBase, question: str) -> list[int]:
    """The RetroLLM prompt (docs/method.md §2) as token ids.

    Control tokens typed inside a question are encoded as plain text, so a question can
    never open a clue or close the user turn.
    """
    if is_chat_model(tokenizer):
        messages = [{"role": "user", "content": f"Question: {question}"}]
        out: Any = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, sanitize_control_tokens=True
        )
    else:
        out = tokenizer(f"Question: {question}\nYour Response:", split_special_tokens=True)
    ids = out["input_ids"] if isinstance(out, Mapping) else out
    return [int(i) for i in ids]


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    """sha256 of everything that decides which ids a text becomes.

    Vocabulary (with added tokens and their flags), normalizer, pre-tokenizer and the
    model section (merges, byte fallback, ...) are hashed; the decoder and post-processor
    are not, since tokens and index only hold ids of plain text.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ModelError(f"{type(tokenizer).__name__}: a fast (tokenizers) tokenizer is needed")
    spec = json.loads(backend.to_str())
    body = {
        "vocab": sorted(tokenizer.get_vocab().items(), key=lambda item: (item[1], item[0])),
        "added_tokens": sorted(spec.get("added_tokens") or [], key=lambda t: t["id"]),
        "normalizer": spec.get("normalizer"),
        "pre_tokenizer": spec.get("pre_tokenizer"),
        "model": {k: v for k, v in (spec.get("model") or {}).items() if k != "vocab"},
    }
    blob = json.dumps(body, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(blob).hexdigest()


def count_parameters(model: PreTrainedModel) -> int:
    """Distinct parameters: tied embeddings count once (`parameters()` deduplicates)."""
    return sum(p.numel() for p in model.parameters())
