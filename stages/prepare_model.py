"""Stage prepare_model: the base causal LM as a Hugging Face folder with the five tokens.

Steps: hash the source, load it (de-quantizing a GGUF file), record reference logits on a
probe prompt, add the RetroLLM special tokens, save model and tokenizer, reload the saved
folder and check it reproduces the source's logits and token ids, write the manifest.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch
from pydantic import Field

from retrollm.artifacts import (
    MANIFEST,
    ArtifactError,
    atomic_dir,
    file_digest,
    read_manifest,
    sha256_file,
    write_manifest,
)
from retrollm.chain import asset_ref
from retrollm.models import (
    SpecialTokenIds,
    add_special_tokens,
    count_parameters,
    is_chat_model,
    load_causal_lm,
    load_source_model,
    load_tokenizer,
    prompt_ids,
    tokenizer_fingerprint,
)
from schemas import InputRef, Manifest
from stages.common import Paths, StageParams, load_params, load_paths, run_stage

SCHEMA_VERSION = 1
PROBE_QUESTION = "What is the capital of France?"
PROBE_NEW_TOKENS = 24


class PrepareModelParams(StageParams):
    source: Path = Field(description="A .gguf file (de-quantized once) or a local HF model folder.")
    dtype: str = Field("float32", description="float32 | bfloat16 | float16: dtype saved.")


def source_hash(source: Path) -> str:
    """sha256 of a file, or of a folder's (relative path, file sha256) list.

    A folder's own manifest.json is left out, so a prepared model folder used as a
    source hashes by its weights and tokenizer, not by when it was made.
    """
    if source.is_file():
        return sha256_file(source)
    digest = hashlib.sha256()
    for path in sorted(p for p in source.rglob("*") if p.is_file() and p.name != MANIFEST):
        digest.update(f"{path.relative_to(source).as_posix()}\0{file_digest(path)}\n".encode())
    return digest.hexdigest()


def asset_input(source: Path, paths: Paths, digest: str) -> dict[str, InputRef]:
    """When the source is a fetched asset, tie the output to the assets manifest.

    A file placed under assets by hand (no manifest yet) is accepted: its own sha256 is
    recorded in the manifest's extra either way.
    """
    try:
        relative = source.resolve().relative_to(paths.assets.resolve())
    except ValueError:
        return {}
    if not (paths.assets / MANIFEST).is_file():
        print(f"[prepare_model] note: {paths.assets} has no manifest; source not cross-checked")
        return {}
    manifest = read_manifest(paths.assets, "assets")
    expected = manifest.files.get(relative.as_posix())
    if source.is_file() and expected is not None and expected != digest:
        raise ArtifactError(f"{source}: sha256 differs from {paths.assets}/manifest.json")
    if source.is_dir():
        asset_ref(paths.assets, source)  # a fetched model folder: each file against the manifest
    return {
        "assets": InputRef(
            path=str(paths.assets), schema_name="assets", fingerprint=manifest.fingerprint
        )
    }


@torch.no_grad()
def probe_logits(model: Any, ids: list[int]) -> torch.Tensor:
    return model(torch.tensor([ids])).logits[0].float()


@torch.no_grad()
def greedy_answer(model: Any, tokenizer: Any, ids: list[int]) -> str:
    out = model.generate(torch.tensor([ids]), max_new_tokens=PROBE_NEW_TOKENS, do_sample=False)
    return tokenizer.decode(out[0, len(ids) :], skip_special_tokens=True)


def verify_saved(folder: Path, dtype: str, ids: list[int], reference: torch.Tensor) -> float:
    """Reload the written folder: the original vocabulary's logits must not have moved."""
    model, _ = load_causal_lm(folder, dtype)
    logits = probe_logits(model, ids)[:, : reference.shape[1]]
    diff = float((logits - reference).abs().max())
    if diff > 1e-3 * max(1.0, float(reference.abs().max())):
        raise ArtifactError(f"{folder}: saved model's logits differ from the source by {diff:.3g}")
    return diff


def main(params: PrepareModelParams, paths: Paths) -> dict[str, int]:
    source = Path(params.source)
    if not source.exists():
        raise FileNotFoundError(f"{source}: model source not found (prepare_model.source)")
    digest = source_hash(source)
    inputs = asset_input(source, paths, digest)

    model, tokenizer = load_source_model(source, params.dtype)
    probe = prompt_ids(tokenizer, PROBE_QUESTION)
    reference = probe_logits(model, probe)

    special = add_special_tokens(model, tokenizer)
    n_parameters = count_parameters(model)
    answer = greedy_answer(model, tokenizer, probe)

    with atomic_dir(paths.model) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        del model
        diff = verify_saved(tmp, params.dtype, probe, reference)
        saved_tokenizer = load_tokenizer(tmp)
        if SpecialTokenIds.from_tokenizer(saved_tokenizer) != special:
            raise ArtifactError(f"{tmp}: special token ids changed on save")
        fingerprint = tokenizer_fingerprint(saved_tokenizer)
        write_manifest(
            tmp,
            Manifest(
                schema_name="model",
                schema_version=SCHEMA_VERSION,
                stage="prepare_model",
                params=params.model_dump(mode="json"),
                inputs=inputs,
                extra={
                    "tokenizer_fingerprint": fingerprint,
                    "special_token_ids": special.as_dict(),
                    "vocab_size": len(saved_tokenizer),
                    "n_parameters": n_parameters,
                    "chat": is_chat_model(saved_tokenizer),
                    "source_sha256": digest,
                    "probe": {"question": PROBE_QUESTION, "greedy_answer": answer},
                    "max_abs_logit_diff_vs_source": diff,
                },
            ),
        )
    return {"parameters": n_parameters, "vocab_size": len(saved_tokenizer)}


if __name__ == "__main__":
    torch.set_num_threads(len(os.sched_getaffinity(0)))  # the cores this process may use
    run_stage(
        "prepare_model",
        lambda: main(load_params("prepare_model", PrepareModelParams), load_paths()),
    )
