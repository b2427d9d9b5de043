"""The adapter folder round-trips, and is refused on another base model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from retrollm.adapters import (
    AdapterMismatchError,
    base_fingerprint,
    load_adapter,
    merged_token_rows,
)
from retrollm.models import SpecialTokenIds, load_causal_lm, tokenizer_fingerprint
from retrollm.training.adapter import save_adapter
from retrollm.training.lora import lora_config, trainable_parameters, wrap_model


@pytest.fixture(scope="module")
def trained(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A LoRA model with perturbed trainable weights (as after training), saved."""
    torch.manual_seed(0)
    model, tokenizer = load_causal_lm(tiny_model_dir)
    ids = SpecialTokenIds.from_tokenizer(tokenizer).as_dict()
    model = wrap_model(model, lora_config(model, list(ids.values()), 4, 16, 0.0, ["q_proj"]))
    with torch.no_grad():
        for _, param in trainable_parameters(model):
            param.add_(0.05 * torch.randn_like(param))
    model.eval()
    folder = tmp_path_factory.mktemp("adapter")
    base = base_fingerprint(tiny_model_dir)
    save_adapter(model, folder, base, ids, tokenizer_fingerprint(tokenizer))
    probe = torch.tensor([[5, ids["clue"], 7, ids["sep"], 9, ids["evidence_end"]]])
    with torch.no_grad():
        logits = model(input_ids=probe).logits
    return {"folder": folder, "base": base, "probe": probe, "logits": logits, "ids": ids}


def test_adapter_config_lists_target_modules_in_a_fixed_order(trained: dict) -> None:
    config = json.loads((trained["folder"] / "adapter_config.json").read_text())
    assert config["target_modules"] == sorted(config["target_modules"])


def test_adapter_round_trip(tiny_model_dir: Path, trained: dict) -> None:
    model, tokenizer = load_causal_lm(tiny_model_dir)
    model = load_adapter(
        model, trained["folder"], trained["base"], tokenizer_fingerprint(tokenizer)
    )
    with torch.no_grad():
        logits = model(input_ids=trained["probe"]).logits
    torch.testing.assert_close(logits, trained["logits"])
    rows = merged_token_rows(trained["folder"])["input"]
    expected = model.get_base_model().get_input_embeddings()(
        torch.tensor(list(trained["ids"].values()))
    )
    torch.testing.assert_close(rows, expected)


def test_adapter_is_refused_on_another_base(
    tiny_model_dir: Path, trained: dict, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    shutil.copytree(tiny_model_dir, other)
    (other / "manifest.json").unlink()
    model, _ = load_causal_lm(other)
    with torch.no_grad():  # another base: same architecture and vocabulary, other weights
        model.get_input_embeddings().weight.mul_(1.01)
    model.save_pretrained(other)
    assert base_fingerprint(other) != trained["base"]
    with pytest.raises(AdapterMismatchError, match="refusing"):
        load_adapter(model, trained["folder"], base_fingerprint(other))
    with pytest.raises(AdapterMismatchError, match="tokenizer"):
        load_adapter(model, trained["folder"], trained["base"], tokenizer_fingerprint="other")


def test_load_causal_lm_merges_the_adapter_and_refuses_another_base(
    tiny_model_dir: Path, trained: dict, tmp_path: Path
) -> None:
    merged, _ = load_causal_lm(tiny_model_dir, adapter=trained["folder"])
    assert not any("lora" in name for name, _ in merged.named_parameters())
    with torch.no_grad():
        logits = merged(input_ids=trained["probe"]).logits
    torch.testing.assert_close(logits, trained["logits"], rtol=1e-4, atol=1e-4)
    other = tmp_path / "other"
    shutil.copytree(tiny_model_dir, other)
    (other / "manifest.json").unlink()  # fingerprinted by content: another folder, other bytes
    (other / "config.json").write_text((other / "config.json").read_text() + "\n")
    with pytest.raises(AdapterMismatchError, match="refusing"):
        load_causal_lm(other, adapter=trained["folder"])


def test_fingerprint_uses_content_not_manifest(tiny_model_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    (copy / "manifest.json").unlink()  # hashes files instead of reading the manifest
    assert base_fingerprint(copy) == base_fingerprint(tiny_model_dir)


def test_replaced_weights_under_the_old_manifest_are_another_base(
    tiny_model_dir: Path, trained: dict, tmp_path: Path
) -> None:
    """The fingerprint is hashed from the files: a manifest left over from the weights
    that were there before (a hand copy, a tampered pull) vouches for nothing."""
    replaced = tmp_path / "replaced"
    shutil.copytree(tiny_model_dir, replaced)  # manifest.json kept, as it was
    model, _ = load_causal_lm(replaced)
    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(1.01)
    model.save_pretrained(replaced)
    assert base_fingerprint(replaced) != trained["base"]
    with pytest.raises(AdapterMismatchError, match="refusing"):
        load_causal_lm(replaced, adapter=trained["folder"])
