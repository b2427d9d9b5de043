"""Writing the trained adapter folder (layout and checks: retrollm.adapters)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from safetensors.torch import save_file

from retrollm.adapters import EMBEDDINGS_FILE, INFO_FILE
from retrollm.training.lora import token_embeddings


def save_adapter(
    model: Any,
    folder: Path | str,
    base: str,
    token_ids: Mapping[str, int],
    tokenizer_fingerprint: str,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the adapter folder (see module docstring); return the info it records."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder), save_embedding_layers=False)
    (folder / "README.md").unlink(missing_ok=True)  # peft's model-card stub, no content
    _sort_target_modules(folder / "adapter_config.json")
    ids = [int(i) for i in token_ids.values()]
    save_file(token_embeddings(model, ids), str(folder / EMBEDDINGS_FILE))
    info = {
        "base_fingerprint": base,
        "tokenizer_fingerprint": tokenizer_fingerprint,
        "special_token_ids": dict(token_ids),
        **dict(extra or {}),
    }
    (folder / INFO_FILE).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return info


def _sort_target_modules(path: Path) -> None:
    """peft writes target_modules from a set, in an order that follows Python's per-process
    string hashing; sorted, the same weights give the same folder and the same DVC hash."""
    config = json.loads(path.read_text())
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
        path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
