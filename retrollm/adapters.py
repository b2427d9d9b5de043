"""The trained adapter on disk, and the check that it fits the base model it is put on.

Layout of an adapter folder:

    adapter_config.json          peft's LoRA config (incl. trainable_token_indices)
    adapter_model.safetensors    LoRA weights and the trained special-token rows
    token_embeddings.safetensors the five tokens' effective rows ("input", and "output"
                                 for an untied lm_head), for inspection and other tools
    retrollm_adapter.json        base model fingerprint, tokenizer fingerprint, token ids

A LoRA delta only means something on top of the exact weights it was trained on, and the
token rows only under the same token ids: `load_adapter` refuses any other base model
instead of silently producing garbage. Writing one is training's job
(retrollm.training.adapter.save_adapter); reading and checking one is here, so inference
needs nothing of training.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from retrollm.artifacts import MANIFEST, file_digest

INFO_FILE = "retrollm_adapter.json"
EMBEDDINGS_FILE = "token_embeddings.safetensors"


class AdapterMismatchError(ValueError):
    """An adapter was made for another base model (or tokenizer) than the one given."""


def base_fingerprint(folder: Path | str) -> str:
    """Content fingerprint of a base model folder: sha256 over its files' names and hashes.

    Content, not the manifest's fingerprint, so the same weights prepared from another
    path or with other params still match; and hashed from the files themselves, never
    copied from the manifest, so replaced weights under an old manifest do not pass. A
    stage that verified the folder first has the hashes already (file_digest remembers
    them per process), so the weights are read once.
    """
    folder = Path(folder)
    files = {
        p.relative_to(folder).as_posix(): file_digest(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }
    if not files:
        raise FileNotFoundError(f"{folder}: no model files to fingerprint")
    blob = json.dumps(sorted(files.items())).encode()
    return hashlib.sha256(blob).hexdigest()


def read_adapter_info(folder: Path | str) -> dict[str, Any]:
    path = Path(folder) / INFO_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not a RetroLLM adapter folder (run the train stage)")
    return json.loads(path.read_text())


def check_adapter(
    folder: Path | str, base: str, tokenizer_fingerprint: str | None = None
) -> dict[str, Any]:
    """Raise AdapterMismatchError unless the adapter was trained on this base model."""
    info = read_adapter_info(folder)
    if info.get("base_fingerprint") != base:
        raise AdapterMismatchError(
            f"{folder}: adapter was trained on base model {info.get('base_fingerprint')!r}, "
            f"refusing to load it on base model {base!r} (retrain it or pick its base model)"
        )
    theirs = info.get("tokenizer_fingerprint")
    if tokenizer_fingerprint is not None and theirs != tokenizer_fingerprint:
        raise AdapterMismatchError(f"{folder}: adapter was trained with another tokenizer")
    return info


def load_adapter(
    model: Any, folder: Path | str, base_fingerprint: str, tokenizer_fingerprint: str | None = None
) -> Any:
    """Put the adapter on `model` (inference mode) after checking it belongs to that base.

    `base_fingerprint` is base_fingerprint(base model folder) of the folder `model` was
    loaded from.
    """
    from peft import PeftModel

    check_adapter(folder, base_fingerprint, tokenizer_fingerprint)
    vocab = model.get_input_embeddings().weight.shape[0]
    ids = read_adapter_info(folder)["special_token_ids"].values()
    if max(ids, default=-1) >= vocab:
        raise AdapterMismatchError(f"{folder}: token ids {sorted(ids)} outside vocabulary {vocab}")
    peft_model = PeftModel.from_pretrained(model, str(folder), is_trainable=False)
    return peft_model.eval()


def merged_token_rows(folder: Path | str) -> dict[str, torch.Tensor]:
    """The saved special-token rows (name -> (5, hidden) tensor)."""
    from safetensors.torch import load_file

    return load_file(str(Path(folder) / EMBEDDINGS_FILE))
